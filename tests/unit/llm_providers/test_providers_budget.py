"""Budgets stop a mission's calls before the one that would exceed them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from coditect.errors import BudgetExceededError, ModelUnavailableError
from coditect.llm.base import Message, ModelResponse, ModelSettings, Usage
from coditect.llm.budget import Budget, BudgetModel, estimate_tokens
from coditect.llm.ledger import CallContext, LedgerModel, MemoryLedger
from coditect.llm.registry import RoutedModel

from .helpers import FakeModel

PROMPT = [Message(role="user", content="x" * 4000)]  # ~1000 tokens by the chars/4 estimate
SETTINGS = ModelSettings(max_tokens=200)


def test_estimate_is_chars_over_four_plus_max_tokens() -> None:
    assert estimate_tokens(PROMPT, SETTINGS) == (1000, 200)
    assert estimate_tokens([Message(role="user", content="abcde")], SETTINGS) == (2, 200)


async def test_token_budget_stops_before_the_call_that_would_exceed() -> None:
    inner = FakeModel("local:qwen", Usage(input_tokens=1000, output_tokens=150))
    budget = Budget(max_tokens=4000)
    model = BudgetModel(inner, budget)
    for _ in range(3):  # 1150 tokens each: 3450 spent, 550 left < 1200 estimated
        await model.request(PROMPT, SETTINGS)
    with pytest.raises(BudgetExceededError) as info:
        await model.request(PROMPT, SETTINGS)
    assert not info.value.retryable
    assert len(inner.calls) == 3  # the fourth call never reached the model
    assert budget.spent_tokens == 3450
    assert budget.remaining_tokens() == 550


async def test_usd_budget_shared_across_a_mission_dag() -> None:
    # Several tasks (different wrappers, one Budget) spend on the same mission's budget.
    sonnet = FakeModel("anthropic:claude-sonnet-4-5", Usage(input_tokens=1000, output_tokens=200))
    budget = Budget(max_usd=0.02)  # each call costs 0.003 + 0.003 = $0.006
    ledger = MemoryLedger()
    tasks = [
        LedgerModel(BudgetModel(sonnet, budget), ledger, context=CallContext(task_id=f"t{i}"))
        for i in range(5)
    ]
    done = 0
    with pytest.raises(BudgetExceededError, match="USD budget"):
        for task_model in tasks:
            await task_model.request(PROMPT, SETTINGS)
            done += 1
    assert done == len(sonnet.calls) == 3  # $0.018 spent; a fourth estimated $0.006 does not fit
    totals = await ledger.totals()
    assert totals.usd == pytest.approx(budget.spent_usd) == pytest.approx(0.018)


async def test_concurrent_calls_reserve_their_estimates() -> None:
    gate = asyncio.Event()

    usage = Usage(input_tokens=10, output_tokens=10)

    async def slow(messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        await gate.wait()
        return ModelResponse(text="ok", usage=usage, model_name="local:qwen")

    inner = FakeModel("local:qwen", fn=slow)
    budget = Budget(max_tokens=2500)  # room for two 1200-token estimates, not three
    model = BudgetModel(inner, budget)
    first = asyncio.create_task(model.request(PROMPT, SETTINGS))
    second = asyncio.create_task(model.request(PROMPT, SETTINGS))
    await asyncio.sleep(0)
    with pytest.raises(BudgetExceededError):
        await model.request(PROMPT, SETTINGS)
    gate.set()
    await asyncio.gather(first, second)
    assert budget.spent_tokens == 40  # reservations replaced by actual usage
    assert budget.remaining_tokens() == 2460


async def test_failed_call_releases_its_reservation() -> None:
    def failing(messages: Sequence[Message], settings: ModelSettings) -> str:
        raise ModelUnavailableError("boom", retryable=True)

    budget = Budget(max_tokens=1500)
    with pytest.raises(ModelUnavailableError):
        await BudgetModel(FakeModel(fn=failing), budget).request(PROMPT, SETTINGS)
    assert budget.remaining_tokens() == 1500


async def test_routed_model_is_priced_by_the_route_taken() -> None:
    cheap = FakeModel("local:qwen")
    dear = FakeModel("anthropic:claude-opus-4-1")
    budget = Budget(max_usd=0.001)
    model = BudgetModel(RoutedModel(dear, {"plan": cheap}), budget)
    await model.request(PROMPT, ModelSettings(max_tokens=200, purpose="plan"))
    with pytest.raises(BudgetExceededError, match="claude-opus-4-1"):
        await model.request(PROMPT, ModelSettings(max_tokens=200, purpose="code"))
    assert len(cheap.calls) == 1 and dear.calls == []
