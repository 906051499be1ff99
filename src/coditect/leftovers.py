"""Who owns a running mission or a temporary directory, and removing what dead owners left.

A process is identified by more than its pid, which the kernel reuses: :class:`ProcessIdentity`
adds the process's start time (clock ticks since boot, from ``/proc/PID/stat``), the boot id
and the host name. A process that was killed (``kill -9``, a crash, a reboot) can then be told
apart from a live one, even if a new process got its pid.

Every temporary directory CODITECT creates under the system temporary directory is named
``coditect-*`` and carries a marker file naming its owner (:func:`mark_owned`).
:func:`collect` removes such directories whose owner is gone: at the start of ``coditect run``
and with ``coditect gc`` (which can also remove unmarked ones older than a minimum age).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "MARKER",
    "ProcessIdentity",
    "collect",
    "mark_owned",
    "owned_tempdir",
    "owner_of",
]

#: The owner marker file inside each ``coditect-*`` temporary directory.
MARKER = ".coditect-owner"
_PREFIX = "coditect-"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """One process, told apart from a later process that reuses its pid.

    Attributes:
        host: The host name.
        boot_id: The kernel's boot id (a reboot ends every process).
        pid: The process id.
        start_ticks: Its start time in clock ticks since boot (0 when unknown).
    """

    host: str
    boot_id: str
    pid: int
    start_ticks: int

    @classmethod
    def current(cls) -> ProcessIdentity:
        """The running process (cached per pid: it is asked at every save of a report)."""
        pid = os.getpid()
        cached = _CURRENT.get(pid)
        if cached is None:
            cached = cls(socket.gethostname(), _boot_id(), pid, _start_ticks(pid) or 0)
            _CURRENT.clear()
            _CURRENT[pid] = cached
        return cached

    def is_local(self) -> bool:
        """Whether this identity is of this host (only then can :meth:`alive` know)."""
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether the process still runs; True when it cannot be known (another host)."""
        if not self.is_local():
            return True
        if self.boot_id and self.boot_id != _boot_id():
            return False
        ticks = _start_ticks(self.pid)
        if ticks is None:
            return False
        return not self.start_ticks or ticks == self.start_ticks

    def to_json(self) -> str:
        """The identity as a JSON object."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> ProcessIdentity | None:
        """Parse :meth:`to_json`'s output; None for anything else."""
        try:
            data = json.loads(raw)
            return cls(
                str(data["host"]), str(data["boot_id"]), int(data["pid"]), int(data["start_ticks"])
            )
        except (ValueError, KeyError, TypeError):
            return None


_CURRENT: dict[int, ProcessIdentity] = {}


def mark_owned(directory: Path) -> None:
    """Record the running process as the owner of ``directory``."""
    (directory / MARKER).write_text(ProcessIdentity.current().to_json())


def owner_of(directory: Path) -> ProcessIdentity | None:
    """The owner recorded in ``directory``, or None when it has no readable marker."""
    try:
        return ProcessIdentity.from_json((directory / MARKER).read_text())
    except OSError:
        return None


@contextlib.contextmanager
def owned_tempdir(prefix: str, *, dir: Path | None = None) -> Iterator[Path]:  # noqa: A002
    """A temporary directory with an owner marker, removed at the end of the ``with`` block.

    ``prefix`` should start with ``coditect-`` so that :func:`collect` finds it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    try:
        mark_owned(path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def collect(tmp_root: Path | None = None, *, unmarked_min_age_s: float | None = None) -> list[Path]:
    """Remove the ``coditect-*`` temporary directories whose owner process is gone.

    Args:
        tmp_root: Where to look; defaults to the system temporary directory.
        unmarked_min_age_s: Also remove directories without an owner marker that were not
            modified for this long (None: keep them; they may belong to an older version).

    Returns:
        The directories removed.
    """
    root = tmp_root or Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        owner = owner_of(entry)
        if owner is None:
            if unmarked_min_age_s is None:
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < unmarked_min_age_s:
                    continue
        elif owner.alive():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed
