"""Helpers of the sandbox attack suite: the backends, what each is known to lose, host checks.

Every attack runs on every sandbox backend that can run here. A backend that cannot (no
bubblewrap, no Docker engine, no wasmtime) is skipped with the reason. What a backend is known not
to protect against is listed in ``WEAK`` and marked ``xfail(strict=True)``: the suite documents
those gaps, and it fails if a gap silently closes or a new one opens.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from coditect.sandbox.base import Sandbox
from coditect.sandbox.policy import SANDBOX_BACKENDS

SECRET_KEY = "sk-test-secret"

# The backends attacked, in report order; each comes from coditect.sandbox.policy's registry.
BACKENDS = ("process", "wasm", "docker", "subprocess")

_SUBPROCESS_GAP = "the subprocess backend has rlimits only: no namespaces, no filesystem view"
# (backend, attack) -> why that backend is expected to lose that attack.
WEAK: dict[tuple[str, str], str] = {
    ("subprocess", "network_connect"): _SUBPROCESS_GAP + " (shares the host network)",
    ("subprocess", "dns_resolve"): _SUBPROCESS_GAP + " (shares the host network)",
    ("subprocess", "read_state_dir"): _SUBPROCESS_GAP + " (sees the whole host filesystem)",
    ("subprocess", "read_etc_passwd"): _SUBPROCESS_GAP + " (sees the whole host filesystem)",
    ("subprocess", "read_home"): _SUBPROCESS_GAP + " (sees the whole host filesystem)",
    ("subprocess", "write_outside"): _SUBPROCESS_GAP + " (writes wherever its uid may)",
    ("subprocess", "symlink_read"): _SUBPROCESS_GAP + " (symlinks resolve on the host)",
    ("subprocess", "symlink_write"): _SUBPROCESS_GAP + " (symlinks resolve on the host)",
    ("subprocess", "proc_environ"): _SUBPROCESS_GAP + " (other processes' /proc is readable)",
    ("subprocess", "kill_host_process"): _SUBPROCESS_GAP + " (shares the host pid namespace)",
    ("subprocess", "proc_root_escape"): _SUBPROCESS_GAP + " (/proc/<pid>/root is the host root)",
}
if os.geteuid() == 0:  # gaps that only open when CODITECT runs as root
    WEAK[("subprocess", "remount_readonly")] = _SUBPROCESS_GAP + " (as root, /usr is writable)"
    WEAK[("subprocess", "fork_bomb")] = _SUBPROCESS_GAP + " (RLIMIT_NPROC is not enforced for root)"


def over_backends(attack: str) -> pytest.MarkDecorator:
    """Parametrize a test over every backend, marking the expected losses of ``attack``."""
    params = []
    for name in BACKENDS:
        reason = WEAK.get((name, attack))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return pytest.mark.parametrize("backend", params)


_instances: dict[str, Sandbox] = {}


def instantiate(name: str) -> Sandbox:
    """The registered backend ``name``; skips the test when it cannot run here."""
    spec = SANDBOX_BACKENDS.get(name)
    if spec is None:
        pytest.skip(f"{name} backend is not registered")
    if not spec.available():
        pytest.skip(f"{name} backend unavailable here: {spec.install_hint}")
    if name not in _instances:
        _instances[name] = spec.factory()
    return _instances[name]


def received_connection(server: socket.socket) -> bool:
    """Whether anything connected to ``server`` (a finished handshake waits in the backlog)."""
    server.settimeout(0.2)
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def host_resolves(name: str) -> bool:
    try:
        socket.getaddrinfo(name, 443)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Host:
    """Bait on the host, outside any project, readable and writable by anyone.

    World-readable and world-writable on purpose: a backend must stop the attack with its
    filesystem view, not merely with file permissions of an unprivileged uid.
    """

    root: Path
    state_dir: Path
    state_secret: str
    outside_dir: Path

    def fresh_path(self) -> Path:
        """A path in the world-writable directory that does not exist yet."""
        return self.outside_dir / f"pwned-{uuid.uuid4().hex}"
