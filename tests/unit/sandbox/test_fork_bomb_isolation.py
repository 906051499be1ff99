"""A fork bomb in one process sandbox must not keep another from starting (real bubblewrap).

The kernel counts RLIMIT_NPROC per host uid: with one shared sandbox uid, a test suite that
forks until refused made a concurrent mission's sandbox fail to start. Each concurrent sandbox
now has a uid of its own; a shared uid (configured explicitly) still fails, but says why.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from coditect.errors import ConfigError, SandboxError
from coditect.sandbox.base import SandboxLimits, SandboxRequest
from coditect.sandbox.bwrap import BubblewrapSandbox
from coditect.sandbox.uids import UID_RANGE_ENV, UidPool, configured_uids

BOMB = """
import os, pathlib, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    n += 1
pathlib.Path("full").write_text(str(n))
time.sleep(120)
"""
LIMITS = SandboxLimits(wall_timeout_s=90, max_processes=24)

as_root_with_bwrap = pytest.mark.skipif(
    os.geteuid() != 0 or not BubblewrapSandbox.available(),
    reason="per-uid isolation applies as root, with bubblewrap",
)


def _project(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    path.chmod(0o755)
    return path


async def _bomb_until_full(sandbox: BubblewrapSandbox, project: Path) -> asyncio.Task[object]:
    task = asyncio.create_task(
        sandbox.run(SandboxRequest(argv=("python", "-c", BOMB), workdir=project, limits=LIMITS))
    )
    for _ in range(600):
        if (project / "full").exists():
            return task
        assert not task.done(), task.result()
        await asyncio.sleep(0.05)
    raise AssertionError("the fork bomb never filled its process limit")


async def _stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@as_root_with_bwrap
async def test_a_fork_bomb_does_not_stop_a_concurrent_sandbox(tmp_path):
    sandbox = BubblewrapSandbox()
    bomb = await _bomb_until_full(sandbox, _project(tmp_path, "bomb"))
    try:
        other = _project(tmp_path, "other")
        result = await sandbox.run(
            SandboxRequest(argv=("python", "-c", "print('ok')"), workdir=other, limits=LIMITS)
        )
        assert (result.exit_code, result.stdout.strip()) == (0, "ok"), result.stderr
    finally:
        await _stop(bomb)


@as_root_with_bwrap
async def test_a_shared_uid_exhausted_by_a_fork_bomb_is_reported_as_such(tmp_path):
    # The old configuration: every sandbox runs as one host uid.
    sandbox = BubblewrapSandbox(sandbox_uid=64999, sandbox_gid=64999)
    bomb = await _bomb_until_full(sandbox, _project(tmp_path, "bomb"))
    try:
        with pytest.raises(SandboxError, match="resource exhaustion") as info:
            await sandbox.run(
                SandboxRequest(
                    argv=("python", "-c", "print('ok')"),
                    workdir=_project(tmp_path, "other"),
                    limits=LIMITS,
                )
            )
        assert info.value.retryable
        assert "not available" not in info.value.message
    finally:
        await _stop(bomb)


def test_uid_pool_gives_each_directory_its_own_uid_and_shares_within_one(tmp_path):
    pool = UidPool(range(70000, 70002), lock_dir=tmp_path)
    first = pool.acquire(Path("/a"))
    assert pool.acquire(Path("/a")) == first
    second = pool.acquire(Path("/b"))
    assert {first, second} == {70000, 70001}
    with pytest.raises(SandboxError, match="all 2 sandbox uids") as info:
        pool.acquire(Path("/c"))
    assert info.value.retryable
    # Another process (here: another pool, another lock) cannot take the uids held.
    other = UidPool(range(70000, 70002), lock_dir=tmp_path)
    with pytest.raises(SandboxError):
        other.acquire(Path("/d"))
    pool.release(Path("/a"))
    pool.release(Path("/a"))
    assert other.acquire(Path("/d")) == first
    pool.release(Path("/b"))
    other.release(Path("/d"))


def test_uid_range_from_the_environment(monkeypatch):
    monkeypatch.setenv(UID_RANGE_ENV, "65000-65009")
    assert configured_uids() == range(65000, 65010)
    for bad in ("0-10", "x", "20-10"):
        monkeypatch.setenv(UID_RANGE_ENV, bad)
        with pytest.raises(ConfigError, match=UID_RANGE_ENV):
            configured_uids()
    monkeypatch.delenv(UID_RANGE_ENV)
    assert configured_uids() == range(64000, 64256)
