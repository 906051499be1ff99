"""The verified cascade in a whole mission, with scripted tiers: what escalates, what is recorded."""

import asyncio

from typer.testing import CliRunner

from coditect.cli.costs_cmd import costs_summary
from coditect.cli.main import app
from coditect.config import Settings
from coditect.domain import MissionOutcome
from coditect.llm.cascade import CascadeModel
from coditect.llm.demo import FIBONACCI_CODE, FIBONACCI_PLAN, FIBONACCI_TESTS
from coditect.llm.testing import FunctionModel
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"


def answers(name, code=FIBONACCI_CODE):
    def fn(messages, settings):
        if settings.purpose == "plan":
            return FIBONACCI_PLAN
        if "test" in settings.purpose:
            return FIBONACCI_TESTS
        return code

    return FunctionModel(fn, name=name)


async def run(repo, model, **settings):
    rt = build_runtime(Settings(**settings), model=model)
    try:
        report = await rt.runner.run(REQUEST, repo)
        assert rt.ledger is not None
        return report, costs_summary(report, await rt.ledger.entries(report.mission_id))
    finally:
        await rt.aclose()


async def test_an_unusable_answer_is_retried_on_the_next_tier(calculator_repo):
    cheap = answers("test:cheap", code="```python\ndef fibonacci(n:\n```")
    strong = answers("test:strong")
    report, costs = await run(calculator_repo, CascadeModel([cheap, strong]))
    assert report.status is MissionOutcome.SUCCESS, report.reason
    coder = next(t for t in report.tasks if t.intent == "write_code")
    assert coder.status == "complete"
    # the plan, analysis and tests stayed on tier 0; only the coder's task escalated
    assert costs["escalation"]["tasks"] == [coder.id]
    assert costs["tiers"]["1"]["models"] == ["test:strong"]
    assert costs["tiers"]["1"]["tasks"] == [coder.id]
    assert "test:cheap" in costs["tiers"]["0"]["models"]
    assert next(t for t in costs["tasks"] if t["task"] == coder.id)["tier"] == 1
    assert strong.calls and all(s.purpose != "plan" for _, s in strong.calls)
    human = await asyncio.to_thread(
        CliRunner().invoke, app, ["costs", report.mission_id], catch_exceptions=False
    )
    assert "per cascade tier" in human.stdout and f"escalation: 1 task(s) ({coder.id})" in (
        human.stdout
    )


async def test_failing_tests_send_the_repair_round_to_the_next_tier(calculator_repo):
    wrong = FIBONACCI_CODE.replace("return a\n", "return a + 1\n")
    cheap, strong = answers("test:cheap", code=wrong), answers("test:strong")
    report, costs = await run(calculator_repo, CascadeModel([cheap, strong]), max_repairs=2)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert [t.id for t in report.tasks][-2:] == ["repair1", "retest1"]
    assert costs["escalation"]["tasks"] == ["repair1"]
    assert costs["escalation"]["calls"] == len(strong.calls) > 0
    assert all(s.purpose != "plan" for _, s in strong.calls)


async def test_without_a_cascade_nothing_escalates(calculator_repo):
    report, costs = await run(calculator_repo, answers("test:only"))
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert list(costs["tiers"]) == ["0"]
    assert costs["escalation"]["calls"] == 0 and costs["escalation"]["tasks"] == []
