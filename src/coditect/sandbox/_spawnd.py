"""The spawn helper: a small process that starts sandboxed commands for CODITECT.

Run as ``python -I -S _spawnd.py FD`` by :mod:`coditect.sandbox.spawner`; FD is its end of a
``SOCK_SEQPACKET`` socket pair. It imports only the standard library, so it stays small.

Why it exists: starting a command with rlimits, mounts or a uid change needs code between
``fork`` and ``exec``. Forking CODITECT itself for that copies its page tables (tens of
milliseconds once the local model is loaded) and runs Python in a child of a multi-threaded
process (gRPC, llama.cpp and asyncio threads), which can deadlock or abort. This helper is
single-threaded and small: it forks in well under a millisecond, and nothing else runs in it.

Protocol (one JSON object per datagram):

- request ``{"id", "argv", "env", "cwd", "new_session", "rlimits", "stage", "uid", "gid"}``
  with the child's file descriptors 0, 1, 2, 3... attached (``SCM_RIGHTS``);
- reply ``{"id", "pid"}``, or ``{"id", "error", "errno"}`` when the child could not be prepared
  or the program could not be executed;
- later ``{"exited": pid, "code": returncode}`` (negative: killed by that signal).

When CODITECT closes the socket or dies (the helper sees its parent pid change), or on
SIGTERM or SIGINT, every process group the helper started is killed and the helper exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import sys
from typing import Any

_MAX_FDS = 16
_MAX_MESSAGE = 1 << 20
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_NO_NEW_PRIVS = 38
_HIGH_FD = 100
_MAX_FD = 1 << 16
#: How often the helper checks that the process that started it still runs.
_PARENT_POLL_S = 0.25
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(code: int, what: str) -> None:
    if code != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prepare_child(request: dict[str, Any], fds: list[int], libc: ctypes.CDLL) -> None:
    """In the forked child: descriptors, session, mounts, identity, rlimits. Then exec."""
    for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    # Lift every descriptor above the targets first, so that dup2 never clobbers a source.
    lifted = [fcntl.fcntl(fd, fcntl.F_DUPFD, _HIGH_FD) for fd in fds]
    for target, fd in enumerate(lifted):
        os.dup2(fd, target, inheritable=True)
    if request.get("new_session", True):
        os.setsid()
    cwd = request.get("cwd")
    if cwd:
        os.chdir(cwd)
    stage = request.get("stage") or []
    uid, gid = request.get("uid"), request.get("gid")
    if stage:
        _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
        for source, target in stage:
            _check(
                libc.mount(os.fsencode(source), os.fsencode(target), None, _MS_BIND, None),
                f"bind-mount {source}",
            )
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    for which, soft, hard in request.get("rlimits") or []:
        _, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        resource.setrlimit(which, (soft, hard))


def _spawn(request: dict[str, Any], fds: list[int], libc: ctypes.CDLL) -> dict[str, Any]:
    """Fork, prepare and exec one command; the reply for CODITECT."""
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: report any failure through `report`, which exec closes
        report = err_write
        try:
            os.close(err_read)
            report = fcntl.fcntl(err_write, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
            _prepare_child(request, fds, libc)
            os.closerange(len(fds), report)
            os.closerange(report + 1, _MAX_FD)
            os.execvpe(request["argv"][0], request["argv"], request["env"])
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            code = getattr(exc, "errno", None) or 0
            with contextlib.suppress(OSError):
                os.write(report, f"{code}:{exc}".encode(errors="replace"))
        finally:
            os._exit(127)
    os.close(err_write)
    for fd in fds:
        os.close(fd)
    data = b""
    while chunk := os.read(err_read, 65536):
        data += chunk
    os.close(err_read)
    if not data:
        return {"pid": pid}
    os.waitpid(pid, 0)
    code, _, message = data.decode(errors="replace").partition(":")
    return {"error": message, "errno": int(code) if code.isdigit() else 0}


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode())


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _kill_all(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def serve(sock: socket.socket, parent: int | None = None) -> None:
    """Answer spawn requests until the socket closes, ``parent`` ends or a stop signal comes.

    Then kill what is left and return.
    """
    libc = _libc()
    children: set[int] = set()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)  # noted through the wakeup fd
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, *_STOP_SIGNALS})
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    try:
        while True:
            if parent is not None and os.getppid() != parent:
                return  # CODITECT died (it may not have closed the socket: a child holds it)
            for key, _ in selector.select(_PARENT_POLL_S):
                if key.fileobj == wake_read:
                    woken = b""
                    with contextlib.suppress(BlockingIOError):
                        woken = os.read(wake_read, 4096)
                    if any(sig in woken for sig in _STOP_SIGNALS):
                        return
                    _reap(sock, children)
                    continue
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, _MAX_FDS)
                if not data:
                    return
                request = json.loads(data)
                try:
                    reply = _spawn(request, list(fds), libc)
                except OSError as exc:
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    reply = {"error": str(exc), "errno": exc.errno or _errno.EIO}
                if "pid" in reply:
                    children.add(reply["pid"])
                _send(sock, {"id": request["id"], **reply})
                _reap(sock, children)
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        _kill_all(children)


def main() -> None:
    os.chdir("/")
    sock = socket.socket(fileno=int(sys.argv[1]))
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else None
    serve(sock, parent)


if __name__ == "__main__":
    main()
