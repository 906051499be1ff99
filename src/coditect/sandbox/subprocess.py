"""The ``subprocess`` sandbox: a plain child process with resource limits. NOT isolation.

This is the weakest backend, meant for development and for machines where nothing better runs.
The command runs as the host user, sees the whole host filesystem and network, and can read other
processes' ``/proc`` entries. What it does provide:

- an environment built only from :meth:`Sandbox.clean_env` (no host secrets are inherited);
- the project directory as the working directory;
- rlimits set in the child before ``exec`` (by the spawn helper, :mod:`coditect.sandbox.spawner`):
  CPU seconds, address space, process count (not enforced by the kernel for root), file size
  and no core dumps;
- a new session (process group), killed as a whole at the wall-clock deadline and after the
  command ends, so background children do not outlive it;
- output capped at ``max_output_bytes`` per stream (the tail is kept: a test summary is at the end).

A grandchild that starts its own session escapes the group kill; the sandbox then stops reading
its pipes after a short grace period instead of hanging. Use the ``process`` (bubblewrap),
``wasm`` or ``docker`` backend for untrusted code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coditect.errors import SandboxError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult
from coditect.sandbox.spawner import ChildSetup, SpawnFailedError, default_spawner

__all__ = ["ProcessOutcome", "SubprocessSandbox", "check_workdir", "rlimits_for", "run_process"]

_PYTHON_NAMES = frozenset({"python", "python3"})
_TRUNCATED = "[... output truncated by the sandbox: the last {n} bytes follow]\n"
#: How long the pipes may stay open after the command ended and its group was killed.
_DRAIN_GRACE_S = 1.0
_ESCAPED = "[{stream} was left open by a process that escaped the sandbox's process group]\n"
_CHUNK = 65536


class SubprocessSandbox(Sandbox):
    """Runs commands as plain child processes with rlimits (no isolation; see the module doc).

    Args:
        python: The interpreter ``argv[0] == "python"`` means; defaults to ``sys.executable``.
    """

    name = "subprocess"

    def __init__(self, *, python: str | None = None) -> None:
        self._python = python or sys.executable

    @staticmethod
    def available() -> bool:
        """Always True: this backend needs nothing but the host's Python."""
        return True

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` as a child process in its own session with rlimits.

        Raises:
            SandboxError: The working directory is missing or the program cannot be started.
        """
        workdir = check_workdir(request.workdir)
        argv = list(request.argv)
        if argv[0] in _PYTHON_NAMES:
            argv[0] = self._python
        limits = request.limits
        outcome = await run_process(
            argv,
            cwd=workdir,
            env=self.clean_env(request.env),
            stdin=request.stdin,
            limits=limits,
            setup=ChildSetup(rlimits=rlimits_for(limits)),
        )
        return outcome.to_result(self.name, cpu_limit_s=limits.cpu_s)


def check_workdir(workdir: Path) -> Path:
    """The resolved project directory.

    Raises:
        SandboxError: It does not exist or is not a directory.
    """
    path = Path(workdir).expanduser()
    if not path.exists():
        raise SandboxError(f"sandbox workdir does not exist: {path}")
    if not path.is_dir():
        raise SandboxError(f"sandbox workdir is not a directory: {path}")
    return path.resolve()


def rlimits_for(limits: SandboxLimits) -> tuple[tuple[int, int, int], ...]:
    """The ``(resource, soft, hard)`` rlimits that enforce ``limits`` on a command."""
    cpu = limits.cpu_s
    return (
        # The soft limit sends SIGXCPU; the hard limit one second later SIGKILLs a process that
        # ignores it.
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, limits.max_memory_bytes, limits.max_memory_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes, limits.max_file_bytes),
        (resource.RLIMIT_CORE, 0, 0),
    )


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """What a child process did, before it becomes a :class:`SandboxResult`.

    Attributes:
        returncode: As asyncio reports it: negative for a signal.
        stdout: Standard output, capped (tail kept).
        stderr: Standard error, capped (tail kept).
        duration_s: Wall-clock time from start to exit.
        timed_out: The wall-clock deadline killed it.
    """

    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool

    def to_result(self, backend: str, *, cpu_limit_s: float | None = None) -> SandboxResult:
        """The :class:`SandboxResult`; a SIGXCPU (or SIGKILL after the CPU limit) means ``cpu``."""
        killed_by = ""
        code = self.returncode
        if self.timed_out:
            killed_by, code = "timeout", -signal.SIGKILL
        elif code == -signal.SIGXCPU:
            killed_by = "cpu"
        elif (
            code == -signal.SIGKILL and cpu_limit_s is not None and (self.duration_s >= cpu_limit_s)
        ):
            # Only the kernel's hard CPU limit sends SIGKILL without us timing out; CPU time
            # can never exceed wall time, so a shorter run was killed by something else.
            killed_by = "cpu"
        elif code < 0:
            killed_by = "signal"
        return SandboxResult(
            exit_code=code,
            stdout=self.stdout,
            stderr=self.stderr,
            duration_s=self.duration_s,
            timed_out=self.timed_out,
            killed_by=killed_by,
            backend=backend,
        )


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    stdin: bytes,
    limits: SandboxLimits,
    setup: ChildSetup | None = None,
    extra_fds: Sequence[int] = (),
) -> ProcessOutcome:
    """Run ``argv`` in a new session and collect its capped output; never hangs.

    The command is started by the spawn helper (:mod:`coditect.sandbox.spawner`) with ``setup``
    applied between fork and exec; ``extra_fds`` become its descriptors 3, 4... At the
    wall-clock deadline, and again when the command ends, the whole process group is SIGKILLed.
    Pipes held open by an escaped grandchild are abandoned after a short grace period.

    Raises:
        SandboxError: The program could not be started.
    """
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    def on_exit(code: int) -> None:  # called from the spawner's reader thread
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(_resolve, exited, code)

    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    in_read, in_write = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
    child_fds = (in_read, out_write, err_write)
    # The spawn runs in a thread that a cancellation cannot stop: shielded, so that a command
    # it starts after the run was cancelled is still killed (and its descriptors closed).
    spawn = asyncio.ensure_future(
        asyncio.to_thread(
            default_spawner().spawn,
            list(argv),
            env=env,
            fds=[*child_fds, *extra_fds],
            cwd=None if cwd is None else str(cwd),
            setup=setup or ChildSetup(),
            on_exit=on_exit,
        )
    )
    try:
        pid = await asyncio.shield(spawn)
    except SpawnFailedError as exc:
        for fd in (out_read, err_read, in_write, *child_fds):
            _close(fd)
        raise SandboxError(f"cannot start {argv[0]!r}: {exc}") from exc
    except BaseException:
        for fd in (out_read, err_read, in_write):
            _close(fd)
        spawn.add_done_callback(lambda done: _abandon_spawn(done, child_fds))
        raise
    for fd in child_fds:
        _close(fd)
    cap = limits.max_output_bytes
    out_task = asyncio.ensure_future(_read_tail(out_read, cap))
    err_task = asyncio.ensure_future(_read_tail(err_read, cap))
    feed_task = asyncio.ensure_future(_feed(in_write, stdin))
    timed_out = False
    try:
        try:
            returncode = await asyncio.wait_for(
                asyncio.shield(exited), timeout=limits.wall_timeout_s
            )
        except TimeoutError:
            timed_out = True
            kill_group(pid)
            returncode = await exited
        duration_s = time.monotonic() - start
        # Background children of the command must not outlive it (or keep its pipes open).
        kill_group(pid)
        stdout, stderr = await _collect(out_task, err_task, feed_task)
    except BaseException:
        kill_group(pid)
        for task in (out_task, err_task, feed_task):
            task.cancel()
        raise
    return ProcessOutcome(
        returncode,
        _ESCAPED.format(stream="stdout") if stdout is None else stdout,
        _ESCAPED.format(stream="stderr") if stderr is None else stderr,
        duration_s,
        timed_out,
    )


def _abandon_spawn(spawn: asyncio.Future[int], fds: Sequence[int]) -> None:
    """A spawn whose run was cancelled has ended: kill what it started, close its descriptors."""
    for fd in fds:
        _close(fd)
    if not spawn.cancelled() and spawn.exception() is None:
        kill_group(spawn.result())


def _resolve(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def kill_group(pgid: int) -> None:
    """SIGKILL every process in the group ``pgid`` (nothing if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _collect(
    out_task: asyncio.Future[str], err_task: asyncio.Future[str], feed_task: asyncio.Future[None]
) -> tuple[str | None, str | None]:
    """Wait briefly for the readers; give up on pipes that an escaped process keeps open."""
    tasks: set[asyncio.Future[Any]] = {out_task, err_task, feed_task}
    done, pending = await asyncio.wait(tasks, timeout=_DRAIN_GRACE_S)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    stdout = out_task.result() if out_task in done else None
    stderr = err_task.result() if err_task in done else None
    return stdout, stderr


async def _read_tail(fd: int, cap: int) -> str:
    """Read the pipe ``fd`` to its end, keeping the last ``cap`` bytes; closes ``fd``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        kept = bytearray()
        dropped = 0
        while chunk := await reader.read(_CHUNK):
            kept += chunk
            if len(kept) > cap:
                excess = len(kept) - cap
                dropped += excess
                del kept[:excess]
    finally:
        transport.close()
    text = kept.decode(errors="replace")
    return _TRUNCATED.format(n=len(kept)) + text if dropped else text


async def _feed(fd: int, data: bytes) -> None:
    """Write ``data`` to the pipe ``fd`` without blocking the loop, then close it."""
    if fd < 0:
        return
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    try:
        os.set_blocking(fd, False)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                writable: asyncio.Future[int] = loop.create_future()
                loop.add_writer(fd, _resolve, writable, 0)
                try:
                    await writable
                finally:
                    loop.remove_writer(fd)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        os.close(fd)
