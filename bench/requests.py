"""Runs every request of examples/requests.txt with the embedded model; prints one JSON object.

Each request runs on its own fresh git copy of examples/calculator, in one process (the model is
loaded once). Usage: python bench/requests.py [--llm local] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_repo, requests  # noqa: E402

from coditect.config import Settings  # noqa: E402
from coditect.runtime import build_runtime  # noqa: E402


async def run_all(llm: str, limit: int | None) -> dict[str, object]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rt = build_runtime(Settings(home=Path(tmp) / "home", llm=llm))
        t_all = time.perf_counter()
        try:
            for i, request in enumerate(requests()[:limit]):
                repo = fresh_repo(Path(tmp), f"repo{i}")
                t0 = time.perf_counter()
                report = await rt.runner.run(request, repo)
                rows.append(
                    {
                        "request": request,
                        "status": report.status.value,
                        "reason": report.reason[:200],
                        "plan_source": report.plan_source,
                        "wall_s": round(time.perf_counter() - t0, 2),
                        "tokens_in": report.tokens.input,
                        "tokens_out": report.tokens.output,
                        "repairs": sum(t.id.startswith("repair") for t in report.tasks),
                        "changed_files": report.changed_files,
                    }
                )
        finally:
            await rt.aclose()
        total_wall = time.perf_counter() - t_all
    return {
        "requests": len(rows),
        "successes": sum(r["status"] == "SUCCESS" for r in rows),
        "wall_s": round(total_wall, 1),
        "tokens_in": sum(r["tokens_in"] for r in rows),
        "tokens_out": sum(r["tokens_out"] for r in rows),
        "model": llm,
        "per_request": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--llm", default="local")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run_all(args.llm, args.limit)), indent=2))


if __name__ == "__main__":
    main()
