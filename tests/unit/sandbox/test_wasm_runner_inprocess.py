"""The wasm runner's guest execution, run in this process.

In production ``_wasm_runner`` runs in warm worker processes (``python -I``), where coverage
cannot follow it; these tests drive the same functions here, on the real interpreter module.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coditect.sandbox import _wasm_runner as runner
from coditect.sandbox.wasm import WasmSandbox, _runtime_path

pytestmark = pytest.mark.skipif(not WasmSandbox.available(), reason="wasmtime not installed")


@pytest.fixture(scope="module")
def prepared() -> tuple[Path, Path]:
    """The compiled interpreter and pytest site, prepared once like the sandbox does."""
    return asyncio.run(WasmSandbox()._prepare())


def _run(prepared, tmp_path: Path, code: str, **overrides):
    module_path, _site = prepared
    metered = overrides.pop("metered", True)
    engine = runner.make_engine(metered=metered)
    module = runner.load_module(engine, module_path, _runtime_path())
    out, err = tmp_path / "out", tmp_path / "err"
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    status = runner.run_guest(
        engine=engine,
        module=module,
        argv=["python", "-c", code],
        env={"PYTHONDONTWRITEBYTECODE": "1"},
        preopens=[(str(project), "/", True)],
        fuel=overrides.pop("fuel", 10**10) if metered else None,
        memory_bytes=overrides.pop("memory_bytes", 256 * 1024 * 1024),
        wall_timeout_s=overrides.pop("wall_timeout_s", 30.0),
        streams=runner.Streams(stdout=str(out), stderr=str(err)),
    )
    return status, out.read_text(), err.read_text(), project


def test_a_guest_runs_and_writes_only_its_project(prepared, tmp_path):
    status, out, _, project = _run(
        prepared, tmp_path, "open('/made.txt', 'w').write('x'); print('hi'); raise SystemExit(3)"
    )
    assert status == {"exit_code": 3, "killed_by": "", "timed_out": False}
    assert out == "hi\n"
    assert (project / "made.txt").read_text() == "x"


def test_fuel_running_out_is_reported_as_cpu(prepared, tmp_path):
    status, _, _, _ = _run(prepared, tmp_path, "while True: pass", fuel=50_000_000)
    assert status["killed_by"] == "cpu" and not status["timed_out"]


def test_the_epoch_deadline_stops_busy_code(prepared, tmp_path):
    status, _, _, _ = _run(prepared, tmp_path, "while True: pass", fuel=10**15, wall_timeout_s=0.5)
    assert status == {"exit_code": -9, "killed_by": "timeout", "timed_out": True}


def test_memory_is_bounded_by_the_store_limit(prepared, tmp_path):
    status, _, err, _ = _run(
        prepared, tmp_path, "b = bytearray(200 * 1024 * 1024)", memory_bytes=64 * 1024 * 1024
    )
    assert status["exit_code"] != 0 and "MemoryError" in err


def test_an_unmetered_engine_runs_without_fuel(prepared, tmp_path):
    status, out, _, _ = _run(prepared, tmp_path, "print(6 * 7)", metered=False)
    assert status["exit_code"] == 0 and out == "42\n"


def test_run_job_maps_the_job_fields(prepared, tmp_path):
    import time

    module_path, site = prepared
    engine = runner.make_engine(metered=True)
    module = runner.load_module(engine, module_path, _runtime_path())
    project = tmp_path / "p"
    project.mkdir()
    out = tmp_path / "o"
    job = {
        "project": str(project),
        "site": str(site),
        "argv": ["python", "-c", "import pytest; print(pytest.__file__.startswith('/site/'))"],
        "env": {"PYTHONPATH": "/site"},
        "fuel": 10**10,
        "memory_bytes": 256 * 1024 * 1024,
        "deadline_monotonic": time.monotonic() + 30,
    }
    status = runner.run_job(job, engine, module, runner.Streams(stdout=str(out)))
    assert status["exit_code"] == 0 and out.read_text() == "True\n"
