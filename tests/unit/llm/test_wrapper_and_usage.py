"""The model-wrapper base and the one usage counter."""

from __future__ import annotations

from coditect.llm.base import Message, ModelResponse, Usage
from coditect.llm.budget import Budget, BudgetModel
from coditect.llm.cache import CachingModel, MemoryCacheStore
from coditect.llm.ledger import CallContext, LedgerModel, MemoryLedger
from coditect.llm.testing import FunctionModel, ScriptedModel
from coditect.llm.usage import UsageCounter
from coditect.llm.wrapper import WrapperModel, innermost
from coditect.reuse.responses import ReuseStoreCache
from coditect.reuse.store import MemoryReuseStore
from coditect.telemetry.wrappers import MeteredModel

HELLO = [Message(role="user", content="hello")]


async def test_every_wrapper_forwards_name_and_close_through_the_base() -> None:
    base = ScriptedModel(["a"], name="test:base")
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    base.aclose = aclose  # type: ignore[method-assign]
    stack = UsageCounter(
        LedgerModel(
            CachingModel(BudgetModel(MeteredModel(base), Budget()), MemoryCacheStore()),
            MemoryLedger(),
            context=CallContext(),
        )
    )
    layers = []
    model = stack
    while isinstance(model, WrapperModel):
        layers.append(type(model).__name__)
        assert model.name == "test:base"
        model = model.inner
    assert layers == ["UsageCounter", "LedgerModel", "CachingModel", "BudgetModel", "MeteredModel"]
    assert innermost(stack) is base
    assert (await WrapperModel(base).request(HELLO)).text == "a"
    await stack.aclose()
    assert closed == [True]


async def test_a_task_counter_adds_into_its_mission_counter() -> None:
    def answer(messages, settings):
        return ModelResponse(
            text="x",
            usage=Usage(input_tokens=10, output_tokens=5, cached_input_tokens=2),
            model_name="test:function",
        )

    mission = UsageCounter(FunctionModel(answer))
    task = UsageCounter(FunctionModel(answer), parent=mission)
    await task.request(HELLO)
    task.count(
        ModelResponse(
            text="x", usage=Usage(input_tokens=7, output_tokens=3), model_name="m", reused=True
        )
    )
    task.add_saved(100)
    for c in (task, mission):
        assert (c.calls, c.reused_calls) == (2, 1)
        assert (c.input_tokens, c.output_tokens, c.cached_input_tokens) == (10, 5, 2)
        assert c.total_tokens == 15 and c.saved_tokens == 110
    mission.add_totals(input_tokens=1, usd=0.5)
    assert mission.input_tokens == 11 and mission.usd == 0.5 and task.input_tokens == 10


async def test_the_response_cache_in_a_reuse_store_round_trips() -> None:
    store = MemoryReuseStore()
    cache = ReuseStoreCache(store)
    response = ModelResponse(text="hi", usage=Usage(input_tokens=1), model_name="m")
    assert await cache.get("k") is None
    await cache.put("k", response)
    assert await cache.get("k") == response
    await store.put("llm:bad", "not json")
    assert await cache.get("bad") is None
