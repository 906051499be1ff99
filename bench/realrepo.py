"""CODITECT on real open-source projects: validated tasks, hidden checks, one JSON object.

Data (docs/realrepo.md): bench/realrepo/manifest.toml lists trimmed snapshots of real projects
(name, version, licence, layout) under bench/realrepo/projects/; bench/realrepo/tasks/*.toml holds
one task each: the request as a user would write it, the kind (bug / feature / multi), an optional
setup patch (the planted bug), the hidden checking tests and a reference solution (for a planted
bug without an explicit solution, the reverse of the setup patch).

    python bench/realrepo.py --validate            # no model: every task is sound
    python bench/realrepo.py --limit 3             # run missions with the embedded model

``--validate`` checks per task that the hidden tests fail on the set-up project, pass with the
reference solution, and that the project's whole suite passes with it.

A bench run gives every task a fresh git repository (snapshot + setup patch, committed), runs
``coditect run --json`` on it in a subprocess, then checks out the mission's branch, adds the
hidden tests and runs them and the whole suite (the project's own test set-up, as detected by
coditect.taskqueue.testsetup). Solved: the hidden tests pass and no test that passed before the
mission fails after it. Prints ONE JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

from coditect.agents.baseline import compare  # noqa: E402
from coditect.agents.junit import parse_outcomes  # noqa: E402
from coditect.domain.paths import is_test_path  # noqa: E402
from coditect.taskqueue.testsetup import detect_dir  # noqa: E402

DATA = ROOT / "bench" / "realrepo"
KINDS = ("bug", "feature", "multi")
_JUNIT = ".bench-junit.xml"
_OVERFLOW = re.compile(r"exceed(?:s|ed)? (?:the )?context window|context overflow", re.I)
_IGNORE = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (exactly once) by ``new`` in ``file``; no ``old``: create ``file``."""

    file: str
    new: str
    old: str | None = None

    def inverse(self) -> Edit:
        """The edit that undoes this one."""
        if self.old is None:
            raise ValueError(f"cannot invert the creation of {self.file}")
        return Edit(file=self.file, old=self.new, new=self.old)


@dataclass(frozen=True)
class Task:
    """One bench task (see the module docstring)."""

    id: str
    project: str
    kind: str
    request: str
    check_file: str
    check_text: str
    setup: tuple[Edit, ...] = ()
    solution: tuple[Edit, ...] = ()
    solution_files: tuple[str, ...] = field(default=())


def projects() -> dict[str, Path]:
    """Project name -> snapshot directory, from the manifest."""
    manifest = tomllib.loads((DATA / "manifest.toml").read_text())
    return {p["name"]: DATA / p["dir"] for p in manifest["project"]}


def _edits(raw: list[dict[str, str]]) -> tuple[Edit, ...]:
    return tuple(Edit(file=e["file"], new=e["new"], old=e.get("old")) for e in raw)


def load_tasks() -> list[Task]:
    """Every task, sorted by project then id."""
    known = projects()
    tasks: list[Task] = []
    for path in sorted((DATA / "tasks").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        setup = _edits(raw.get("setup", []))
        solution = _edits(raw.get("solution", [])) or tuple(e.inverse() for e in reversed(setup))
        if raw["kind"] not in KINDS or raw["project"] not in known or not solution:
            raise ValueError(f"{path.name}: bad kind/project or no solution")
        tasks.append(
            Task(
                id=path.stem,
                project=raw["project"],
                kind=raw["kind"],
                request=" ".join(raw["request"].split()),
                check_file=raw["check"]["file"],
                check_text=raw["check"]["text"].lstrip("\n"),
                setup=setup,
                solution=solution,
                solution_files=tuple(dict.fromkeys(e.file for e in solution)),
            )
        )
    return sorted(tasks, key=lambda t: (t.project, t.id))


def apply_edits(root: Path, edits: tuple[Edit, ...]) -> None:
    """Apply ``edits`` to the tree at ``root``.

    Raises:
        ValueError: An ``old`` text is not found exactly once, or a created file exists.
    """
    for e in edits:
        target = root / e.file
        if e.old is None:
            if target.exists():
                raise ValueError(f"{e.file} already exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(e.new, encoding="utf-8")
            continue
        text = target.read_text(encoding="utf-8")
        if text.count(e.old) != 1:
            raise ValueError(f"{e.file}: the text to replace occurs {text.count(e.old)} times")
        target.write_text(text.replace(e.old, e.new), encoding="utf-8")


def run_tests(
    root: Path, selection: tuple[str, ...] = (), *, timeout_s: float = 300.0
) -> dict[str, str]:
    """Run the project's tests its own way (this interpreter); each test's outcome.

    A run that writes no JUnit report (it could not even start) gives ``{"(run)": "error"}``.
    """
    argv = detect_dir(root).command(selection, junit=_JUNIT)
    junit = root / _JUNIT
    junit.unlink(missing_ok=True)
    try:
        subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=root,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            # Fixed string hashing: a suite parametrized from a set names its tests the same way
            # in the run before the mission and the run after it (isodate's test_date).
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired:
        return {"(run)": "timeout"}
    if not junit.is_file():
        return {"(run)": "error"}
    try:
        return parse_outcomes(junit.read_text(encoding="utf-8"))
    finally:
        junit.unlink(missing_ok=True)


def _bad(outcomes: dict[str, str]) -> list[str]:
    return sorted(k for k, v in outcomes.items() if v not in ("passed", "skipped"))


def prepared(task: Task, parent: Path) -> Path:
    """A copy of the task's project with its setup patch applied."""
    root = parent / task.id
    shutil.copytree(projects()[task.project], root, ignore=_IGNORE)
    apply_edits(root, task.setup)
    return root


def validate(task: Task, parent: Path) -> dict[str, object]:
    """Check one task: hidden tests fail before, pass with the solution, suite passes with it."""
    row: dict[str, object] = {"task": task.id, "ok": False}
    try:
        root = prepared(task, parent)
        apply_edits(root, (Edit(file=task.check_file, new=task.check_text),))
        before = run_tests(root, (task.check_file,))
        row["check_before"] = Counter(before.values())
        if not _bad(before) or "(run)" in before:
            row["why"] = "the hidden tests do not fail before the solution"
            return row
        apply_edits(root, task.solution)
        after = run_tests(root, (task.check_file,))
        if _bad(after) or not after:
            row["why"] = f"hidden tests fail with the solution: {_bad(after)[:3]}"
            return row
        suite = run_tests(root)
        row["suite"] = Counter(suite.values())
        if _bad(suite):
            row["why"] = f"the suite fails with the solution: {_bad(suite)[:3]}"
            return row
        row["ok"] = True
    except (ValueError, OSError) as exc:
        row["why"] = str(exc)
    return row


# --- the bench -----------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout


def git_repo(task: Task, parent: Path) -> Path:
    """A fresh git repository holding the set-up project, committed on main."""
    root = prepared(task, parent)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "initial")):
        _git(root, *args)
    return root


def _failed_task(report: dict[str, object]) -> dict[str, object]:
    tasks = report.get("tasks") or []
    assert isinstance(tasks, list)
    failed = [t for t in tasks if str(t.get("status", "")).upper() == "FAILED"]
    return failed[-1] if failed else {}


_UNPARSABLE = re.compile(
    r"does not parse|not valid Python|could not parse|syntax|cut off|contains no|no Python code",
    re.I,
)


def categorize(report: dict[str, object], text: str, task: Task) -> str:
    """Why a mission that did not solve its task failed (from its report and output)."""
    if _OVERFLOW.search(text):
        return "context_overflow"
    reason = str(report.get("reason", ""))
    if "timed out" in reason.lower() or "timeout" in reason.lower():
        return "timeout"
    failed = _failed_task(report)
    intent = str(failed.get("intent", ""))
    error = str(failed.get("error", "")) + " " + reason
    if not report.get("tasks"):
        return "plan"
    # Only source files say where the fix went (a mission may change nothing but its tests).
    changed = {p for p in report.get("changed_files") or [] if not is_test_path(p)}  # type: ignore[attr-defined]
    if intent in ("write_code", "write_tests"):
        # The last generation's reason ("... in 3 generation(s): #1: ...; #3: ..."); a file
        # name such as parse.py in the message says nothing.
        last = re.split(r"#\d+: ", error)[-1]
        if _UNPARSABLE.search(last):
            return "edit_unparsable"
        return "edit_failed"
    if changed and not changed & set(task.solution_files):
        return "localization"
    if intent == "run_tests":
        return "tests_failed"
    return "other"


def run_task(
    task: Task,
    parent: Path,
    *,
    llm: str,
    timeout_s: float,
    home: Path,
    keep: Path | None = None,
) -> dict[str, object]:
    """Run one mission on a fresh repository and judge its branch with the hidden tests.

    ``keep``: a directory that receives the mission's report (``<task>.json``), its output
    (``<task>.log``) and the diff of its branch (``<task>.diff``), for reading failures later.
    """
    repo = git_repo(task, parent)
    before = run_tests(repo)
    _git(repo, "clean", "-fdqx")
    argv = [sys.executable, "-m", "coditect", "run", task.request, "--repo", str(repo)]
    # The mission's own limit comes first, so a slow mission still ends with its report.
    argv += ["--llm", llm, "--json", "--no-reuse", "--timeout", str(max(timeout_s - 30, 30))]
    row: dict[str, object] = {"task": task.id, "project": task.project, "kind": task.kind}
    t0 = time.perf_counter()
    env = {**os.environ, "CODITECT_HOME": str(home)}
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
        )
        out, err, timed_out = proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        timed_out = True
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    try:
        report: dict[str, object] = json.loads(out)
    except json.JSONDecodeError:
        report = {}
    tokens = report.get("tokens") or {}
    assert isinstance(tokens, dict)
    row |= {
        "status": report.get("status", "CRASH"),
        "reason": str(report.get("reason", ""))[:300],
        "tokens_in": int(tokens.get("input", 0)),
        "tokens_out": int(tokens.get("output", 0)),
        "changed_files": report.get("changed_files", []),
        "context_overflow": bool(_OVERFLOW.search(out + err)),
    }
    if keep is not None:
        _keep(keep, task.id, repo, report, out + err)
    if timed_out:
        return row | {"status": "TIMEOUT", "solved": False, "category": "timeout"}
    if not report:
        return row | {"solved": False, "category": "crash", "stderr_tail": err[-300:]}
    branch = str(report.get("branch", ""))
    # An UNVERIFIED change is committed on the mission's branch too: judge it the same way.
    if report.get("status") not in ("SUCCESS", "UNVERIFIED") or not branch:
        return row | {"solved": False, "category": categorize(report, out + err, task)}
    _git(repo, "checkout", "-q", branch)
    changed = {p for p in report.get("changed_files") or [] if not is_test_path(p)}  # type: ignore[attr-defined]
    return row | judge(task, repo, before, changed=changed)


def _keep(keep: Path, name: str, repo: Path, report: dict[str, object], text: str) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    (keep / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (keep / f"{name}.log").write_text(text, encoding="utf-8")
    branch = str(report.get("branch", ""))
    try:
        diff = _git(repo, "diff", f"main...{branch}") if branch else ""
    except subprocess.CalledProcessError as exc:  # FAILED missions leave no branch
        diff = exc.stderr
    (keep / f"{name}.diff").write_text(diff, encoding="utf-8")


def judge(
    task: Task, repo: Path, before: dict[str, str], *, changed: set[str] | None = None
) -> dict[str, object]:
    """Judge the tree at ``repo``: hidden tests added and run, then the whole suite.

    Solved: the hidden tests pass and no test that passed in ``before`` fails now. ``changed``
    (the source files the system changed, when known) tells a localization miss apart.
    """
    apply_edits(repo, (Edit(file=task.check_file, new=task.check_text),))
    hidden = run_tests(repo, (task.check_file,))
    after = run_tests(repo)
    if _bad(hidden) or "(run)" in hidden:
        miss = bool(changed and not changed & set(task.solution_files))
        return {"solved": False, "category": "localization" if miss else "hidden_tests_failed"}
    regressions = list(compare(before, after, full_run=True).regressions)
    if regressions:
        return {"solved": False, "category": "regression", "regressions": regressions[:5]}
    return {"solved": True, "category": ""}


def interleaved(tasks: list[Task]) -> list[Task]:
    """The tasks one project at a time in turn (a prefix is a slice across projects)."""
    queues: dict[str, list[Task]] = {}
    for t in tasks:
        queues.setdefault(t.project, []).append(t)
    out: list[Task] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                out.append(queue.pop(0))
    return out


def bench_tasks(limit: int) -> list[dict[str, object]]:
    """The first ``limit`` tasks, across projects, for bench/peer.py: id, request, files, check.

    ``files`` is the set-up project; ``check(repo)`` judges the tree a system left (hidden tests,
    then the whole suite against its outcomes on the unchanged project). No files are named to
    the system: finding them is part of the task.
    """
    out: list[dict[str, object]] = []
    for task in interleaved(load_tasks())[:limit]:
        with tempfile.TemporaryDirectory() as tmp:
            root = prepared(task, Path(tmp))
            files = {
                str(f.relative_to(root)): f.read_text(encoding="utf-8")
                for f in sorted(root.rglob("*"))
                if f.is_file()
            }
            before = run_tests(root)

        def check(repo: Path, task: Task = task, before: dict[str, str] = before) -> bool:
            return bool(judge(task, repo, before)["solved"])

        out.append({"id": task.id, "request": task.request, "files": files, "check": check})
    return out


def _rate(rows: list[dict[str, object]]) -> float | None:
    return round(sum(bool(r["solved"]) for r in rows) / len(rows), 3) if rows else None


def _by_outcome(rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """Per mission status: how many missions ended so, and how many of them solved the task."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        slot = out.setdefault(str(r.get("status", "unknown")).lower(), {"missions": 0, "solved": 0})
        slot["missions"] += 1
        slot["solved"] += bool(r["solved"])
    return out


def summary(rows: list[dict[str, object]], llm: str) -> dict[str, object]:
    """The one JSON object of a bench run."""
    walls = [float(r["wall_s"]) for r in rows]  # type: ignore[arg-type]
    return {
        "tasks": len(rows),
        "solved": sum(bool(r["solved"]) for r in rows),
        "solve_rate": _rate(rows),
        "per_kind": {k: _rate([r for r in rows if r["kind"] == k]) for k in KINDS},
        "median_wall_s": round(statistics.median(walls), 1) if walls else None,
        "tokens_in": sum(int(r["tokens_in"]) for r in rows),  # type: ignore[call-overload]
        "tokens_out": sum(int(r["tokens_out"]) for r in rows),  # type: ignore[call-overload]
        "context_overflows": sum(bool(r["context_overflow"]) for r in rows),
        "by_outcome": _by_outcome(rows),
        "failure_categories": dict(Counter(str(r["category"]) for r in rows if not r["solved"])),
        "failures": {str(r["task"]): r["category"] for r in rows if not r["solved"]},
        "model": llm,
        "per_task": rows,
    }


def select(tasks: list[Task], args: argparse.Namespace) -> list[Task]:
    """The tasks chosen by --task / --project / --start / --limit."""
    if args.task:
        tasks = [t for t in tasks if t.id in args.task]
    if args.project:
        tasks = [t for t in tasks if t.project == args.project]
    return tasks[args.start :][: args.limit]


def main() -> None:
    """Validate the tasks or run the bench; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validate", action="store_true", help="check the tasks (no model)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--task", action="append", default=[], help="a task id (repeatable)")
    parser.add_argument("--project", default=None)
    parser.add_argument("--llm", default="local")
    parser.add_argument("--timeout", type=float, default=600.0, help="per mission, seconds")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="directory for each mission's report, log, diff, and their state (home/)",
    )
    args = parser.parse_args()
    tasks = select(load_tasks(), args)
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        if args.validate:
            rows = [validate(t, parent) for t in tasks]
            bad = [r for r in rows if not r["ok"]]
            kinds = Counter(t.kind for t in tasks)
            result: dict[str, object] = {
                "tasks": len(rows),
                "valid": len(rows) - len(bad),
                "kinds": dict(kinds),
                "projects": dict(Counter(t.project for t in tasks)),
                "invalid": bad,
            }
            print(json.dumps(result, indent=2, default=dict))
            sys.exit(1 if bad else 0)
        rows = []
        for t in tasks:
            rows.append(
                run_task(
                    t,
                    parent,
                    llm=args.llm,
                    timeout_s=args.timeout,
                    # With --keep, the missions' state (events, answers) is kept too.
                    home=args.keep / "home" if args.keep else parent / "home",
                    keep=args.keep,
                )
            )
            print(json.dumps({"done": t.id, "solved": rows[-1]["solved"]}), file=sys.stderr)
        print(json.dumps(summary(rows, args.llm), indent=2))


if __name__ == "__main__":
    main()
