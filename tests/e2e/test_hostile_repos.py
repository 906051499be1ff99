"""Whole missions on hostile repositories (issue 12): links, non-UTF-8 names, other languages,
huge requests. Scripted model, real sandboxes, real git."""

from __future__ import annotations

import os
import subprocess

import pytest

from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.errors import InputError
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS, fibonacci_model
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime
from coditect.sandbox.policy import SANDBOX_BACKENDS
from coditect.workspace import SUBJECT_MAX_CHARS

REQUEST = "Add a function to calculate the nth Fibonacci number"

pytestmark = pytest.mark.slow


async def run(repo, request=REQUEST, model=None, **settings):
    rt = build_runtime(Settings(**settings), model=model or fibonacci_model())
    try:
        return await rt.runner.run(request, repo)
    finally:
        await rt.aclose()


def commit(git, repo, message="more"):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def need(backend):
    if not SANDBOX_BACKENDS[backend].available():
        pytest.skip(f"the {backend} sandbox is unavailable here")


async def test_a_link_to_the_edited_file_is_not_an_unexpected_change(calculator_repo, git):
    os.symlink("calculator/arithmetic.py", calculator_repo / "alias.py")
    commit(git, calculator_repo)
    report = await run(calculator_repo)
    assert report.status is MissionOutcome.SUCCESS, (report.reason, report.violations)
    assert "alias.py" not in report.changed_files
    assert git(calculator_repo, "ls-tree", report.branch, "alias.py").startswith("120000")


@pytest.mark.parametrize("backend", ["auto", "process"])
async def test_links_to_outside_are_kept_and_not_followed(calculator_repo, git, backend):
    if backend != "auto":
        need(backend)
    os.symlink("/etc/hostname", calculator_repo / "hostname")
    os.symlink("../../somewhere", calculator_repo / "calculator" / "up")
    commit(git, calculator_repo)
    report = await run(calculator_repo, sandbox=backend)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert any(
        "2 symbolic link(s) point outside" in n and "not followed" in n for n in report.notes
    )


async def test_a_non_utf8_file_name_runs_in_a_sandbox_that_can_show_it(calculator_repo, git):
    need("process")
    (calculator_repo / os.fsdecode(b"data-\xff.txt")).write_text("bytes\n")
    commit(git, calculator_repo)
    report = await run(calculator_repo, sandbox="auto")
    assert report.status is MissionOutcome.SUCCESS, report.reason


async def test_the_wasm_sandbox_says_why_it_cannot_run_such_a_project(calculator_repo, git):
    need("wasm")
    (calculator_repo / os.fsdecode(b"data-\xff.txt")).write_text("bytes\n")
    commit(git, calculator_repo)
    report = await run(calculator_repo, sandbox="wasm")
    assert report.status is MissionOutcome.FAILED
    assert "not valid UTF-8" in report.reason and "--sandbox process" in report.reason


async def test_a_javascript_project_is_refused(tmp_path, git):
    repo = tmp_path / "web"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "app.js").write_text("export const add = (a, b) => a + b;\n")
    (repo / "package.json").write_text('{"name": "web"}\n')
    git(repo, "init", "-q", "-b", "main")
    commit(git, repo, "init")
    with pytest.raises(InputError, match="unsupported project: no Python code found"):
        await run(repo)
    assert git(repo, "branch", "--list", "coditect/*") == ""


async def test_a_100kb_request_makes_a_bounded_commit_message(calculator_repo, git):
    request = REQUEST + ". " + "Keep it readable and well tested. " * 3000
    assert len(request) > 100_000
    # a model whose window holds the request: the commit message is what is checked here
    report = await run(
        calculator_repo, request=request, model=fibonacci_model(context_window=1_000_000)
    )
    assert report.status is MissionOutcome.SUCCESS, report.reason
    message = subprocess.run(
        ["git", "log", "-1", "--format=%B", report.branch],
        cwd=calculator_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(message.splitlines()[0]) <= SUBJECT_MAX_CHARS
    assert len(message) < 5_000
    assert f"CODITECT mission {report.mission_id}" in message


async def test_a_request_too_long_for_the_window_is_refused(calculator_repo, git):
    request = REQUEST + ". " + "Keep it readable and well tested. " * 3000
    with pytest.raises(InputError, match=r"the request is [\d,]+ tokens long.*4,096-token"):
        await run(calculator_repo, request=request)
    assert git(calculator_repo, "branch", "--list", "coditect/*") == ""


async def test_a_hanging_test_is_named_as_the_first_cause(calculator_repo):
    hanging_tests = FIBONACCI_TESTS.replace("```python\n", "```python\nimport time\n", 1).replace(
        "\n```", "\n\n\ndef test_waits():\n    time.sleep(600)\n```"
    )
    code_calls = []

    def answer(messages, settings):
        if settings.purpose == "plan":
            return FIBONACCI_PLAN
        if "test" in settings.purpose:
            return hanging_tests
        code_calls.append(1)
        # The repair round gets nothing usable: the finding blamed the mission on this.
        return FIBONACCI_CODE if len(code_calls) == 1 else "I cannot see what to change."

    report = await run(
        calculator_repo, model=FunctionModel(answer), test_timeout_s=4, max_repairs=2
    )
    assert report.status is MissionOutcome.FAILED
    assert report.reason.startswith("task t4 failed: the test run timed out"), report.reason
