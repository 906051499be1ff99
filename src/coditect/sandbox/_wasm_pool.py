"""Warm worker processes for the wasm sandbox.

Starting a worker costs a process, the wasmtime import and the deserialization of the compiled
interpreter: about 60 to 100 ms before the guest starts. A :class:`WorkerPool` keeps a few
workers (``_wasm_runner.py --serve``) ready and runs each job in one of them; the guest still
gets a fresh wasmtime ``Store`` and instance per job, so nothing of one command's guest state
reaches the next.

A worker is killed (its whole session, with SIGKILL) and replaced when a job overruns its
deadline, when the caller is cancelled, or when it misbehaves (does not close the guest's
output after answering). One that dies on its own (RLIMIT_CPU) is replaced too. Workers are
plain children started with ``posix_spawn`` and reaped here; every pool is closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["JobOutcome", "Worker", "WorkerPool", "pool_for"]

#: How long the guest's output may stay open after the worker answered, or after a kill.
_DRAIN_GRACE_S = 1.0
_CHUNK = 65536
_TRUNCATED = "[... output truncated by the sandbox: the last {n} bytes follow]\n"
_PARENT_ENV = "CODITECT_PARENT_PID"  # PARENT_ENV in _wasm_runner.py
_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT)


@dataclass
class Worker:
    """One worker process and the parent's end of its job socket."""

    pid: int
    sock: socket.socket
    jobs: int = 0
    returncode: int | None = None

    def kill(self) -> None:
        """SIGKILL the worker's session (it is a session leader: pgid == pid)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def alive(self) -> bool:
        """Whether the process still runs (reaps it when it does not)."""
        if self.returncode is not None:
            return False
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = -signal.SIGKILL
            return False
        if pid == 0:
            return True
        self.returncode = os.waitstatus_to_exitcode(status)
        return False

    def reap(self) -> int:
        """Wait for the (dead or killed) process; its exit code, negative for a signal."""
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
        return self.returncode

    def close(self) -> None:
        """Kill, reap and forget the worker."""
        self.kill()
        self.reap()
        self.sock.close()


@dataclass(frozen=True)
class JobOutcome:
    """How one job went, seen from the parent.

    Attributes:
        answered: The worker reported the job done (its status file says how the guest ended).
        returncode: The worker's exit code when it died or was killed, else None.
        stdout: The guest's standard output, capped (tail kept).
        stderr: Likewise for standard error.
        duration_s: Wall-clock time from sending the job to its end.
        timed_out: The deadline passed before the worker answered; it was killed.
        healthy: The worker answered and closed the guest's output: it may run another job.
    """

    answered: bool
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    healthy: bool


@dataclass
class _Tail:
    cap: int
    kept: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        self.kept += chunk
        if len(self.kept) > self.cap:
            excess = len(self.kept) - self.cap
            self.dropped += excess
            del self.kept[:excess]

    def text(self) -> str:
        text = self.kept.decode(errors="replace")
        return _TRUNCATED.format(n=len(self.kept)) + text if self.dropped else text


class WorkerPool:
    """Warm ``--serve`` workers for one worker command line.

    Args:
        argv: The worker's command line.
        env: Its environment.
        max_idle: Idle workers kept for the next jobs.
        max_jobs: Jobs a worker runs before it is retired (bounds any slow leak).
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        max_idle: int = 2,
        max_jobs: int = 200,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._max_idle = max_idle
        self._max_jobs = max_jobs
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Worker:
        """A live idle worker, or a new one (which warms up while the job is prepared)."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.sock.close()
        return self.spawn()

    def release(self, worker: Worker, *, healthy: bool) -> None:
        """Take a worker back after a job; an unhealthy one is killed and replaced."""
        worker.jobs += 1
        keep = healthy and worker.jobs < self._max_jobs
        with self._lock:
            if keep and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(worker)
                return
        worker.close()
        if not keep:
            self.prestart()

    def prestart(self) -> None:
        """Start one worker ahead of need when none is idle."""
        with self._lock:
            if self._closed or self._idle:
                return
        worker = self.spawn()
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(worker)
                return
        worker.close()

    def spawn(self) -> Worker:
        """Start a worker; it reads jobs from the socket at its fd 3.

        Raises:
            OSError: The worker could not be started.
        """
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        extra = -1
        try:
            fd = child.fileno()
            if fd == 3:  # dup2(3, 3) would leave close-on-exec set
                fd = extra = os.dup(fd)
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 3),
            ]
            # The worker must not outlive this process (it watches this pid), and it starts
            # with default signal actions and nothing blocked, whatever this thread has.
            env = {**self._env, _PARENT_ENV: str(os.getpid())}
            pid = os.posix_spawn(
                self._argv[0],
                self._argv,
                env,
                file_actions=actions,
                setsid=True,
                setsigdef=_RESET_SIGNALS,
                setsigmask=(),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
            if extra >= 0:
                os.close(extra)
        return Worker(pid, parent)

    def run(self, worker: Worker, job_path: str, *, deadline: float, cap: int) -> JobOutcome:
        """Send one job to ``worker`` and collect its output (blocking; run it in a thread).

        At ``deadline`` (``time.monotonic()``) an unanswered job's worker is killed. The caller
        must :meth:`release` the worker afterwards.
        """
        started = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            socket.send_fds(worker.sock, [os.fsencode(job_path)], [out_w, err_w])
        except OSError:
            os.close(out_r)
            os.close(err_r)
            worker.kill()
            return JobOutcome(False, worker.reap(), "", "", 0.0, False, False)
        finally:
            os.close(out_w)
            os.close(err_w)
        tails = {out_r: _Tail(cap), err_r: _Tail(cap)}
        answered = timed_out = killed = False
        end = deadline
        with selectors.DefaultSelector() as selector:
            for fd in tails:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(worker.sock, selectors.EVENT_READ)
            while selector.get_map():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    if killed:
                        break  # the output is held open by nothing we know of: give up on it
                    timed_out = not answered and worker.returncode is None
                    worker.kill()
                    killed = True
                    end = time.monotonic() + _DRAIN_GRACE_S
                    continue
                for key, _ in selector.select(remaining):
                    if key.fileobj is worker.sock:
                        try:
                            answered = bool(worker.sock.recv(16))
                        except ConnectionResetError:  # it died with our job unread
                            answered = False
                        selector.unregister(worker.sock)
                        # The guest's output closes with its store: a worker that keeps it open
                        # after answering misbehaves, and the kill at the new end handles it.
                        end = min(end, time.monotonic() + _DRAIN_GRACE_S)
                        continue
                    fd = key.fd
                    chunk = os.read(fd, _CHUNK)
                    if chunk:
                        tails[fd].add(chunk)
                    else:
                        selector.unregister(fd)
        for fd in tails:
            os.close(fd)
        returncode = worker.reap() if killed or not answered else None
        return JobOutcome(
            answered=answered,
            returncode=returncode,
            stdout=tails[out_r].text(),
            stderr=tails[err_r].text(),
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            healthy=answered and not killed,
        )

    def run_and_release(
        self, worker: Worker, job_path: str, *, deadline: float, cap: int
    ) -> JobOutcome:
        """:meth:`run`, then :meth:`release` the worker whatever happened."""
        outcome: JobOutcome | None = None
        try:
            outcome = self.run(worker, job_path, deadline=deadline, cap=cap)
            return outcome
        finally:
            self.release(worker, healthy=outcome is not None and outcome.healthy)

    def close(self) -> None:
        """Kill every idle worker; the pool starts no more."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_POOLS: dict[tuple[str, ...], WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(argv: Sequence[str], env: Mapping[str, str]) -> WorkerPool:
    """The process-wide pool for this worker command line (created on first use)."""
    key = tuple(argv)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = WorkerPool(argv, env)
        return pool


@atexit.register
def _close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()
