"""The ``process`` sandbox: bubblewrap namespaces, an unprivileged uid and rlimits.

Each command runs in fresh user, pid, ipc, uts, network and mount namespaces
(``bwrap --unshare-all --unshare-user``). The sandbox sees ``/usr`` and the Python installation
read-only, a private ``/tmp`` and ``/dev/shm`` (small tmpfs), a new ``/proc``, a read-only ``/dev``
and ``/``, and the project at ``/work``: the only writable path. ``python`` (as ``argv[0]`` and on
``PATH``) is CODITECT's own interpreter; its virtualenv is mounted at ``/opt/coditect/venv``, so
pytest can be imported. The network namespace holds only ``lo``; there is no
``/etc/resolv.conf`` and no ``/etc/hosts``. Nested user namespaces are disabled. rlimits cap
CPU seconds, address space, process count and file size (set on bubblewrap between
``fork`` and ``exec``, so the command inherits them); a wall-clock timeout kills bubblewrap, and
with it (``--die-with-parent``, pid namespace) every process of the sandbox.

Running as root needs two extra steps, because the kernel does not apply the process-count limit
to processes whose host uid is 0, and because a root-owned sandbox that keeps its capabilities
could remount read-only paths:

1. bubblewrap is started as an unprivileged host uid, no supplementary groups,
   ``no_new_privs``: a uid of its own per concurrent sandbox, leased from a range
   (:mod:`coditect.sandbox.uids`, default 64000-64255), because the kernel counts the process
   limit per uid: a fork bomb in one sandbox then cannot keep another from starting. That uid cannot traverse ``/root`` (mode 700), where
   pyenv keeps the interpreter, nor the project if it lives under a private directory. So the
   child first enters a private mount namespace (still root) and bind-mounts every source into
   an empty, world-traversable staging directory; bubblewrap then binds from there. These mounts
   are invisible to the host and vanish with the command. All of it happens in the forked child
   before it executes bubblewrap (``unshare(2)``, ``mount(2)``, ``setresuid(2)``, ``prctl(2)``),
   so no helper program runs: the same steps as ``unshare``, ``mount`` and ``setpriv`` would do.
2. The project directory is lent to the sandbox uid for the duration of the run: its tree is
   ``chown``-ed to that uid before, and everything the uid owns is given back to the project
   directory's owner after (``lchown``, symlinks never followed), so files the command created
   are owned by the host user afterwards.

As an ordinary user none of that is needed: bubblewrap maps the sandbox uid onto the user's own
uid, so created files belong to the user, and the kernel enforces the process limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coditect.errors import SandboxError, SandboxUnavailableError
from coditect.leftovers import owned_tempdir
from coditect.sandbox.base import Sandbox, SandboxRequest, SandboxResult
from coditect.sandbox.spawner import ChildSetup, run_captured
from coditect.sandbox.subprocess import ProcessOutcome, rlimits_for, run_process
from coditect.sandbox.uids import UidPool, configured_uids

__all__ = ["BubblewrapSandbox", "project_lent_to"]

_INSTALL_HINT = (
    "install it with: apt-get install bubblewrap (or run scripts/install-system-deps.sh)"
)
_PROJECT_DEST = "/work"
_VENV_DEST = "/opt/coditect/venv"
_SHM_BYTES = 16 * 1024 * 1024
_RESERVED_DESTS = ("/work", "/tmp", "/proc", "/dev", "/opt/coditect")
_PYTHON_NAMES = frozenset({"python", "python3"})
# Harmless files from /etc that programs expect: the loader cache and the alternatives links
# behind some /usr/bin commands. Deliberately absent: passwd, hosts, resolv.conf, ssl keys.
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
)
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_NO_NEW_PRIVS = 38
_TRUNCATED = "[... output truncated by the sandbox: the last {n} bytes follow]\n"
#: What bubblewrap says when the machine (or the uid's process count) is exhausted.
_EXHAUSTED = ("Resource temporarily unavailable", "Cannot allocate memory", "No space left")
_EXHAUSTED_HINT = (
    "the machine is out of processes or memory (another sandboxed command may be fork-bombing "
    "or leaking); retry when it has finished"
)


@dataclass(frozen=True)
class _Bind:
    source: Path
    dest: str
    writable: bool = False


class BubblewrapSandbox(Sandbox):
    """Runs commands in bubblewrap namespaces (the ``process`` backend).

    Args:
        sandbox_uid: Host uid every sandbox runs as when CODITECT runs as root; None (default):
            a uid of its own per concurrent sandbox, from ``uid_range``.
        sandbox_gid: Host gid with ``sandbox_uid`` (otherwise each sandbox's gid is its uid).
        uid_range: The uids to lease from; default ``CODITECT_SANDBOX_UIDS`` or 64000-64255.
        tmp_size_bytes: Size of the sandbox's private ``/tmp`` (memory-backed).
        python_prefix: The Python environment ``"python"`` means; defaults to the running one
            (``sys.prefix``; a virtualenv is mounted at ``/opt/coditect/venv``).
        bwrap: The bubblewrap program (a name looked up on the system PATH, or a path).
    """

    name = "process"

    def __init__(
        self,
        *,
        sandbox_uid: int | None = None,
        sandbox_gid: int = 65534,
        uid_range: range | None = None,
        tmp_size_bytes: int = 128 * 1024 * 1024,
        python_prefix: Path | None = None,
        bwrap: str = "bwrap",
    ) -> None:
        self._bwrap = bwrap
        # Inside its user namespace every sandbox is uid/gid 65534; on the host (as root) each
        # concurrent sandbox gets a uid of its own from the pool.
        self._uid = 65534
        self._gid = 65534
        self._uids = UidPool(uid_range or configured_uids())
        # An explicit uid is shared by every sandbox (no lease, no per-sandbox process limit).
        self._fixed = (sandbox_uid, sandbox_gid) if sandbox_uid is not None else None
        _SANDBOX_HOST_UIDS.update(self._uids.uids)
        if sandbox_uid is not None:
            _SANDBOX_HOST_UIDS.add(sandbox_uid)
        self._tmp_size_bytes = tmp_size_bytes
        self._prefix = Path(python_prefix or sys.prefix)
        self._as_root = os.geteuid() == 0

    @staticmethod
    def available() -> bool:
        """Whether bubblewrap can create a sandbox on this machine (probed once, then cached)."""
        return _probe("bwrap") == ""

    def check(self) -> None:
        """Raise :class:`SandboxUnavailableError` when this backend cannot run here."""
        reason = _probe(self._bwrap)
        if reason:
            raise SandboxUnavailableError(
                f"the process sandbox is unavailable: {reason}", hint=_INSTALL_HINT
            )

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` in a fresh bubblewrap sandbox; see the module docstring.

        Raises:
            SandboxUnavailableError: bubblewrap cannot run here.
            SandboxError: The project directory is unusable or bubblewrap failed to set up.
        """
        self.check()
        workdir = _check_workdir(request.workdir)
        binds = [*self._python_binds(), _Bind(workdir, _PROJECT_DEST, writable=True)]
        argv = self._inner_argv(request)
        host = self._lease(workdir)
        try:
            with owned_tempdir("coditect-bwrap-") as stage:
                async with self._lend(workdir, host):
                    return await self._launch(request, binds, argv, stage, host)
        finally:
            self._unlease(workdir, host)

    def _lease(self, workdir: Path) -> tuple[int, int] | None:
        """The host uid and gid this run gets (root only; None as an ordinary user)."""
        if not self._as_root:
            return None
        if self._fixed is not None:
            return self._fixed
        uid = self._uids.acquire(workdir)
        return uid, uid

    def _unlease(self, workdir: Path, host: tuple[int, int] | None) -> None:
        if host is not None and self._fixed is None:
            self._uids.release(workdir)

    # -- building the command ------------------------------------------------------------

    def _is_venv(self) -> bool:
        return (self._prefix / "pyvenv.cfg").exists()

    def _python_binds(self) -> list[_Bind]:
        base = Path(os.path.realpath(_venv_home(self._prefix) if self._is_venv() else self._prefix))
        binds: list[_Bind] = []
        if not _under(base, "/usr"):
            if any(_under(base, reserved) for reserved in _RESERVED_DESTS):
                raise SandboxUnavailableError(
                    f"the Python installation at {base} collides with a sandbox mount point",
                    hint="use a Python installed outside " + ", ".join(_RESERVED_DESTS),
                )
            binds.append(_Bind(base, str(base)))
        if self._is_venv():
            binds.append(_Bind(self._prefix, _VENV_DEST))
        return binds

    def _interpreter(self) -> str:
        if self._is_venv():
            return f"{_VENV_DEST}/bin/python"
        if self._prefix == Path(sys.prefix):
            return sys.executable
        return str(self._prefix / "bin" / "python3")

    def _inner_argv(self, request: SandboxRequest) -> list[str]:
        argv = list(request.argv)
        if argv[0] in _PYTHON_NAMES:
            argv[0] = self._interpreter()
        return argv

    def _bwrap_argv(
        self,
        request: SandboxRequest,
        binds: Sequence[_Bind],
        sources: Sequence[str],
        status_fd: int,
    ) -> list[str]:
        argv = [
            _which(self._bwrap),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            str(self._uid),
            "--gid",
            str(self._gid),
            "--hostname",
            "coditect-sandbox",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--json-status-fd",
            str(status_fd),
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        env = self.clean_env(request.env)
        # `python` on PATH is the sandbox's interpreter too (for scripts and subprocesses). The
        # venv's other scripts there keep their host shebangs; run them as `python -m NAME`.
        env["PATH"] = f"{os.path.dirname(self._interpreter())}:{env.get('PATH', '')}".rstrip(":")
        for env_name, env_value in env.items():
            argv += ["--setenv", env_name, env_value]
        argv += _root_links()
        for etc in _ETC_FILES:
            argv += ["--ro-bind-try", etc, etc]
        for bind, source in zip(binds, sources, strict=True):
            argv += ["--bind" if bind.writable else "--ro-bind", source, bind.dest]
        argv += [
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--size",
            str(self._tmp_size_bytes),
            "--tmpfs",
            "/tmp",
            # bwrap's /dev and / are tmpfs the size of half the RAM, writable by the sandbox uid:
            # a small /dev/shm, and both made read-only, so memory cannot be filled through files.
            "--size",
            str(_SHM_BYTES),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--remount-ro",
            "/",
            "--chdir",
            _PROJECT_DEST,
        ]
        return argv

    def _command(
        self,
        request: SandboxRequest,
        binds: Sequence[_Bind],
        inner: Sequence[str],
        stage: Path,
        status_fd: int,
        host: tuple[int, int] | None = None,
    ) -> tuple[list[str], ChildSetup]:
        """The bubblewrap argv, and what the spawn helper prepares for its process (module doc)."""
        rlimits = rlimits_for(request.limits)
        if not self._as_root:
            sources = [str(bind.source) for bind in binds]
            argv = [*self._bwrap_argv(request, binds, sources, status_fd), "--", *inner]
            return argv, ChildSetup(rlimits=rlimits)
        stage.chmod(0o755)
        sources = []
        for index, _ in enumerate(binds):
            (stage / str(index)).mkdir()
            sources.append(str(stage / str(index)))
        staged = tuple(
            (str(bind.source), source) for bind, source in zip(binds, sources, strict=True)
        )
        argv = [*self._bwrap_argv(request, binds, sources, status_fd), "--", *inner]
        uid, gid = host or self._fixed or (self._uids.uids.start, self._uids.uids.start)
        return argv, ChildSetup(stage=staged, uid=uid, gid=gid, rlimits=rlimits)

    # -- running it ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lend(self, workdir: Path, host: tuple[int, int] | None) -> AsyncIterator[None]:
        if host is None:
            yield
            return
        async with project_lent_to(workdir, *host):
            yield

    async def _launch(
        self,
        request: SandboxRequest,
        binds: Sequence[_Bind],
        inner: Sequence[str],
        stage: Path,
        host: tuple[int, int] | None = None,
    ) -> SandboxResult:
        status_read, status_write = os.pipe()
        try:
            # bubblewrap gets the status pipe as its descriptor 3 (the first extra one).
            command, setup = self._command(request, binds, inner, stage, 3, host)
            try:
                outcome = await run_process(
                    command,
                    cwd=None,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                    stdin=request.stdin,
                    limits=request.limits,
                    setup=setup,
                    extra_fds=(status_write,),
                )
            except SandboxError as exc:
                if any(marker in str(exc) for marker in _EXHAUSTED):
                    raise SandboxError(
                        f"resource exhaustion: the sandbox could not be created: {exc}",
                        hint=_EXHAUSTED_HINT,
                        retryable=True,
                    ) from exc
                raise SandboxError(
                    f"could not prepare the sandbox process: {exc}",
                    hint="mount namespaces and setresuid need root or an "
                    "unprivileged user namespace",
                ) from exc
            os.close(status_write)
            status_write = -1
            status = _read_status(status_read)
        finally:
            os.close(status_read)
            if status_write >= 0:
                os.close(status_write)
        if (
            "exit-code" not in status
            and "child-pid" in status
            and "bwrap: execvp" in outcome.stderr
        ):
            # The sandbox was set up but the program could not be executed: a failed command,
            # with the exit code a shell gives (127 not found, 126 not executable).
            status["exit-code"] = 127 if "No such file" in outcome.stderr else 126
        # bubblewrap reports "exit-code" only for a command it started: no code, no command.
        if "exit-code" not in status and not outcome.timed_out:
            if any(marker in outcome.stderr for marker in _EXHAUSTED):
                raise SandboxError(
                    "resource exhaustion: the sandbox could not be created: "
                    + outcome.stderr.strip()[-300:],
                    hint=_EXHAUSTED_HINT,
                    retryable=True,
                )
            raise SandboxError(
                f"bubblewrap could not start the command: {outcome.stderr.strip()}",
                hint="its message is above; `coditect sandbox backends` shows what can run here",
            )
        return _result(self.name, outcome, status, request.limits.cpu_s)


# -- helpers: probing -------------------------------------------------------------------------


def _find(program: str) -> str | None:
    # A fixed search path: the caller's PATH must not choose which bwrap runs as root.
    return shutil.which(
        program, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )


def _which(program: str) -> str:
    path = _find(program)
    if path is None:
        raise SandboxUnavailableError(f"{program} is not installed", hint=_INSTALL_HINT)
    return path


@functools.cache
def _probe(bwrap: str) -> str:
    """Why bubblewrap cannot work here, or ``""`` when a trivial sandbox ran (cached).

    A probe that failed only because the machine is exhausted (a fork bomb elsewhere) counts as
    available: the real run then reports the exhaustion as what it is.
    """
    needed = [bwrap]
    missing = [program for program in needed if _find(program) is None]
    if missing:
        return "not installed: " + ", ".join(missing)
    sandbox = BubblewrapSandbox(bwrap=bwrap)
    try:
        with (
            owned_tempdir("coditect-probe-") as project,
            owned_tempdir("coditect-bwrap-") as stage,
        ):
            os.chmod(project, 0o755)  # the sandbox uid must be able to enter it
            host = sandbox._lease(project)
            try:
                request = SandboxRequest(argv=("/usr/bin/true",), workdir=project)
                binds = [_Bind(project, _PROJECT_DEST, writable=True)]
                # Status JSON goes to stderr (fd 2): only the exit code matters here.
                command, setup = sandbox._command(request, binds, ["/usr/bin/true"], stage, 2, host)
                code, stderr = run_captured(command, env={"PATH": "/usr/bin:/bin"}, setup=setup)
            finally:
                sandbox._unlease(project, host)
    except (OSError, SandboxError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if code != 0:
        if any(marker in stderr for marker in _EXHAUSTED):
            return ""
        return "bwrap failed: " + stderr.strip()[-300:]
    return ""


def _root_links() -> list[str]:
    """Recreate /bin, /lib... as on the host: symlinks into /usr (merged /usr) or read-only binds."""
    argv: list[str] = []
    for path in _ROOT_LINKS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    return argv


def _under(path: Path, parent: str) -> bool:
    return path == Path(parent) or Path(parent) in path.parents


def _venv_home(prefix: Path) -> str:
    """The base installation of the virtualenv at ``prefix`` (its ``pyvenv.cfg`` ``home``)."""
    for line in (prefix / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return str(Path(os.path.realpath(value.strip())).parent)
    return str(prefix)


def _check_workdir(workdir: Path) -> Path:
    resolved = Path(os.path.realpath(workdir))
    if not resolved.is_dir():
        raise SandboxError(f"project directory {workdir} does not exist")
    if resolved == Path("/") or resolved.parent == Path("/"):
        raise SandboxError(f"refusing to sandbox a top-level directory: {resolved}")
    return resolved


# -- helpers: ownership -----------------------------------------------------------------------


class _Ownership:
    """Lends project trees to the sandbox uid; counted, so concurrent runs share one loan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loans: dict[Path, tuple[int, int, int]] = {}

    def lend(self, workdir: Path, uid: int, gid: int) -> None:
        with self._lock:
            loan = self._loans.get(workdir)
            if loan is not None:
                self._loans[workdir] = (loan[0] + 1, loan[1], loan[2])
                return
            info = workdir.stat()
            if info.st_uid == uid or info.st_uid in _SANDBOX_HOST_UIDS:
                # Left lent by a run that was killed before giving it back: the owner of the
                # directory around it is the best guess for the rightful owner.
                info = workdir.parent.stat()
            try:
                _chown_tree(workdir, uid, gid, only_uid=None)
            except OSError:
                # Undo the partial loan: whatever was already handed over goes back.
                _chown_tree(workdir, info.st_uid, info.st_gid, only_uid=uid)
                raise
            self._loans[workdir] = (1, info.st_uid, info.st_gid)

    def give_back(self, workdir: Path, uid: int) -> None:
        with self._lock:
            count, owner_uid, owner_gid = self._loans[workdir]
            if count > 1:
                self._loans[workdir] = (count - 1, owner_uid, owner_gid)
                return
            del self._loans[workdir]
            _chown_tree(workdir, owner_uid, owner_gid, only_uid=uid)


_OWNERSHIP = _Ownership()
# Host uids a sandbox may have run as (this and earlier versions): a tree owned by one of them
# was left lent by a run that was killed.
_SANDBOX_HOST_UIDS: set[int] = {65534}


@contextlib.asynccontextmanager
async def project_lent_to(workdir: Path, uid: int, gid: int) -> AsyncIterator[None]:
    """Own ``workdir``'s tree by ``uid:gid`` while the block runs; give it back afterwards.

    Everything ``uid`` owns afterwards (including new files) goes to the directory's owner from
    before. Concurrent loans of one directory share one loan. Needs root.
    """
    try:
        await asyncio.to_thread(_OWNERSHIP.lend, workdir, uid, gid)
    except OSError as exc:
        raise SandboxError(
            f"cannot lend {workdir} to uid {uid}: {exc}",
            hint="the project must be on a filesystem that supports chown",
        ) from exc
    try:
        yield
    finally:
        await asyncio.to_thread(_OWNERSHIP.give_back, workdir, uid)


def _chown_tree(top: Path, uid: int, gid: int, *, only_uid: int | None) -> None:
    """``lchown`` ``top`` and everything below it (symlinks are never followed)."""

    def chown(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if only_uid is None or os.lstat(path).st_uid == only_uid:
                os.lchown(path, uid, gid)

    chown(str(top))
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            chown(os.path.join(root, name))


# -- helpers: process I/O ---------------------------------------------------------------------


def _read_status(fd: int) -> dict[str, int]:
    """Merge the JSON objects bubblewrap wrote to its status pipe."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            data += chunk
    status: dict[str, int] = {}
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                status.update(value)
    return status


def _result(
    backend: str, outcome: ProcessOutcome, status: dict[str, int], cpu_limit_s: float
) -> SandboxResult:
    code = status.get("exit-code", outcome.returncode)
    duration_s = outcome.duration_s
    killed_by = ""
    if outcome.timed_out:
        killed_by, code = "timeout", -signal.SIGKILL
    elif code > 128 and code - 128 in _SIGNALS:
        # bubblewrap reports a signal N as exit code 128 + N, like a shell.
        code = 128 - code
        killed_by = "signal"
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and duration_s >= cpu_limit_s):
            # SIGKILL without our timeout after at least cpu_s seconds: the hard CPU limit.
            killed_by = "cpu"
    if code != 0 and killed_by in ("", "signal") and "MemoryError" in outcome.stderr[-2000:]:
        killed_by = "memory"
    return SandboxResult(
        exit_code=code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        duration_s=duration_s,
        timed_out=outcome.timed_out,
        killed_by=killed_by,
        backend=backend,
    )


_SIGNALS = frozenset(int(s) for s in signal.Signals)
