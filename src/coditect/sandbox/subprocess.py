"""The ``subprocess`` sandbox: a plain child process with resource limits. NOT isolation.

This is the weakest backend, meant for development and for machines where nothing better runs.
The command runs as the host user, sees the whole host filesystem and network, and can read other
processes' ``/proc`` entries. What it does provide:

- an environment built only from :meth:`Sandbox.clean_env` (no host secrets are inherited);
- the project directory as the working directory;
- rlimits set in the child before ``exec``: CPU seconds, address space, process count (not
  enforced by the kernel for root) and file size;
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
import subprocess as _subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coditect.errors import SandboxError
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult

__all__ = ["ProcessOutcome", "SubprocessSandbox", "check_workdir", "run_process"]

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
            preexec_fn=_rlimit_setter(limits),
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


def _rlimit_setter(limits: SandboxLimits) -> Callable[[], None]:
    """A ``preexec_fn`` that applies ``limits`` in the child, between fork and exec."""
    cpu = limits.cpu_s
    settings = (
        # The soft limit sends SIGXCPU; the hard limit one second later SIGKILLs a process that
        # ignores it.
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits.max_memory_bytes, limits.max_memory_bytes)),
        (resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes)),
        (resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes)),
    )

    def apply() -> None:  # pragma: no cover - runs in the child
        for which, (soft, hard) in settings:
            _, old_hard = resource.getrlimit(which)
            if old_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, old_hard), min(hard, old_hard)
            resource.setrlimit(which, (soft, hard))

    return apply


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
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes,
    limits: SandboxLimits,
    preexec_fn: Callable[[], None] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` in a new session and collect its capped output; never hangs.

    At the wall-clock deadline, and again when the command ends, the whole process group is
    SIGKILLed. Pipes held open by an escaped grandchild are abandoned after a short grace period.

    Raises:
        SandboxError: The program could not be started.
    """
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitProtocol(loop),
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=_subprocess.PIPE if stdin else _subprocess.DEVNULL,
            stdout=_subprocess.PIPE,
            stderr=_subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    except (OSError, _subprocess.SubprocessError) as exc:
        raise SandboxError(f"cannot start {argv[0]!r}: {exc}") from exc
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    cap = limits.max_output_bytes
    out_task = asyncio.ensure_future(_read_tail(proc.stdout, cap))
    err_task = asyncio.ensure_future(_read_tail(proc.stderr, cap))
    feed_task = asyncio.ensure_future(_feed(proc, stdin))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(protocol.exited), timeout=limits.wall_timeout_s)
        except TimeoutError:
            timed_out = True
            kill_group(proc.pid)
            await protocol.exited
        duration_s = time.monotonic() - start
        # Background children of the command must not outlive it (or keep its pipes open).
        kill_group(proc.pid)
        stdout, stderr = await _collect(out_task, err_task, feed_task)
        if stdout is None or stderr is None:
            transport.close()  # pipes an escaped process still holds
    except BaseException:
        kill_group(proc.pid)
        for task in (out_task, err_task, feed_task):
            task.cancel()
        transport.close()
        raise
    assert proc.returncode is not None
    return ProcessOutcome(
        proc.returncode,
        _ESCAPED.format(stream="stdout") if stdout is None else stdout,
        _ESCAPED.format(stream="stderr") if stderr is None else stderr,
        duration_s,
        timed_out,
    )


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that also reports the child's exit.

    ``Process.wait()`` only returns once every pipe is closed, so a background grandchild holding
    stdout would keep it waiting; ``exited`` resolves when the child itself is reaped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_CHUNK, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


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


async def _read_tail(stream: asyncio.StreamReader | None, cap: int) -> str:
    """Read ``stream`` to its end, keeping the last ``cap`` bytes."""
    if stream is None:
        return ""
    kept = bytearray()
    dropped = 0
    while chunk := await stream.read(_CHUNK):
        kept += chunk
        if len(kept) > cap:
            excess = len(kept) - cap
            dropped += excess
            del kept[:excess]
    text = kept.decode(errors="replace")
    return _TRUNCATED.format(n=len(kept)) + text if dropped else text


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    if proc.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()
