"""The wasm backend beyond the contract: argv mapping, confinement, and its own limits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from coditect.errors import SandboxError
from coditect.sandbox.base import SandboxLimits, SandboxRequest
from coditect.sandbox.wasm import WasmSandbox, guest_argv

ROOT = Path("/home/dev/project")


def test_guest_argv_for_pytest() -> None:
    argv = ("python", "-m", "pytest", "-q", f"--junitxml={ROOT}/.coditect/junit.xml", "tests")
    assert guest_argv(argv, ROOT) == [
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:faulthandler",
        "-p",
        "no:logging",
        "--capture=sys",
        "-q",
        "--junitxml=.coditect/junit.xml",
        "tests",
    ]


def test_guest_argv_keeps_explicit_capture_and_maps_paths() -> None:
    argv = ("python", "-m", "pytest", "-s", f"{ROOT}/tests/test_a.py", "--capture=fd")
    mapped = guest_argv(argv, ROOT)
    assert mapped[-3:] == ["-s", "tests/test_a.py", "--capture=sys"]
    assert mapped.count("--capture=sys") == 1


def test_guest_argv_keeps_x_and_w_options() -> None:
    assert guest_argv(("python", "-X", "importtime", "-W", "error", "-m", "mod"), ROOT) == [
        "python",
        "-X",
        "importtime",
        "-W",
        "error",
        "-m",
        "mod",
    ]


def test_guest_argv_for_code_and_scripts() -> None:
    code = f"print('{ROOT}')"
    assert guest_argv(("python3", "-u", "-c", code, str(ROOT)), ROOT) == [
        "python",
        "-c",
        code,
        ".",
    ]
    assert guest_argv(("python", f"{ROOT}/tool.py", "/etc/x"), ROOT) == [
        "python",
        "tool.py",
        "/etc/x",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ("sh", "-c", "true"),
        ("python",),
        ("python", "-O", "a.py"),
        ("python", "-c"),
        ("python", "-X"),
        ("/usr/bin/python3", "-c", "pass"),
    ],
)
def test_unsupported_commands(argv: tuple[str, ...], tmp_path: Path) -> None:
    assert not WasmSandbox().supports(argv)


async def test_unsupported_command_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="cannot run"):
        await WasmSandbox().run(SandboxRequest(argv=("ls",), workdir=tmp_path))


# --- running guests ---------------------------------------------------------------------------

needs_wasm = pytest.mark.skipif(not WasmSandbox.available(), reason="wasmtime not installed")


async def _run(workdir: Path, code: str, **limits: float) -> tuple[int, str, str, str]:
    request = SandboxRequest(
        argv=("python", "-c", code),
        workdir=workdir,
        limits=SandboxLimits(**{"wall_timeout_s": 60, **limits}),
    )
    result = await WasmSandbox().run(request)
    return result.exit_code, result.stdout, result.stderr, result.killed_by


@needs_wasm
async def test_busy_loop_hits_the_epoch_deadline(tmp_path: Path) -> None:
    request = SandboxRequest(
        argv=("python", "-c", "while True: pass"),
        workdir=tmp_path,
        limits=SandboxLimits(wall_timeout_s=1, cpu_s=600),
    )
    result = await WasmSandbox().run(request)
    assert result.timed_out
    assert result.killed_by == "timeout"


@needs_wasm
async def test_no_network(tmp_path: Path) -> None:
    code = (
        "import socket\n"
        "try:\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.connect(('127.0.0.1', 9))\n"
        "except (OSError, AttributeError) as exc:\n"
        "    print('blocked', type(exc).__name__)\n"
    )
    exit_code, stdout, stderr, _ = await _run(tmp_path, code)
    assert exit_code == 0, stderr
    assert stdout.startswith("blocked")


@needs_wasm
async def test_only_the_project_is_visible(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("ok")
    code = (
        "import os\n"
        "print(sorted(os.listdir('/')))\n"
        "for path in ('/etc/passwd', '/../etc/passwd', '/site/../../etc/passwd'):\n"
        "    try:\n"
        "        open(path).read()\n"
        "        print('READ', path)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        "    open('/site/evil.py', 'w').write('x')\n"
        "    print('WROTE site')\n"
        "except OSError:\n"
        "    pass\n"
    )
    exit_code, stdout, stderr, _ = await _run(tmp_path, code)
    assert exit_code == 0, stderr
    assert "mine.txt" in stdout
    assert "READ" not in stdout
    assert "WROTE" not in stdout


@needs_wasm
async def test_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    project = tmp_path / "project"
    project.mkdir()
    (project / "link").symlink_to(outside / "secret.txt")
    code = "try:\n    print(open('link').read())\nexcept OSError as exc:\n    print('refused')\n"
    exit_code, stdout, stderr, _ = await _run(project, code)
    assert exit_code == 0, stderr
    assert "SECRET" not in stdout


@needs_wasm
async def test_memory_limit(tmp_path: Path) -> None:
    code = "x = bytearray(400 * 1024 * 1024)"
    exit_code, _, stderr, killed_by = await _run(tmp_path, code, max_memory_bytes=128 * 1024 * 1024)
    assert exit_code == 1
    assert "MemoryError" in stderr
    assert killed_by == ""


@needs_wasm
async def test_host_environment_is_not_visible(tmp_path: Path) -> None:
    code = "import os; print(sorted(os.environ))"
    exit_code, stdout, stderr, _ = await _run(tmp_path, code)
    assert exit_code == 0, stderr
    names = eval(stdout)  # noqa: S307 - our own output
    assert "CODITECT_HOME" not in names
    assert "PYTHONPATH" in names


@pytest.mark.slow
@needs_wasm
async def test_setup_builds_the_cache_and_prunes_old_entries(tmp_path: Path) -> None:
    from coditect.sandbox import wasm

    warm = WasmSandbox()
    module_path, _ = await warm._prepare()  # the shared cache: compiles only on a fresh machine
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / module_path.name).write_bytes(module_path.read_bytes())
    stale_site = cache / "site-0123456789abcdef"
    stale_site.mkdir()
    (cache / "python-0123456789abcdef.cwasm").write_bytes(b"old")
    (cache / "notes.txt").write_text("not ours")
    fresh = WasmSandbox(cache=cache)
    project = tmp_path / "project"
    project.mkdir()
    result = await fresh.run(
        SandboxRequest(
            argv=("python", "-c", "import pytest; print(pytest.__version__)"), workdir=project
        )
    )
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted([module_path.name, f"site-{wasm._site_key()}", "notes.txt"])
    compiled = list((cache / f"site-{wasm._site_key()}" / "_pytest" / "__pycache__").glob("*.pyc"))
    assert compiled and all("cpython-312" in p.name for p in compiled)


# --- the unmetered engine (metering="rlimit") ----------------------------------------------------


@pytest.mark.slow
@needs_wasm
async def test_rlimit_metering_limits_and_runs_pytest(tmp_path: Path) -> None:
    sandbox = WasmSandbox(metering="rlimit")
    loop = await sandbox.run(
        SandboxRequest(
            argv=("python", "-c", "while True: pass"),
            workdir=tmp_path,
            limits=SandboxLimits(wall_timeout_s=60, cpu_s=1),
        )
    )
    assert (loop.killed_by, loop.timed_out) == ("cpu", False)
    sleep = await sandbox.run(
        SandboxRequest(
            argv=("python", "-c", "import time; time.sleep(30)"),
            workdir=tmp_path,
            limits=SandboxLimits(wall_timeout_s=1),
        )
    )
    assert (sleep.killed_by, sleep.timed_out) == ("timeout", True)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    run = await sandbox.run(
        SandboxRequest(
            argv=("python", "-m", "pytest", "-q", "--junitxml=.coditect/junit.xml", "tests"),
            workdir=tmp_path,
        )
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    assert (tmp_path / ".coditect" / "junit.xml").is_file()


def test_unknown_metering() -> None:
    with pytest.raises(ValueError):
        WasmSandbox(metering="gas")  # type: ignore[arg-type]


# --- the warm worker pool ------------------------------------------------------------------------


async def _idle_pids(sandbox: WasmSandbox) -> list[int]:
    pool, _ = await sandbox._pool()
    return [worker.pid for worker in pool._idle]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_wasm
async def test_warm_worker_runs_the_next_job_in_a_fresh_instance(tmp_path: Path) -> None:
    sandbox = WasmSandbox()
    first = await _run(
        tmp_path, "import builtins, sys; builtins.LEFT = 1; sys.stdout.write('no newline')"
    )
    assert first[:2] == (0, "no newline")
    warm = await _idle_pids(sandbox)
    assert warm
    code = "import builtins; print(hasattr(builtins, 'LEFT'), input())"
    request = SandboxRequest(argv=("python", "-c", code), workdir=tmp_path, stdin=b"fed\n")
    second = await sandbox.run(request)
    assert (second.exit_code, second.stdout) == (0, "False fed\n"), second.stderr
    assert set(await _idle_pids(sandbox)) & set(warm)  # the same worker ran it


@needs_wasm
async def test_worker_that_overruns_its_deadline_is_killed_and_replaced(tmp_path: Path) -> None:
    sandbox = WasmSandbox()
    await _run(tmp_path, "pass")
    before = await _idle_pids(sandbox)
    code = "import time; print('started', flush=True); time.sleep(60)"
    exit_code, stdout, _, killed_by = await _run(tmp_path, code, wall_timeout_s=2)
    assert (exit_code, killed_by) == (-9, "timeout")
    assert stdout == "started\n"
    after = await _idle_pids(sandbox)
    killed = [pid for pid in before if pid not in after]
    assert killed and not any(_alive(pid) for pid in killed)
    assert after  # a replacement was started at once
    assert (await _run(tmp_path, "print('next')"))[:2] == (0, "next\n")


@needs_wasm
async def test_cancelling_a_run_kills_its_worker(tmp_path: Path) -> None:
    sandbox = WasmSandbox()
    await _run(tmp_path, "pass")
    busy = set(await _idle_pids(sandbox))
    request = SandboxRequest(
        argv=("python", "-c", "import time; time.sleep(60)"),
        workdir=tmp_path,
        limits=SandboxLimits(wall_timeout_s=60),
    )
    task = asyncio.create_task(sandbox.run(request))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not any(_alive(pid) for pid in busy - set(await _idle_pids(sandbox))):
            break
        await asyncio.sleep(0.05)
    assert not any(_alive(pid) for pid in busy - set(await _idle_pids(sandbox)))
