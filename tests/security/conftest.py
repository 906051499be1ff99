"""Fixtures of the sandbox attack suite: the sandbox under attack, a project, host-side bait."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect.sandbox.base import Sandbox

from .attacklib import SECRET_KEY, Host, instantiate


@pytest.fixture
def sandbox(backend: str) -> Sandbox:
    """The sandbox under attack; skipped where the backend cannot run."""
    return instantiate(backend)


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    root = Path(tempfile.mkdtemp(prefix="coditect-sec-host-"))
    root.chmod(0o755)
    state_dir = root / ".coditect-state"
    state_dir.mkdir(mode=0o755)
    state_secret = f"STATE-SECRET-{uuid.uuid4().hex}"
    (state_dir / "state.db").write_text(state_secret)
    (state_dir / "state.db").chmod(0o644)
    outside = root / "outside"
    outside.mkdir()
    outside.chmod(0o777)
    yield Host(root=root, state_dir=state_dir, state_secret=state_secret, outside_dir=outside)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def project() -> Iterator[Path]:
    """An empty project directory in /tmp (not under a private pytest directory)."""
    path = Path(tempfile.mkdtemp(prefix="coditect-sec-project-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A host process with an API key in its environment, outside every sandbox."""
    proc = subprocess.Popen(
        ["sleep", "120"],
        env={"PATH": os.environ.get("PATH", "/usr/bin"), "ANTHROPIC_API_KEY": SECRET_KEY},
    )
    yield proc
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that no sandbox should be able to reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: sandbox attack suite (tests/security)")
