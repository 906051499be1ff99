"""Review before landing, end to end with scripted models: accept, reject, feedback, apply."""

import asyncio
import json

from typer.testing import CliRunner

from coditect.cli.main import app
from coditect.config import Settings
from coditect.domain.mission import MissionOutcome
from coditect.llm.demo import _answer
from coditect.llm.testing import FunctionModel
from coditect.orchestrator.review import ReviewDecision, ReviewGate, Verdict
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"
RECURSIVE = '''\
```python
def fibonacci(n):
    """Return the nth Fibonacci number, recursively."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)
```'''


class Scripted(ReviewGate):
    def __init__(self, *decisions):
        self.decisions = list(decisions)
        self.seen = []

    async def review(self, request):
        self.seen.append(request)
        return self.decisions.pop(0)


def _answer_with_feedback(messages, settings):
    text = "\n".join(m.content for m in messages)
    if "recursion" in text and "test" not in settings.purpose:
        return RECURSIVE
    return _answer(messages, settings)


def run_mission(repo, gate, model=None):
    async def go():
        rt = build_runtime(
            Settings(sandbox="subprocess"),
            model=model or FunctionModel(_answer_with_feedback, name="scripted:review"),
        )
        rt.runner.review = gate
        try:
            return await rt.runner.run(REQUEST, repo)
        finally:
            await rt.aclose()

    return asyncio.run(go())


def test_accepted_change_lands_on_a_branch(calculator_repo, git):
    gate = Scripted(ReviewDecision(Verdict.ACCEPT))
    report = run_mission(calculator_repo, gate)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert "+def fibonacci(n):" in gate.seen[0].diff and gate.seen[0].tests.passed >= 7
    assert "def fibonacci" in git(
        calculator_repo, "show", f"{report.branch}:calculator/arithmetic.py"
    )


def test_rejected_change_lands_nowhere(calculator_repo, git):
    report = run_mission(calculator_repo, Scripted(ReviewDecision(Verdict.REJECT)))
    assert report.status is MissionOutcome.REJECTED and report.branch == ""
    assert "coditect/" not in git(calculator_repo, "branch", "--list")
    assert "fibonacci" not in (calculator_repo / "calculator" / "arithmetic.py").read_text()


def test_feedback_becomes_a_round_and_is_reviewed_again(calculator_repo, git):
    gate = Scripted(
        ReviewDecision(Verdict.FEEDBACK, "use recursion instead of a loop"),
        ReviewDecision(Verdict.ACCEPT),
    )
    report = run_mission(calculator_repo, gate)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert [r.round_no for r in gate.seen] == [1, 2]
    assert "fibonacci(n - 1)" in gate.seen[1].diff
    ids = [t.id for t in report.tasks]
    assert ids[-2:] == ["review1", "reviewtest1"]
    assert all(t.status.value == "complete" for t in report.tasks)
    landed = git(calculator_repo, "show", f"{report.branch}:calculator/arithmetic.py")
    assert "fibonacci(n - 1)" in landed


def test_run_review_flag_asks_on_the_terminal_then_apply_merges(calculator_repo, git):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci"]
        + ["--sandbox", "subprocess", "--review", "--json"],
        input="x\na\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "SUCCESS" and report["branch"]
    assert "[a]ccept, [r]eject, [f]eedback?" in result.stderr
    assert "+def fibonacci(n):" in result.stderr

    (calculator_repo / "calculator" / "arithmetic.py").write_text("# local edit\n")
    refused = runner.invoke(app, ["apply", report["mission_id"]])
    assert refused.exit_code == 1 and "uncommitted changes" in refused.output
    git(calculator_repo, "checkout", "--", ".")
    applied = runner.invoke(app, ["apply", report["mission_id"]])
    assert applied.exit_code == 0, applied.output
    assert "def fibonacci" in (calculator_repo / "calculator" / "arithmetic.py").read_text()
    again = runner.invoke(app, ["apply", report["mission_id"]])
    assert again.exit_code == 1 and "already merged" in again.output


def test_run_review_reject_exits_failed(calculator_repo):
    result = CliRunner().invoke(
        app,
        ["run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci"]
        + ["--sandbox", "subprocess", "--review", "--json"],
        input="r\n",
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "REJECTED"


def test_feedback_answered_with_the_same_code_is_reviewed_again(calculator_repo, git):
    from coditect.llm.demo import fibonacci_model

    gate = Scripted(
        ReviewDecision(Verdict.FEEDBACK, "make it faster"), ReviewDecision(Verdict.REJECT)
    )
    report = run_mission(calculator_repo, gate, model=fibonacci_model())
    # the scripted model answers the same code again: the round keeps the verified change (an
    # identical answer is a vote for it, not a failure) and the reviewer sees it once more
    assert len(gate.seen) == 2 and gate.seen[1].diff == gate.seen[0].diff
    assert report.status is MissionOutcome.REJECTED and report.branch == ""
    assert "coditect/" not in git(calculator_repo, "branch", "--list")
