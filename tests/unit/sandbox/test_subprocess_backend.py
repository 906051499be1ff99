"""The subprocess backend's own behaviour beyond the contract: process groups and pipes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from coditect.errors import SandboxError
from coditect.sandbox.base import SandboxLimits, SandboxRequest
from coditect.sandbox.subprocess import ProcessOutcome, SubprocessSandbox


def _req(workdir: Path, *argv: str, **limits: float) -> SandboxRequest:
    return SandboxRequest(
        argv=argv, workdir=workdir, limits=SandboxLimits(**{"wall_timeout_s": 30, **limits})
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _dies(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` is gone: a SIGKILL is delivered asynchronously (later on a busy machine).

    The event loop keeps running while it waits: a run cancelled before its spawn thread
    returned kills the command from a callback of that loop (a blocking wait here starved it,
    and the command outlived the wait on a loaded machine).
    """
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_python_means_the_running_interpreter(tmp_path: Path) -> None:
    result = await SubprocessSandbox().run(
        _req(tmp_path, "python", "-c", "import sys; print(sys.executable)")
    )
    assert result.stdout.strip() == sys.executable


async def test_runs_in_workdir_with_limits(tmp_path: Path) -> None:
    code = (
        "import os, resource; print(os.getcwd());"
        " print(resource.getrlimit(resource.RLIMIT_FSIZE)[0])"
    )
    result = await SubprocessSandbox().run(
        _req(tmp_path, "python", "-c", code, max_file_bytes=12345)
    )
    assert result.stdout.split() == [str(tmp_path.resolve()), "12345"]


async def test_background_child_does_not_hold_the_run(tmp_path: Path) -> None:
    # The shell exits at once; its background sleep keeps stdout open until the group is killed.
    result = await SubprocessSandbox().run(
        _req(tmp_path, "sh", "-c", "sleep 60 & echo $! > bg.pid; echo done")
    )
    assert result.exit_code == 0
    assert "done" in result.stdout
    assert await _dies(int((tmp_path / "bg.pid").read_text()))


async def test_timeout_kills_grandchildren(tmp_path: Path) -> None:
    result = await SubprocessSandbox().run(
        _req(tmp_path, "sh", "-c", "sleep 60 & echo $! > bg.pid; wait", wall_timeout_s=0.5)
    )
    assert result.timed_out
    assert await _dies(int((tmp_path / "bg.pid").read_text()))


async def test_escaped_session_does_not_hang(tmp_path: Path) -> None:
    # setsid leaves the process group; the sandbox gives up on the pipe it holds.
    script = "setsid sleep 60 & echo $! > bg.pid; echo done"
    try:
        result = await SubprocessSandbox().run(_req(tmp_path, "sh", "-c", script))
        assert result.exit_code == 0
        assert "escaped" in result.stdout or "done" in result.stdout
    finally:
        os.kill(int((tmp_path / "bg.pid").read_text()), 9)


async def test_output_keeps_the_tail(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 100000 + 'THE-END')"
    result = await SubprocessSandbox().run(
        _req(tmp_path, "python", "-c", code, max_output_bytes=500)
    )
    assert result.stdout.endswith("THE-END")
    assert "truncated" in result.stdout


async def test_missing_program_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        await SubprocessSandbox().run(_req(tmp_path, "no-such-program-xyz"))


async def test_memory_error_is_just_the_exit_code(tmp_path: Path) -> None:
    code = "x = bytearray(600 * 1024 * 1024)"
    result = await SubprocessSandbox().run(
        _req(tmp_path, "python", "-c", code, max_memory_bytes=300 * 1024 * 1024)
    )
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr
    assert not result.timed_out


def test_signal_outcomes() -> None:
    kill = ProcessOutcome(-9, "", "", 0.2, False).to_result("subprocess", cpu_limit_s=5)
    assert kill.killed_by == "signal"
    cpu = ProcessOutcome(-9, "", "", 6.0, False).to_result("subprocess", cpu_limit_s=5)
    assert cpu.killed_by == "cpu"
    xcpu = ProcessOutcome(-24, "", "", 1.0, False).to_result("subprocess", cpu_limit_s=5)
    assert xcpu.killed_by == "cpu"
    timeout = ProcessOutcome(-9, "", "", 1.0, True).to_result("subprocess")
    assert (timeout.killed_by, timeout.timed_out) == ("timeout", True)


async def _cancel_once_started(task: asyncio.Future[object], pidfile: Path) -> None:
    """Cancel ``task`` once its command has written ``pidfile``; the cancellation propagates."""
    for _ in range(1000):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelling_the_run_kills_the_command(tmp_path: Path) -> None:
    script = "echo $$ > pid; sleep 60 & echo $! > bg.pid; wait"
    task = asyncio.ensure_future(SubprocessSandbox().run(_req(tmp_path, "sh", "-c", script)))
    await _cancel_once_started(task, tmp_path / "bg.pid")
    assert await _dies(int((tmp_path / "bg.pid").read_text()))


async def test_a_run_cancelled_while_its_command_starts_kills_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spawn returns late (a busy machine): the cancelled run must still kill what it started."""
    from coditect.sandbox import subprocess as backend

    real = backend.default_spawner()

    class SlowToReturn:
        def spawn(self, *args: object, **kwargs: object) -> int:
            pid = real.spawn(*args, **kwargs)  # type: ignore[arg-type]
            time.sleep(1.0)  # the command runs; the event loop has not heard of it yet
            return pid

    monkeypatch.setattr(backend, "default_spawner", lambda: SlowToReturn())
    script = "sleep 60 & echo $! > bg.pid; wait"
    task = asyncio.ensure_future(SubprocessSandbox().run(_req(tmp_path, "sh", "-c", script)))
    await _cancel_once_started(task, tmp_path / "bg.pid")
    await asyncio.sleep(1.5)  # the spawn thread returns; the command is killed then
    assert await _dies(int((tmp_path / "bg.pid").read_text()))


async def test_large_stdin_that_is_never_read(tmp_path: Path) -> None:
    request = SandboxRequest(
        argv=("python", "-c", "print('ignored stdin')"),
        workdir=tmp_path,
        stdin=b"x" * (4 * 1024 * 1024),
        limits=SandboxLimits(wall_timeout_s=30),
    )
    result = await SubprocessSandbox().run(request)
    assert result.exit_code == 0
    assert "ignored stdin" in result.stdout
