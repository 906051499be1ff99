"""Runs the Fibonacci mission N times with the embedded model; prints one JSON object.

Each run is a separate `coditect run --json` process on a fresh git copy of examples/calculator,
so model load is included in every run (first-time install and model assembly are not: run
`coditect model fetch` once before). Usage: python bench/e2e_fibonacci.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_repo  # noqa: E402

REQUEST = "Add a function to calculate the nth Fibonacci number"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--llm", default="local")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="allow work reuse between runs (default: every run works afresh)",
    )
    args = parser.parse_args()
    walls, stages, outcomes, tokens = [], {}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CODITECT_HOME": str(Path(tmp) / "home")}
        for i in range(args.runs):
            repo = fresh_repo(Path(tmp), f"repo{i}")
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "coditect",
                    "run",
                    REQUEST,
                    "--repo",
                    str(repo),
                    "--llm",
                    args.llm,
                    "--json",
                    *([] if args.reuse else ["--no-reuse"]),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            wall = time.perf_counter() - t0
            try:
                report = json.loads(proc.stdout)
            except json.JSONDecodeError:
                report = {"status": "ERROR", "reason": proc.stderr[-500:], "stage_s": {}}
            walls.append(wall)
            outcomes.append(
                {
                    "status": report["status"],
                    "reason": report.get("reason", ""),
                    "wall_s": round(wall, 2),
                    "plan_source": report.get("plan_source"),
                }
            )
            tokens.append(report.get("tokens", {}))
            for stage, secs in report.get("stage_s", {}).items():
                stages.setdefault(stage, []).append(secs)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "runs": args.runs,
                "successes": sum(o["status"] == "SUCCESS" for o in outcomes),
                "median_wall_s": round(statistics.median(walls), 2),
                "max_wall_s": round(max(walls), 2),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "median_stage_s": {
                    k: round(statistics.median(v), 2) for k, v in sorted(stages.items())
                },
                "median_tokens_in": statistics.median(t.get("input", 0) for t in tokens),
                "median_tokens_out": statistics.median(t.get("output", 0) for t in tokens),
                "model": args.llm,
                "reuse": args.reuse,
                "per_run": outcomes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
