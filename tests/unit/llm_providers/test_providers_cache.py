"""The exact response cache (memory and SQLite stores) and how accounting sees its hits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coditect.llm.base import Message, ModelSettings
from coditect.llm.budget import Budget
from coditect.llm.cache import (
    CacheStore,
    CachingModel,
    MemoryCacheStore,
    SqliteCacheStore,
    cache_key,
)
from coditect.llm.ledger import CallContext, MemoryLedger
from coditect.llm.registry import instrument

from .helpers import FakeModel

ASK = [Message(role="system", content="be brief"), Message(role="user", content="add?")]


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheStore]:
    s: CacheStore = (
        MemoryCacheStore()
        if request.param == "memory"
        else SqliteCacheStore(f"sqlite:///{tmp_path}/cache.db")
    )
    yield s
    await s.close()


async def test_hit_returns_the_stored_answer_flagged_reused(store: CacheStore) -> None:
    inner = FakeModel()
    model = CachingModel(inner, store)
    first = await model.request(ASK, ModelSettings(max_tokens=10))
    second = await model.request(ASK, ModelSettings(max_tokens=10))
    assert len(inner.calls) == 1
    assert not first.reused and second.reused
    assert second.text == first.text and second.usage == first.usage
    assert (model.hits, model.misses) == (1, 1)


async def test_key_covers_model_messages_and_settings(store: CacheStore) -> None:
    inner = FakeModel()
    model = CachingModel(inner, store)
    await model.request(ASK, ModelSettings(max_tokens=10))
    await model.request(ASK, ModelSettings(max_tokens=11))
    await model.request(ASK[1:], ModelSettings(max_tokens=10))
    assert len(inner.calls) == 3
    base = cache_key("m", ASK, ModelSettings())
    assert base == cache_key("m", list(ASK), ModelSettings())
    assert base != cache_key("other", ASK, ModelSettings())
    assert len(base) == 64


async def test_sampled_calls_are_not_cached(store: CacheStore) -> None:
    inner = FakeModel()
    model = CachingModel(inner, store)
    for _ in range(2):
        await model.request(ASK, ModelSettings(temperature=0.7))
    assert len(inner.calls) == 2


async def test_sqlite_cache_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.db"
    first = SqliteCacheStore(url)
    await CachingModel(FakeModel(), first).request(ASK)
    await first.close()
    second = SqliteCacheStore(url)
    inner = FakeModel()
    try:
        response = await CachingModel(inner, second).request(ASK)
    finally:
        await second.close()
    assert response.reused and inner.calls == []


async def test_ledger_records_hits_as_reused_with_zero_tokens() -> None:
    inner = FakeModel("anthropic:claude-sonnet-4-5")
    ledger = MemoryLedger()
    budget = Budget(max_usd=1.0)
    model = instrument(
        inner,
        ledger=ledger,
        context=CallContext(mission_id="m"),
        budget=budget,
        cache=MemoryCacheStore(),
    )
    for _ in range(3):
        await model.request(ASK)
    entries = await ledger.entries("m")
    assert [e.reused for e in entries] == [False, True, True]
    assert [e.input_tokens + e.output_tokens for e in entries[1:]] == [0, 0]
    totals = await ledger.totals("m")
    assert totals.reused_calls == 2
    assert totals.usd == pytest.approx(entries[0].usd) == pytest.approx(budget.spent_usd)
