"""A host uid per concurrent sandbox, so one sandbox's processes cannot starve another's.

The kernel counts ``RLIMIT_NPROC`` per real uid, across the whole machine. When every sandbox
runs as the same uid, a fork bomb in one fills that count and the next sandbox cannot even be
created (``bwrap: Creating new namespace failed: Resource temporarily unavailable``). Handing
each concurrent sandbox its own uid from a range makes each process limit its own.

A uid is leased with an exclusive ``flock`` on a lock file per uid, so CODITECT processes on one
machine never share one; the lock goes with the process, so a killed process frees its uids.
Runs on the same project directory share one uid (they share the project's files too).
The range comes from ``CODITECT_SANDBOX_UIDS`` (``FIRST-LAST``, default ``64000-64255``: inside
the range Debian reserves for global allocation, unused by ordinary accounts). Only used when
CODITECT runs as root; an ordinary user's sandboxes all run as that user.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile
import threading
from pathlib import Path

from coditect.errors import ConfigError, SandboxError

__all__ = ["DEFAULT_UIDS", "UID_RANGE_ENV", "UidPool", "configured_uids"]

UID_RANGE_ENV = "CODITECT_SANDBOX_UIDS"
DEFAULT_UIDS = range(64000, 64256)


def configured_uids() -> range:
    """The uid range from ``CODITECT_SANDBOX_UIDS`` (``FIRST-LAST``), or :data:`DEFAULT_UIDS`.

    Raises:
        ConfigError: The variable is set but is not a valid range of unprivileged uids.
    """
    raw = os.environ.get(UID_RANGE_ENV, "").strip()
    if not raw:
        return DEFAULT_UIDS
    first, sep, last = raw.partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        lo = hi = -1
    if not 1000 <= lo <= hi < 2**32 - 1:
        raise ConfigError(
            f"{UID_RANGE_ENV}={raw!r} is not a uid range",
            hint=f"use FIRST-LAST with unused uids of 1000 or more, e.g. {UID_RANGE_ENV}=64000-64255",
        )
    return range(lo, hi + 1)


def _lock_dir() -> Path:
    # /run is root-only and cleared at boot; the temporary directory otherwise. The name does
    # not start with "coditect-", so `coditect gc` never removes lock files that are held.
    for base in ("/run", tempfile.gettempdir()):
        path = Path(base) / ".coditect-sandbox-uids"
        with contextlib.suppress(OSError):
            path.mkdir(mode=0o700, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
    raise SandboxError("no writable directory for the sandbox uid locks (/run or the temp dir)")


class UidPool:
    """Leases uids from ``uids``: one per project directory in use, none shared across processes.

    Args:
        uids: The uids to lease.
        lock_dir: Where the lock files live (default ``/run/.coditect-sandbox-uids``).
    """

    def __init__(self, uids: range, *, lock_dir: Path | None = None) -> None:
        self.uids = uids
        self._lock_dir = lock_dir
        self._lock = threading.Lock()
        self._held: dict[Path, tuple[int, int, int]] = {}  # key -> (uid, users, lock fd)

    def acquire(self, key: Path) -> int:
        """A uid for ``key`` (the project directory): the one it already has, or a free one.

        Raises:
            SandboxError: Every uid of the range is in use (retryable).
        """
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                self._held[key] = (held[0], held[1] + 1, held[2])
                return held[0]
            lock_dir = self._lock_dir or _lock_dir()
            in_use = {uid for uid, _, _ in self._held.values()}
            start = random.randrange(len(self.uids))  # noqa: S311 - spreading, not security
            for offset in range(len(self.uids)):
                uid = self.uids[(start + offset) % len(self.uids)]
                if uid in in_use:
                    continue
                fd = os.open(lock_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._held[key] = (uid, 1, fd)
                return uid
        raise SandboxError(
            f"all {len(self.uids)} sandbox uids ({self.uids.start}-{self.uids.stop - 1}) are in "
            "use by running sandboxes",
            hint=f"wait for a mission to finish, or widen the range with {UID_RANGE_ENV}",
            retryable=True,
        )

    def release(self, key: Path) -> None:
        """Give back one use of ``key``'s uid; the last use frees it."""
        with self._lock:
            uid, users, fd = self._held[key]
            if users > 1:
                self._held[key] = (uid, users - 1, fd)
                return
            del self._held[key]
            os.close(fd)
