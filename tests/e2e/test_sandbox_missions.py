"""The Fibonacci mission end to end in each isolating sandbox, through the CLI.

For ``wasm`` and ``process`` (bubblewrap): the mission succeeds, its tests ran in that backend
(the Tester's ``agent.act`` event names the backend that ran them), and the user's repository is
exactly as before. A project test that hangs is killed by the sandbox's wall-clock timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coditect.cli.main import app
from coditect.sandbox.policy import SANDBOX_BACKENDS

REQUEST = "Add a function to calculate the nth Fibonacci number"
BACKENDS = ["wasm", "process"]
runner = CliRunner()


def require(backend: str) -> None:
    """Skip where the process sandbox cannot run (fail under CI); wasm must always run."""
    spec = SANDBOX_BACKENDS[backend]
    if spec.available():
        return
    reason = f"the {backend} sandbox is unavailable here; {spec.install_hint}"
    if backend != "process" or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_mission(repo: Path, backend: str, *extra: str) -> dict:
    args = ["run", REQUEST, "--repo", str(repo), "--llm", "scripted:fibonacci"]
    result = runner.invoke(app, [*args, "--sandbox", backend, "--json", *extra])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def run_tests_events(mission_id: str) -> list[str]:
    """The Tester's run_tests event lines of ``coditect show --events``, whitespace-normalized."""
    shown = runner.invoke(app, ["show", mission_id, "--events"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    return [part for part in text.split("agent.act")[1:] if "'action': 'run_tests'" in part]


def snapshot(repo: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file and directory outside .git: owner, group, mode and content hash."""
    entries = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo)
        if relative.parts[0] == ".git":
            continue
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        entries[str(relative)] = (info.st_uid, info.st_gid, info.st_mode, digest)
    return entries


def assert_untouched(repo: Path, git, head: str, before: dict) -> None:
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain", "--ignored") == ""
    assert snapshot(repo) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_fibonacci_mission_runs_its_tests_in_the_sandbox(backend, calculator_repo, git):
    require(backend)
    head, before = git(calculator_repo, "rev-parse", "HEAD"), snapshot(calculator_repo)

    report = run_mission(calculator_repo, backend)

    assert report["status"] == "SUCCESS", report["reason"]
    assert [t["intent"] for t in report["tasks"]][-1] == "run_tests"
    assert report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 7
    assert set(report["changed_files"]) == {
        "calculator/arithmetic.py",
        "calculator/__init__.py",  # the package re-exports arithmetic wholesale
        "tests/test_arithmetic.py",
    }
    runs = run_tests_events(report["mission_id"])
    assert runs and all(f"(sandbox: {backend})" in run for run in runs), runs
    # test_arithmetic.py (7) and, as calculator/__init__.py changed too, test_stats.py (3)
    assert "10 passed" in runs[-1]
    assert_untouched(calculator_repo, git, head, before)
    branch = report["branch"]
    assert "def fibonacci" in git(calculator_repo, "show", f"{branch}:calculator/arithmetic.py")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hanging_project_test_is_killed_by_the_sandbox_timeout(
    backend, calculator_repo, git, monkeypatch
):
    require(backend)
    with (calculator_repo / "tests" / "test_arithmetic.py").open("a") as f:
        f.write("\n\ndef test_hang():\n    import time\n\n    time.sleep(600)\n")
    git(calculator_repo, "add", "-A")
    git(calculator_repo, "commit", "-qm", "a test that hangs")
    head, before = git(calculator_repo, "rev-parse", "HEAD"), snapshot(calculator_repo)
    monkeypatch.setenv("CODITECT_TEST_TIMEOUT_S", "3")

    report = run_mission(calculator_repo, backend, "--max-repairs", "0")

    assert report["status"] == "FAILED"
    assert "timed out" in report["reason"]
    runs = run_tests_events(report["mission_id"])
    assert runs and f"(sandbox: {backend})" in runs[-1], runs
    assert "(timed out)" in runs[-1]
    assert_untouched(calculator_repo, git, head, before)
    assert git(calculator_repo, "branch", "--list", "coditect/*") == ""
