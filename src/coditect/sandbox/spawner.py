"""Start sandboxed commands through a small helper process, never by forking CODITECT.

A command that needs rlimits, a new session, mounts or another uid needs code between ``fork``
and ``exec``. Doing that in CODITECT's own process (``preexec_fn``) forks the whole process:
its page tables are copied (about 17 ms at 500 MB resident, 58 ms at 2 GB, which is where the
local model puts it), and Python runs in a child of a multi-threaded process, where a lock held
by a gRPC, llama.cpp or executor thread at the moment of the fork stays held forever.

So one helper (:mod:`coditect.sandbox._spawnd`, standard library only, single-threaded) is
started once, with ``posix_spawn``-like ``vfork`` semantics, and does the forking: CODITECT
sends it the argv, environment, working directory, a :class:`ChildSetup` and the child's file
descriptors over a Unix socket; it replies with the pid, and later with the exit code. A reader
thread dispatches replies, so one helper serves every event loop and thread.

If the helper dies it is started again on the next spawn; commands it had started are reported
as killed (``-SIGKILL``). When CODITECT exits, the helper sees the socket close, kills every
process group it started and exits too.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coditect.errors import SandboxError

__all__ = ["ChildSetup", "SpawnFailedError", "Spawner", "default_spawner", "run_captured"]

_HELPER = Path(__file__).with_name("_spawnd.py")
_REPLY_TIMEOUT_S = 30.0
_MAX_MESSAGE = 1 << 20


@dataclass(frozen=True, slots=True)
class ChildSetup:
    """What the helper does in the child between ``fork`` and ``exec``, in this order.

    Attributes:
        new_session: ``setsid()``: the command leads a new session and process group, so the
            whole group can be killed.
        stage: ``(source, target)`` bind mounts made in a private mount namespace (needs root).
        uid: Switch to this uid (with ``gid``, no supplementary groups, ``no_new_privs``).
        gid: Switch to this gid.
        rlimits: ``(resource, soft, hard)`` triples, each capped at the inherited hard limit.
    """

    new_session: bool = True
    stage: tuple[tuple[str, str], ...] = ()
    uid: int | None = None
    gid: int | None = None
    rlimits: tuple[tuple[int, int, int], ...] = field(default=())


class SpawnFailedError(SandboxError):
    """The child could not be prepared or its program could not be executed.

    Attributes:
        errno: The OS error number (``ENOENT`` for a program that does not exist), or 0.
    """

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class _Pending:
    on_exit: Callable[[int], None]
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] = field(default_factory=dict)


class Spawner:
    """A connection to one spawn helper; thread-safe. See the module docstring.

    Args:
        python: The interpreter that runs the helper; defaults to ``sys.executable``.
    """

    def __init__(self, python: str | None = None) -> None:
        self._python = python or sys.executable
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._helper: subprocess.Popen[bytes] | None = None
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._running: dict[int, Callable[[int], None]] = {}

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        fds: Sequence[int],
        cwd: str | None = None,
        setup: ChildSetup | None = None,
        on_exit: Callable[[int], None],
    ) -> int:
        """Start ``argv`` with ``fds`` as its descriptors 0, 1, 2, 3...; return its pid.

        ``on_exit(returncode)`` is called once, from the reader thread, when it ends (negative:
        killed by that signal). The caller keeps ownership of ``fds`` (they are copied).

        Raises:
            SpawnFailedError: The program does not exist or the child could not be prepared.
            SandboxError: The helper could not be started or did not answer.
        """
        if not argv:
            raise SpawnFailedError("empty command")
        setup = setup or ChildSetup()
        request = {
            "argv": list(argv),
            "env": dict(env),
            "cwd": cwd,
            "new_session": setup.new_session,
            "stage": [list(pair) for pair in setup.stage],
            "uid": setup.uid,
            "gid": setup.gid,
            "rlimits": [list(limit) for limit in setup.rlimits],
        }
        pending = _Pending(on_exit)
        with self._lock:
            sock = self._connected()
            self._next_id += 1
            request["id"] = self._next_id
            self._pending[self._next_id] = pending
            data = json.dumps(request).encode()
            try:
                socket.send_fds(sock, [data], list(fds))
            except OSError as exc:
                del self._pending[self._next_id]
                self._disconnect_locked()
                raise SandboxError(
                    f"could not hand the command to the spawn helper: {exc}", retryable=True
                ) from exc
        if not pending.done.wait(_REPLY_TIMEOUT_S):
            raise SandboxError("the spawn helper did not answer", retryable=True)
        reply = pending.reply
        if "pid" not in reply:
            raise SpawnFailedError(
                str(reply.get("error") or "the spawn helper stopped"), int(reply.get("errno", 0))
            )
        return int(reply["pid"])

    def close(self) -> None:
        """Stop the helper (it kills the process groups it started)."""
        with self._lock:
            self._disconnect_locked()

    # -- internals ------------------------------------------------------------------------

    def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._helper = subprocess.Popen(
                [self._python, "-I", "-S", str(_HELPER), str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                restore_signals=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
        except OSError as exc:
            ours.close()
            raise SandboxError(
                f"could not start the spawn helper with {self._python}: {exc}",
                hint="the Python interpreter running CODITECT must be executable",
            ) from exc
        finally:
            theirs.close()
        self._sock = ours
        threading.Thread(
            target=self._read, args=(ours,), name="coditect-spawner", daemon=True
        ).start()
        return ours

    def _disconnect_locked(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._helper is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._helper.wait(timeout=5)
            self._helper = None

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "exited" in message:
                with self._lock:
                    callback = self._running.pop(int(message["exited"]), None)
                if callback is not None:
                    callback(int(message["code"]))
                continue
            with self._lock:
                pending = self._pending.pop(int(message["id"]), None)
                if pending is not None and "pid" in message:
                    self._running[int(message["pid"])] = pending.on_exit
            if pending is not None:
                pending.reply = message
                pending.done.set()
        self._helper_gone(sock)

    def _helper_gone(self, sock: socket.socket) -> None:
        """The helper exited: fail what waits for it; its commands were killed with it."""
        with self._lock:
            pending, self._pending = self._pending, {}
            running, self._running = self._running, {}
            if self._sock is sock:
                self._sock.close()
                self._sock = None
                if self._helper is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._helper.wait(timeout=5)
                    self._helper = None
        for item in pending.values():
            item.done.set()
        for pid, callback in running.items():
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            callback(-signal.SIGKILL)


def run_captured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    setup: ChildSetup | None = None,
    timeout_s: float = 20.0,
    spawner: Spawner | None = None,
) -> tuple[int, str]:
    """Run ``argv`` to its end without an event loop; its exit code and standard error.

    Standard input and output are ``/dev/null``. At ``timeout_s`` its process group is killed.

    Raises:
        SpawnFailedError: It could not be started.
        SandboxError: The spawn helper failed.
    """
    ended = threading.Event()
    codes: list[int] = []

    def on_exit(code: int) -> None:
        codes.append(code)
        ended.set()

    err_read, err_write = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = (spawner or default_spawner()).spawn(
            argv, env=env, fds=[null, null, err_write], setup=setup, on_exit=on_exit
        )
    except BaseException:
        os.close(err_read)
        raise
    finally:
        os.close(err_write)
        os.close(null)
    with os.fdopen(err_read, "rb") as stream:
        if not ended.wait(timeout_s):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            ended.wait(5)
        os.set_blocking(stream.fileno(), False)
        stderr = stream.read() or b""
    return (codes[0] if codes else -signal.SIGKILL), stderr.decode(errors="replace")


_default: Spawner | None = None
_default_lock = threading.Lock()


def default_spawner() -> Spawner:
    """The process-wide spawner (its helper starts on first use and stops at exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Spawner()
            atexit.register(_default.close)
        return _default
