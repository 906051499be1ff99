"""Work reuse benchmark: the same workload with reuse off and on; prints one JSON object.

Workload (issue 5): the requests of examples/requests.txt run as missions on a fresh git copy of
examples/calculator; then the repository changes in ways unrelated to most of them (README.md and
calculator/text.py are edited and committed); then the same missions run again; then their
paraphrases (examples/paraphrases.txt). Each mode gets its own repository and CODITECT home.

Usage: python bench/reuse.py [--llm local] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, fresh_repo, requests  # noqa: E402

from coditect.config import Settings  # noqa: E402
from coditect.runtime import build_runtime  # noqa: E402


def paraphrases() -> list[str]:
    """The lines of examples/paraphrases.txt, in the order of examples/requests.txt."""
    lines = (ROOT / "examples" / "paraphrases.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def unrelated_edit(repo: Path) -> None:
    """Edit README.md and calculator/text.py (a new helper) and commit."""
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\nSee docs for more examples.\n")
    text = repo / "calculator" / "text.py"
    text.write_text(
        text.read_text() + '\n\ndef shout(s):\n    """Upper-case ``s``."""\n    return s.upper()\n'
    )
    for args in (["add", "-A"], ["commit", "-qm", "unrelated edit"]):
        subprocess.run(
            ["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )


async def run_mode(llm: str, limit: int | None, reuse: bool, tmp: Path) -> dict[str, object]:
    """Run the three phases in one mode."""
    repo = fresh_repo(tmp, f"repo-{'on' if reuse else 'off'}")
    settings = Settings(home=tmp / f"home-{reuse}", llm=llm, reuse=reuse)
    rt = build_runtime(settings)
    phases: dict[str, list[str]] = {
        "first": requests()[:limit],
        "again": requests()[:limit],
        "paraphrased": paraphrases()[:limit],
    }
    rows = []
    t_all = time.perf_counter()
    try:
        for phase, reqs in phases.items():
            if phase == "again":
                unrelated_edit(repo)
            for request in reqs:
                t0 = time.perf_counter()
                report = await rt.runner.run(request, repo)
                rows.append(
                    {
                        "phase": phase,
                        "request": request,
                        "status": report.status.value,
                        "reason": report.reason[:160],
                        "plan_source": report.plan_source,
                        "tokens": report.tokens.input + report.tokens.output,
                        "usd": report.tokens.usd,
                        "saved_tokens": report.tokens.saved,
                        "reused_tasks": [t.id for t in report.tasks if t.reused],
                        "cached_calls": report.tokens.reused_calls,
                        "wall_s": round(time.perf_counter() - t0, 2),
                    }
                )
    finally:
        await rt.aclose()
    by_phase = {
        p: {
            "tokens": sum(int(r["tokens"]) for r in rows if r["phase"] == p),  # type: ignore[call-overload]
            "successes": sum(r["status"] == "SUCCESS" for r in rows if r["phase"] == p),
        }
        for p in phases
    }
    return {
        "tokens": sum(int(r["tokens"]) for r in rows),  # type: ignore[call-overload]
        "usd": round(sum(float(r["usd"]) for r in rows), 6),  # type: ignore[arg-type]
        "wall_s": round(time.perf_counter() - t_all, 1),
        "successes": sum(r["status"] == "SUCCESS" for r in rows),
        "missions": len(rows),
        "by_phase": by_phase,
        "per_mission": rows,
    }


async def main_async(llm: str, limit: int | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        off = await run_mode(llm, limit, False, Path(tmp))
        on = await run_mode(llm, limit, True, Path(tmp))
    off_tokens, on_tokens = int(off["tokens"]), int(on["tokens"])  # type: ignore[call-overload]
    return {
        "model": llm,
        "requests": len(requests()[:limit]),
        "off": off,
        "on": on,
        "token_ratio": round(off_tokens / on_tokens, 2) if on_tokens else None,
        "token_ratio_note": "None means reuse on spent 0 tokens" if not on_tokens else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    result = asyncio.run(main_async(args.llm, args.limit))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
