"""Worker process of the wasm sandbox: runs CPython/WASI guests and reports how each ended.

Usage (by :mod:`coditect.sandbox.wasm` only)::

    python -I .../_wasm_runner.py --serve '{"module": CWASM, "wasm": WASM, "metered": true}'
    python -I .../_wasm_runner.py --setup '{"module": CWASM, "site": DIR, "wasm": WASM, ...}'

This file is self-contained (standard library and wasmtime only; it imports nothing from
CODITECT) so the worker starts fast.

``--serve`` is a warm worker (see :mod:`coditect.sandbox._wasm_pool`): it loads wasmtime and
deserializes the compiled interpreter once, then runs jobs one after another, each in a fresh
``Store`` and instance. A job arrives on the socket at fd 3 as the path of its JSON file, with
two file descriptors attached: the write ends of the guest's stdout and stderr pipes (stdin is a
file named in the job). The worker sets its CPU and file-size rlimits for the job, runs it,
closes the pipes, writes how the guest ended to the job's status file as JSON
(``{"exit_code": N, "killed_by": "", "timed_out": false}``, or ``{"error": "..."}`` when the
sandbox itself failed) and answers ``done``. The parent kills a worker whose job overruns its
deadline or that misbehaves, and starts another.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import wasmtime

#: Pure-Python packages that pytest needs, by import name (plus pytest's ``py`` shim module).
#: Bump when the layout or compilation of the pytest copy changes (part of its cache key).
SITE_FORMAT = 2
PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py")

_TICK_S = 0.05
#: The environment variable that names the process a worker must not outlive.
PARENT_ENV = "CODITECT_PARENT_PID"
_ORPHANED_EXIT = 70
_ABORT_EXIT = -6
# Compile pytest & co. to .pyc inside the guest once (CPython 3.12 bytecode; the host may differ).
# Of Pygments' lexers, pytest only imports the Python lexer (through the lexer mapping).
_COMPILE_SITE = (
    "import compileall, re, sys;"
    " skip = re.compile(r'/pygments/lexers/(?!(__init__|_mapping|python)[.]py)');"
    " ok = compileall.compile_dir('/site', quiet=1, rx=skip);"
    " sys.exit(0 if ok else 1)"
)


def make_engine(*, metered: bool) -> wasmtime.Engine:
    """A wasmtime engine; ``metered`` adds fuel accounting and epoch deadlines (about 30% slower)."""
    import wasmtime

    config = wasmtime.Config()
    if metered:
        config.consume_fuel = True
        config.epoch_interruption = True
    return wasmtime.Engine(config)


def load_module(engine: wasmtime.Engine, path: Path, wasm_path: Path) -> wasmtime.Module:
    """The compiled interpreter: deserialized from ``path``, or compiled from ``wasm_path``.

    A fresh compilation is serialized to ``path`` (atomically) for the next process.
    """
    import wasmtime

    if path.exists():
        with contextlib.suppress(wasmtime.WasmtimeError):
            return wasmtime.Module.deserialize_file(engine, str(path))
    module = wasmtime.Module.from_file(engine, str(wasm_path))
    _atomic_write(path, bytes(module.serialize()))
    return module


def build_site(site: Path) -> Path:
    """Copy pytest's pure-Python packages from this interpreter into the new directory ``site``."""
    site.mkdir(mode=0o755)
    for name in PYTEST_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin in (None, "built-in", "frozen"):
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(
                origin.parent,
                site / origin.parent.name,
                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
            )
        elif origin.suffix == ".py":
            shutil.copy2(origin, site / origin.name)
    return site


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Streams:
    """Where a guest's standard streams go: paths (files, or ``/proc/self/fd/N``), else inherited."""

    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None


def run_guest(
    *,
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    argv: list[str],
    env: dict[str, str],
    preopens: list[tuple[str, str, bool]],
    fuel: int | None,
    memory_bytes: int,
    wall_timeout_s: float,
    streams: Streams,
) -> dict[str, Any]:
    """Run one guest to its end in a fresh store; the status dict the parent reads.

    With ``fuel`` None the engine must be unmetered: RLIMIT_CPU on this process and the parent's
    wall-clock kill are then the only CPU and time limits. The store, and with it every file the
    guest had open (its stdout and stderr included), is closed before this returns.
    """
    import wasmtime

    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    config = wasmtime.WasiConfig()
    config.argv = argv
    config.env = list(env.items())
    for host, guest, writable in preopens:
        config.preopen_dir(host, guest, writable)
    if streams.stdin is not None:
        config.stdin_file = streams.stdin
    if streams.stdout is not None:
        config.stdout_file = streams.stdout
    else:
        config.inherit_stdout()
    if streams.stderr is not None:
        config.stderr_file = streams.stderr
    else:
        config.inherit_stderr()
    store.set_wasi(config)
    store.set_limits(memory_size=memory_bytes)
    done = threading.Event()
    ticker = threading.Thread(target=_tick, args=(engine, done), daemon=True)
    if fuel is not None:
        store.set_fuel(fuel)
        store.set_epoch_deadline(max(1, math.ceil(wall_timeout_s / _TICK_S)))
        ticker.start()
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        return {"exit_code": 0, "killed_by": "", "timed_out": False}
    except wasmtime.ExitTrap as exc:
        return {"exit_code": exc.code, "killed_by": "", "timed_out": False}
    except wasmtime.Trap as trap:
        return _trap_status(trap)
    finally:
        done.set()
        if ticker.is_alive():
            ticker.join()
        store.close()


def _tick(engine: wasmtime.Engine, done: threading.Event) -> None:
    while not done.wait(_TICK_S):
        engine.increment_epoch()


def _trap_status(trap: Any) -> dict[str, Any]:
    import wasmtime

    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        _note("the command used up its CPU allowance (wasmtime fuel) and was stopped")
        return {"exit_code": -24, "killed_by": "cpu", "timed_out": False}
    if code == wasmtime.TrapCode.INTERRUPT:
        _note("the command reached its wall-clock deadline and was stopped")
        return {"exit_code": -9, "killed_by": "timeout", "timed_out": True}
    _note(f"the interpreter crashed: {trap.message}")
    return {"exit_code": _ABORT_EXIT, "killed_by": "signal", "timed_out": False}


def _note(message: str) -> None:
    sys.stderr.write(f"\n[wasm sandbox] {message}\n")
    sys.stderr.flush()


def run_job(
    job: dict[str, Any], engine: wasmtime.Engine, module: wasmtime.Module, streams: Streams
) -> dict[str, Any]:
    """Run a job written by :class:`~coditect.sandbox.wasm.WasmSandbox`."""
    preopens = [(job["project"], "/", True)]
    if job.get("site"):
        preopens.append((job["site"], "/site", False))
    return run_guest(
        engine=engine,
        module=module,
        argv=list(job["argv"]),
        env=dict(job["env"]),
        preopens=preopens,
        fuel=None if job["fuel"] is None else int(job["fuel"]),
        memory_bytes=int(job["memory_bytes"]),
        wall_timeout_s=max(0.0, float(job["deadline_monotonic"]) - time.monotonic()),
        streams=streams,
    )


def _job_limits(job: dict[str, Any]) -> None:
    """CPU seconds (counted from now: earlier jobs of this worker do not count) and file size."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(usage.ru_utime + usage.ru_stime) + int(job["cpu_rlimit_s"])
    _soft_limit(resource.RLIMIT_CPU, cpu)
    _soft_limit(resource.RLIMIT_FSIZE, int(job["fsize_bytes"]))


def _soft_limit(which: int, value: int | None) -> None:
    """Set the soft limit (``None``: back up to the hard limit); the hard one never changes."""
    _, hard = resource.getrlimit(which)
    if value is None or (hard != resource.RLIM_INFINITY and value > hard):
        value = hard
    resource.setrlimit(which, (value, hard))


def die_with_parent(parent_pid: int | None, *, poll_s: float = 0.2) -> None:
    """End this process when ``parent_pid`` (the process that started it) ends, and on SIGTERM.

    A daemon thread watches ``getppid()``: when the parent process dies this one is re-parented
    and exits within ``poll_s``. (The kernel's ``PR_SET_PDEATHSIG`` is not used: it fires when
    the parent *thread* ends, and the pool starts workers from short-lived worker threads.)
    SIGTERM gets its default action back, unblocked: the main thread may be inside a guest for
    minutes, where a Python-level handler would never run.
    """
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if parent_pid is None:
        return
    if os.getppid() != parent_pid:
        os._exit(_ORPHANED_EXIT)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(_ORPHANED_EXIT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(sock_fd: int, spec: dict[str, Any]) -> int:
    """Run the jobs sent over the socket ``sock_fd`` until it closes (``--serve``)."""
    import socket

    parent = os.environ.get(PARENT_ENV, "")
    die_with_parent(int(parent) if parent.isdigit() else None)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir("/")
    sock = socket.socket(fileno=sock_fd)
    broken = ""
    try:
        engine = make_engine(metered=bool(spec["metered"]))
        module = load_module(engine, Path(spec["module"]), Path(spec["wasm"]))
    except Exception as exc:  # reported with every job, so the parent learns why
        broken = f"the worker could not load the interpreter: {type(exc).__name__}: {exc}"
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 65536, 2)
        except OSError:
            return 0
        if not message:
            return 0
        job = json.loads(Path(message.decode()).read_text())
        try:
            if broken:
                raise RuntimeError(broken)
            if len(fds) != 2:
                raise RuntimeError(f"expected 2 file descriptors with the job, got {len(fds)}")
            _job_limits(job)
            out, err = (f"/proc/self/fd/{fd}" for fd in fds)
            status = run_job(job, engine, module, Streams(job["stdin_path"], out, err))
        except Exception as exc:  # the sandbox failed, not the command: tell the parent why
            status = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
            _soft_limit(resource.RLIMIT_CPU, None)
            _soft_limit(resource.RLIMIT_FSIZE, None)
        Path(job["status"]).write_text(json.dumps(status))
        sock.sendall(b"done")


def setup(module_path: Path, site: Path, wasm_path: Path, *, metered: bool) -> None:
    """Compile and serialize the interpreter; build and byte-compile the pytest copy."""
    engine = make_engine(metered=metered)
    module = load_module(engine, module_path, wasm_path)
    if site.exists():
        return
    site.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=site.name + ".", dir=site.parent))
    try:
        built = build_site(staging / "site")
        status = run_guest(
            engine=engine,
            module=module,
            argv=["python", "-c", _COMPILE_SITE],
            env={},  # no PYTHONDONTWRITEBYTECODE: writing .pyc files is the point
            preopens=[(str(built), "/site", True)],
            fuel=10**13 if metered else None,
            memory_bytes=1024**3,
            wall_timeout_s=600,
            streams=Streams(stdin=os.devnull),
        )
        if status["exit_code"] != 0:
            raise RuntimeError(f"byte-compiling pytest in the guest failed: {status}")
        try:
            os.replace(built, site)
        except OSError:
            if not site.exists():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(args: list[str]) -> int:
    """Entry point; returns the process exit code."""
    if len(args) == 2 and args[0] == "--serve":
        return serve(3, json.loads(args[1]))
    if len(args) == 2 and args[0] == "--setup":
        spec = json.loads(args[1])
        setup(
            Path(spec["module"]),
            Path(spec["site"]),
            Path(spec["wasm"]),
            metered=bool(spec["metered"]),
        )
        return 0
    sys.stderr.write("usage: _wasm_runner.py --serve SPEC | --setup SPEC\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
