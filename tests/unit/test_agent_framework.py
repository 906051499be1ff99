from pathlib import Path

import pytest

from coditect.agents.base import Agent, AgentContext, AgentLifecycle, RetryPolicy, Upstream
from coditect.domain import (
    Action,
    ActionKind,
    AnalysisReport,
    CodeChange,
    Intent,
    TaskSpec,
    TestReport,
)
from coditect.errors import AgentError, ModelError, ModelUnavailableError


class Flaky(Agent):
    name = "flaky"
    capabilities = frozenset({"analyze"})

    def __init__(self, errors, **kw):
        super().__init__(**kw)
        self.errors = list(errors)
        self.seen_attempts = []

    async def execute(self, ctx):
        self.seen_attempts.append(ctx.attempt)
        assert self.report_status().state is AgentLifecycle.BUSY
        if self.errors:
            raise self.errors.pop(0)
        return AnalysisReport(summary="ok")


def ctx():
    task = TaskSpec(id="t1", intent=Intent.ANALYZE, description="x")
    return AgentContext(
        mission_id="m",
        request="r",
        task=task,
        action=Action(intent=Intent.ANALYZE, kind=ActionKind.READ_FILES),
        workspace=Path("."),
        model=None,
        sandbox=None,  # type: ignore[arg-type]
    )


async def test_retryable_errors_are_retried_with_backoff():
    sleeps = []

    async def sleep(s):
        sleeps.append(s)

    agent = Flaky(
        [ModelUnavailableError("busy", retryable=True)] * 2,
        retry=RetryPolicy(max_attempts=3, initial_delay_s=0.1),
    )
    result = await agent.run(ctx(), sleep=sleep)
    assert result.summary == "ok"
    assert sleeps == [0.1, 0.2] and agent.seen_attempts == [1, 2, 3]
    status = agent.report_status()
    assert status.tasks_done == 1 and status.state is AgentLifecycle.IDLE and status.load == 0


async def test_non_retryable_errors_fail_fast():
    attempts = []
    agent = Flaky([ModelError("bad output")])
    with pytest.raises(AgentError, match="bad output") as info:
        await agent.run(ctx(), on_attempt=attempts.append)
    assert attempts == [1] and not info.value.retryable
    assert agent.report_status().tasks_failed == 1


async def test_retries_are_bounded_and_stopped_agents_refuse_work():
    async def sleep(s):
        return None

    agent = Flaky(
        [ModelUnavailableError("x", retryable=True)] * 5, retry=RetryPolicy(max_attempts=2)
    )
    with pytest.raises(AgentError):
        await agent.run(ctx(), sleep=sleep)
    assert agent.seen_attempts == [1, 2]
    agent.stop()
    with pytest.raises(AgentError, match="stopped"):
        await agent.run(ctx())


def test_retry_delay_is_capped():
    policy = RetryPolicy(initial_delay_s=1, multiplier=10, max_delay_s=5)
    assert [policy.delay_s(n) for n in (1, 2, 3)] == [1, 5, 5]


def test_upstream_sorts_results_latest_wins():
    a1, a2 = AnalysisReport(summary="1"), AnalysisReport(summary="2")
    c = CodeChange()
    t1, t2 = TestReport(passed=1), TestReport(failed=1)
    up = Upstream.from_results([a1, c, t1, a2, t2])
    assert up.analysis is a2 and up.code == (c,) and up.tests is t2
