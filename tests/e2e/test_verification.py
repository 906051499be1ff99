"""Missions on a function stub: a wrong test CODITECT wrote never costs the user the right code."""

import json
import subprocess

from typer.testing import CliRunner

import coditect.runtime.local
from coditect.cli.main import EXIT_UNVERIFIED, app
from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

STUB = '''def add_even(lst):
    """Sum the even elements of lst.

    >>> add_even([1, 2, 3, 4])
    6
    """
    pass
'''
REQUEST = "Implement the function `add_even` in solution.py so that it does what its docstring says"
PLAN = """t1 analyze
t2 write_code after t1 file solution.py
t3 write_tests after t2 file tests/test_solution.py
t4 run_tests after t3"""
RIGHT = "```python\ndef add_even(lst):\n    return sum(x for x in lst if x % 2 == 0)\n```"
WRONG = "```python\ndef add_even(lst):\n    return sum(lst)\n```"
WRONG_TEST = (
    "```python\nfrom solution import add_even\n\n\n"
    "def test_add_even():\n    assert add_even([2, 2]) == 5\n```"
)
GOOD_TEST = (
    "```python\nfrom solution import add_even\n\n\n"
    "def test_add_even():\n    assert add_even([2, 3]) == 2\n```"
)


def repo_with_stub(tmp_path, git):
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "solution.py").write_text(STUB)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "stub")
    return repo


def model(code_answers, tests):
    codes = iter(code_answers)
    last = [code_answers[0]]

    def answer(messages, settings):
        if settings.purpose == "plan":
            return PLAN
        if "test" in settings.purpose:
            return tests
        last[0] = next(codes, last[0])
        return last[0]

    return FunctionModel(answer)


async def run(repo, llm, **settings):
    rt = build_runtime(Settings(sandbox="subprocess", reuse=False, **settings), model=llm)
    try:
        return await rt.runner.run(REQUEST, repo)
    finally:
        await rt.aclose()


def on_branch(repo, report) -> str:
    return subprocess.run(
        ["git", "show", f"{report.branch}:solution.py"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


async def test_right_code_with_a_wrong_generated_test_keeps_the_code(tmp_path, git):
    repo = repo_with_stub(tmp_path, git)
    report = await run(repo, model([RIGHT], WRONG_TEST), max_repairs=1)
    assert report.status in (MissionOutcome.SUCCESS, MissionOutcome.UNVERIFIED), report.reason
    assert "x % 2 == 0" in on_branch(repo, report)
    if report.status is MissionOutcome.UNVERIFIED:
        assert "test_add_even" in report.reason


async def test_wrong_first_answer_is_replaced_by_a_sampled_candidate(tmp_path, git):
    repo = repo_with_stub(tmp_path, git)
    report = await run(repo, model([WRONG, RIGHT, WRONG, WRONG], GOOD_TEST), candidates=4)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert "x % 2 == 0" in on_branch(repo, report)
    tests = subprocess.run(
        ["git", "show", f"{report.branch}:tests/test_solution.py"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "def test_add_even_docstring_examples" in tests
    assert report.evidence


async def test_unverified_change_in_a_plain_directory_is_a_patch_not_applied(tmp_path):
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "solution.py").write_text(STUB)
    rt = build_runtime(
        Settings(sandbox="subprocess", reuse=False, max_repairs=0, home=tmp_path / "home"),
        model=model([RIGHT], WRONG_TEST),
    )
    try:
        report = await rt.runner.run(REQUEST, proj)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.UNVERIFIED, report.reason
    assert (proj / "solution.py").read_text() == STUB
    patch = tmp_path / "home" / "missions" / report.mission_id / "change.patch"
    assert "x % 2 == 0" in patch.read_text()


def test_unverified_mission_exits_with_its_own_code(tmp_path, git, monkeypatch):
    repo = repo_with_stub(tmp_path, git)
    scripted = model([RIGHT], WRONG_TEST)
    monkeypatch.setattr(coditect.runtime.local, "build_model", lambda spec: scripted)
    monkeypatch.setenv("CODITECT_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        app,
        [
            "run",
            REQUEST,
            "--repo",
            str(repo),
            "--json",
            "--sandbox",
            "subprocess",
            "--max-repairs",
            "0",
            "--no-reuse",
        ],
    )
    assert result.exit_code == EXIT_UNVERIFIED == 3, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "UNVERIFIED"
    assert "test_add_even" in report["reason"] and report["branch"]
