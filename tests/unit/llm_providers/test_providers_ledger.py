"""Ledgers (memory and SQLite) and the LedgerModel wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coditect.llm.base import Message, ModelSettings, Usage
from coditect.llm.ledger import (
    CallContext,
    Ledger,
    LedgerEntry,
    LedgerModel,
    MemoryLedger,
    SqliteLedger,
)
from coditect.llm.pricing import cost_usd, price_for

from .helpers import FakeModel

ASK = [Message(role="user", content="hi")]


@pytest.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    store: Ledger = (
        MemoryLedger() if request.param == "memory" else SqliteLedger(f"sqlite:///{tmp_path}/l.db")
    )
    yield store
    await store.close()


async def test_totals_equal_the_sum_over_calls(ledger: Ledger) -> None:
    sonnet = FakeModel(
        "anthropic:claude-sonnet-4-5",
        Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=300),
    )
    local = FakeModel("local:qwen", Usage(input_tokens=500, output_tokens=50))
    calls = [
        (sonnet, CallContext(mission_id="m1", task_id="t1", agent="coder"), "code"),
        (sonnet, CallContext(mission_id="m1", task_id="t2", agent="tester"), "test"),
        (local, CallContext(mission_id="m1", task_id="t2", agent="tester"), "test"),
        (sonnet, CallContext(mission_id="m2", task_id="t1", agent="planner"), "plan"),
    ]
    for model, context, purpose in calls:
        wrapped = LedgerModel(model, ledger, context=context)
        await wrapped.request(ASK, ModelSettings(purpose=purpose))

    entries = await ledger.entries()
    assert [(e.mission_id, e.task_id, e.agent, e.purpose) for e in entries] == [
        (c.mission_id, c.task_id, c.agent, p) for _, c, p in calls
    ]
    sonnet_usd = cost_usd(sonnet.usage, price_for(sonnet.name))
    assert entries[0].usd == pytest.approx(sonnet_usd)
    assert entries[2].usd == 0.0

    m1 = await ledger.totals("m1")
    m1_entries = await ledger.entries("m1")
    assert m1.calls == len(m1_entries) == 3
    assert m1.input_tokens == sum(e.input_tokens for e in m1_entries) == 1200 + 1200 + 500
    assert m1.cached_input_tokens == 2000
    assert m1.output_tokens == 650
    assert m1.usd == pytest.approx(sum(e.usd for e in m1_entries)) == pytest.approx(2 * sonnet_usd)
    assert m1.priced and m1.reused_calls == 0

    everything = await ledger.totals()
    assert everything.calls == 4
    assert everything.usd == pytest.approx(3 * sonnet_usd)
    assert (await ledger.totals("m1", task_id="t2")).calls == 2
    assert (await ledger.totals(agent="planner")).calls == 1
    assert (await ledger.totals("nope")).calls == 0


async def test_unpriced_models_and_reused_calls(ledger: Ledger) -> None:
    await ledger.record(LedgerEntry(model="openai:mystery@https://x.example/v1", priced=False))
    await ledger.record(LedgerEntry(model="anthropic:claude-haiku-4-5", reused=True))
    totals = await ledger.totals()
    assert not totals.priced
    assert totals.reused_calls == 1


async def test_sqlite_ledger_outlives_the_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    first = SqliteLedger(url)
    await LedgerModel(FakeModel(), first, context=CallContext(mission_id="m")).request(ASK)
    await first.close()
    second = SqliteLedger(url)
    try:
        (entry,) = await second.entries("m")
        assert entry.model == "anthropic:claude-haiku-4-5"
        assert entry.ts.tzinfo is not None
    finally:
        await second.close()


async def test_with_context_shares_the_ledger() -> None:
    ledger = MemoryLedger()
    base = LedgerModel(FakeModel(), ledger, context=CallContext(mission_id="m"))
    await base.with_context(CallContext(mission_id="m", task_id="t9")).request(ASK)
    assert [e.task_id for e in await ledger.entries()] == ["t9"]


async def test_cache_writes_and_the_cascade_tier_are_stored(ledger: Ledger) -> None:
    haiku = FakeModel(
        "anthropic:claude-haiku-4-5",
        Usage(input_tokens=1855, cache_write_input_tokens=1843, output_tokens=9),
    )
    model = LedgerModel(haiku, ledger, context=CallContext(mission_id="m", tier=1))
    await model.request(ASK)
    (entry,) = await ledger.entries("m")
    assert (entry.cache_write_input_tokens, entry.tier) == (1843, 1)
    assert entry.usd == pytest.approx((12 * 1.00 + 1843 * 1.25 + 9 * 5.00) / 1_000_000)
