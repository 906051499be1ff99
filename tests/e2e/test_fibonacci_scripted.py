"""The Fibonacci mission end to end with the scripted model: CLI, agents, sandbox, git, state."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from coditect.cli.main import app

runner = CliRunner()
REQUEST = "Add a function to calculate the nth Fibonacci number"


def run_cli(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_fibonacci_mission_succeeds_and_lands_on_a_branch(calculator_repo, git):
    head = git(calculator_repo, "rev-parse", "HEAD")
    result = run_cli(
        "run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "SUCCESS", report["reason"]
    assert [t["intent"] for t in report["tasks"]] == [
        "analyze",
        "write_code",
        "write_tests",
        "run_tests",
    ]
    assert all(t["status"] == "complete" and t["attempts"] == 1 for t in report["tasks"])
    assert report["tasks"][1]["depends_on"] == ["t1"]
    assert set(report["changed_files"]) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",  # the package re-exports arithmetic wholesale
        "tests/test_arithmetic.py",
    }
    assert report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 7
    assert report["tests"]["written_by_coditect"] == ["tests/test_arithmetic.py"]
    assert report["violations"] == []
    assert report["tokens"]["input"] > 0 and report["tokens"]["output"] > 0
    assert "+def fibonacci(n):" in report["diff"]
    # the user's branch and working tree are untouched; the change is on the mission branch
    assert git(calculator_repo, "rev-parse", "HEAD") == head
    assert git(calculator_repo, "status", "--porcelain") == ""
    assert "fibonacci" not in (calculator_repo / "calculator" / "arithmetic.py").read_text()
    branch = report["branch"]
    assert branch == f"coditect/{report['mission_id']}"
    assert "def fibonacci" in git(calculator_repo, "show", f"{branch}:calculator/arithmetic.py")
    # the test written for it passes on the branch, outside CODITECT too
    git(calculator_repo, "worktree", "add", "-q", str(calculator_repo.parent / "wt"), branch)
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=calculator_repo.parent / "wt",
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout

    # state outlives the run: status and show find it
    listed = run_cli("status", "--json")
    assert report["mission_id"] in listed.stdout
    shown = run_cli("show", report["mission_id"][:-2], "--json")
    assert json.loads(shown.stdout)["mission_id"] == report["mission_id"]
    human = run_cli("show", report["mission_id"], "--events")
    assert "SUCCESS" in human.stdout and "task.state" in human.stdout


def test_human_output_shows_plan_progress_and_outcome(calculator_repo):
    result = run_cli("run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Plan" in out and "write_code" in out and "SUCCESS" in out
    assert "tokens:" in out and "branch: coditect/" in out and "+def fibonacci" in out


def test_plain_directory_gets_the_change_and_a_backup(tmp_path, calculator_repo):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(calculator_repo, plain, ignore=shutil.ignore_patterns(".git"))
    result = run_cli("run", REQUEST, "--repo", str(plain), "--llm", "scripted:fibonacci", "--json")
    report = json.loads(result.stdout)
    assert report["status"] == "SUCCESS" and report["applied_to"] == str(plain)
    assert "def fibonacci" in (plain / "calculator" / "arithmetic.py").read_text()
    assert any("originals" in n for n in report["notes"])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run", "   ", "--repo", "."], 2, "request is empty"),
        (["run", REQUEST, "--repo", "/nonexistent/repo"], 2, "does not exist"),
        (["show", "m-does-not-exist"], 2, "no mission"),
    ],
)
def test_bad_input_gets_a_clear_error(args, code, message):
    result = runner.invoke(
        app, [*args, "--llm", "scripted:fibonacci"] if args[0] == "run" else args
    )
    assert result.exit_code == code
    assert message in result.output


def test_cli_entry_point_runs_as_a_process(calculator_repo):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coditect",
            "run",
            REQUEST,
            "--repo",
            str(calculator_repo),
            "--llm",
            "scripted:fibonacci",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "SUCCESS"
