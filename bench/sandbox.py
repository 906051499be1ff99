"""Sandbox start-up cost and a one-test pytest run, per backend; prints ONE JSON object.

Usage: python bench/sandbox.py [--runs 100] [--pytest-runs 3] [--backends process,wasm] [--ballast-mb 1500]

For each backend that can run here (``bare`` is a plain child process without any sandbox, for
reference; ``wasm_rlimit`` is the wasm backend with ``metering="rlimit"``, no fuel or epochs):
p50/p99 wall time of ``python -c pass`` over ``--runs`` runs, its p50 minus bare's
(``p50_over_bare_ms``), and the median wall time of ``python -m pytest`` on a project with one
test. Runs are interleaved across backends (one of each in turn), so that all of them see the same
load on a shared machine; the load average at the start and the end is in ``machine``. The first
run of each backend (for wasm: loading or compiling the interpreter, starting a worker) is timed
separately as ``first_run_s``; later wasm runs use the warm worker pool. ``--ballast-mb N``
makes the bench process resident in N MB first, as CODITECT is with the local model loaded
(about 1,500 MB), which is what a fork of the parent process pays for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coditect.sandbox.base import Sandbox, SandboxLimits, SandboxRequest
from coditect.sandbox.policy import SANDBOX_BACKENDS

ORDER = ("subprocess", "process", "wasm", "docker")
TRIVIAL = ("python", "-c", "pass")
PYTEST = (
    "python",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "--junitxml=.coditect/junit.xml",
    "tests",
)
LIMITS = SandboxLimits(wall_timeout_s=120)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _stats_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_percentile(samples, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(samples, 0.99) * 1000, 1),
        "runs": len(samples),
    }


async def _bare(workdir: Path) -> float:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "pass",
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    return time.perf_counter() - start


async def _timed(sandbox: Sandbox, argv: tuple[str, ...], workdir: Path) -> float:
    start = time.perf_counter()
    result = await sandbox.run(SandboxRequest(argv=argv, workdir=workdir, limits=LIMITS))
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(f"{sandbox.name}: {argv} failed: {result.stderr[-500:]}")
    return elapsed


def _project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return root


async def _bench(runs: int, pytest_runs: int, only: set[str]) -> dict[str, object]:
    out: dict[str, object] = {
        "bench": "sandbox",
        "command": " ".join(TRIVIAL),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "backends": {},
        "unavailable": {},
    }
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="coditect-bench-") as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        project = _project(Path(tmp) / "project")
        candidates: list[tuple[str, Sandbox]] = []
        for name in ORDER:
            if only and name not in only:
                continue
            spec = SANDBOX_BACKENDS.get(name)
            if spec is None or not spec.available():
                unavailable[name] = spec.install_hint if spec else "not registered"
                continue
            candidates.append((name, spec.factory()))
            if name == "wasm":
                from coditect.sandbox.wasm import WasmSandbox

                candidates.append(("wasm_rlimit", WasmSandbox(metering="rlimit")))
        entries: dict[str, dict[str, object]] = {"bare": {}}
        for name, sandbox in candidates:
            start = time.perf_counter()
            await _timed(sandbox, TRIVIAL, empty)  # warm-up (wasm: compile or load the cache)
            entries[name] = {"first_run_s": round(time.perf_counter() - start, 2)}
        # Interleaved, so that every backend sees the same load on a shared machine.
        samples: dict[str, list[float]] = {name: [] for name in entries}
        for _ in range(runs):
            samples["bare"].append(await _bare(empty))
            for name, sandbox in candidates:
                samples[name].append(await _timed(sandbox, TRIVIAL, empty))
        pytest_samples: dict[str, list[float]] = {name: [] for name, _ in candidates}
        for _ in range(pytest_runs):
            for name, sandbox in candidates:
                pytest_samples[name].append(await _timed(sandbox, PYTEST, project))
        bare_p50 = _percentile(samples["bare"], 0.5)
        for name, entry in entries.items():
            entry.update(_stats_ms(samples[name]))
            if name != "bare":
                over = _percentile(samples[name], 0.5) - bare_p50
                entry["p50_over_bare_ms"] = round(over * 1000, 1)
                entry["pytest_one_test_s"] = round(statistics.median(pytest_samples[name]), 3)
    out["backends"] = entries
    out["unavailable"] = unavailable
    machine = out["machine"]
    assert isinstance(machine, dict)
    machine["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--pytest-runs", type=int, default=3)
    parser.add_argument("--backends", default="", help="comma-separated subset (default: all)")
    parser.add_argument(
        "--ballast-mb",
        type=int,
        default=0,
        help="touch this much memory first, as the loaded local model does in a mission (~1,500)",
    )
    args = parser.parse_args()
    ballast = bytearray(args.ballast_mb * 1024 * 1024)
    for offset in range(0, len(ballast), 4096):  # resident, so a fork has page tables to copy
        ballast[offset] = 1
    start = time.perf_counter()
    only = {name for name in args.backends.split(",") if name}
    result = asyncio.run(_bench(args.runs, args.pytest_runs, only))
    result["ballast_mb"] = args.ballast_mb
    result["total_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
