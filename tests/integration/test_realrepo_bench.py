"""The real-project bench data stays sound: manifest, task mix, patches, and two full validations."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench() -> ModuleType:
    if "realrepo" in sys.modules:
        return sys.modules["realrepo"]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("realrepo", BENCH / "realrepo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["realrepo"] = module
    spec.loader.exec_module(module)
    return module


def test_manifest_and_task_mix():
    rr = _bench()
    projects = rr.projects()
    assert len(projects) >= 5
    for name, root in projects.items():
        assert (root / "LICENSE").is_file() or (root / "COPYING.txt").is_file(), name
    tasks = rr.load_tasks()
    assert len(tasks) >= 30 and len({t.id for t in tasks}) == len(tasks)
    kinds = Counter(t.kind for t in tasks)
    assert kinds["bug"] / len(tasks) >= 0.35 and kinds["feature"] / len(tasks) >= 0.35
    assert kinds["multi"] / len(tasks) >= 0.15
    assert set(Counter(t.project for t in tasks)) == set(projects)


def test_every_patch_applies_to_its_snapshot(tmp_path):
    rr = _bench()
    for task in rr.load_tasks():
        root = rr.prepared(task, tmp_path)  # applies the setup patch
        rr.apply_edits(root, task.solution)
        assert not (root / task.check_file).exists(), task.id


def test_inverse_and_bad_edits(tmp_path):
    rr = _bench()
    (tmp_path / "m.py").write_text("a = 1\na = 1\n")
    edit = rr.Edit(file="m.py", old="a = 1\n", new="b\n")
    with pytest.raises(ValueError, match="2 times"):
        rr.apply_edits(tmp_path, (edit,))
    with pytest.raises(ValueError, match="already exists"):
        rr.apply_edits(tmp_path, (rr.Edit(file="m.py", new=""),))
    with pytest.raises(ValueError, match="cannot invert"):
        rr.Edit(file="n.py", new="x").inverse()
    assert edit.inverse() == rr.Edit(file="m.py", old="b\n", new="a = 1\n")


@pytest.mark.slow
@pytest.mark.parametrize("task_id", ["inflection-humanize-id", "isodate-parse-interval"])
def test_full_validation(task_id, tmp_path):
    rr = _bench()
    task = next(t for t in rr.load_tasks() if t.id == task_id)
    row = rr.validate(task, tmp_path)
    assert row["ok"], row


def test_summary_and_categories():
    rr = _bench()
    task = next(t for t in rr.load_tasks() if t.kind == "multi")
    rows = [
        {
            "task": "a",
            "kind": "bug",
            "status": "UNVERIFIED",
            "solved": True,
            "category": "",
            "wall_s": 10.0,
            "tokens_in": 5,
            "tokens_out": 1,
            "context_overflow": False,
        },
        {
            "task": "b",
            "kind": "multi",
            "solved": False,
            "category": "timeout",
            "wall_s": 30.0,
            "tokens_in": 7,
            "tokens_out": 2,
            "context_overflow": True,
        },
    ]
    out = rr.summary(rows, "scripted")
    assert out["solved"] == 1 and out["solve_rate"] == 0.5 and out["median_wall_s"] == 20.0
    assert out["per_kind"] == {"bug": 1.0, "feature": None, "multi": 0.0}
    assert out["context_overflows"] == 1 and out["failures"] == {"b": "timeout"}
    assert out["by_outcome"] == {
        "unverified": {"missions": 1, "solved": 1},
        "unknown": {"missions": 1, "solved": 0},
    }
    assert rr.categorize({}, "Requested tokens (4132) exceed context window of 4096", task) == (
        "context_overflow"
    )
    assert rr.categorize({"reason": "mission timed out", "tasks": [1]}, "", task) == "timeout"
    assert rr.categorize({"reason": "x", "tasks": []}, "", task) == "plan"
    # Reports spell task statuses in lower case.
    failed = {"status": "failed", "intent": "write_code", "error": "could not parse the answer"}
    assert rr.categorize({"tasks": [failed]}, "", task) == "edit_unparsable"
    # The last generation's reason decides; the name parse.py is no parse error.
    failed["error"] = (
        "the model gave no usable code for parse.py in 2 generation(s): #1: the code does not "
        "parse: '(' was never closed; #2: your code is the same as the current parse"
    )
    assert rr.categorize({"tasks": [failed]}, "", task) == "edit_failed"
    tests = {"status": "FAILED", "intent": "run_tests", "error": "2 failed"}
    report = {"tasks": [tests], "changed_files": ["elsewhere.py"]}
    assert rr.categorize(report, "", task) == "localization"
    report["changed_files"] = list(task.solution_files)
    assert rr.categorize(report, "", task) == "tests_failed"
    report["changed_files"] = ["tests/test_only.py"]  # only its own tests: not a localization miss
    assert rr.categorize(report, "", task) == "tests_failed"


def test_interleaved_slices_across_projects():
    rr = _bench()
    tasks = rr.load_tasks()
    first = rr.interleaved(tasks)[: len(rr.projects())]
    assert {t.project for t in first} == set(rr.projects())
    assert sorted(t.id for t in rr.interleaved(tasks)) == sorted(t.id for t in tasks)


@pytest.mark.slow
def test_peer_task_check_judges_the_tree_left(tmp_path):
    """bench/peer.py's view of a task: unchanged tree unsolved, the reference solution solved."""
    rr = _bench()
    raw = rr.bench_tasks(1)[0]
    task = next(t for t in rr.load_tasks() if t.id == raw["id"])
    assert raw["request"] == task.request and task.check_file not in raw["files"]

    def tree(name: str) -> Path:
        root = tmp_path / name
        for rel, text in raw["files"].items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        return root

    assert raw["check"](tree("unchanged")) is False
    solved = tree("solved")
    rr.apply_edits(solved, task.solution)
    assert raw["check"](solved) is True


def test_localization_bench_derives_the_definitions_each_solution_edits(tmp_path):
    _bench()
    spec = importlib.util.spec_from_file_location("localize_bench", BENCH / "localize.py")
    assert spec is not None and spec.loader is not None
    lb = importlib.util.module_from_spec(spec)
    sys.modules["localize_bench"] = lb  # its dataclasses look their module up
    spec.loader.exec_module(lb)
    cases = {c.name: (c, index) for c, index in lb.realrepo_cases(tmp_path)}
    assert len(cases) >= 20
    for case, index in cases.values():
        for path, qualname in case.want:
            assert any(d.path == path for d in index.definitions(qualname)), case.name
    # A changed line inside a method; a new method between two: the class it goes into.
    assert cases["parse-negative-hex"][0].want == {("parse.py", "int_convert.__call__")}
    assert cases["cachetools-lru-peek"][0].want == {("src/cachetools/__init__.py", "LRUCache")}
    assert "inflection-foreign-key" not in cases  # a new top-level function: nothing to find
