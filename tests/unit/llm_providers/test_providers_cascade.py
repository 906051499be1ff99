"""The verified cascade: tiers chosen per call, parsed from --llm, priced and recorded per tier."""

from __future__ import annotations

import pytest

from coditect.errors import ConfigError
from coditect.llm.base import Message, ModelSettings, Usage
from coditect.llm.budget import Budget
from coditect.llm.cache import MemoryCacheStore
from coditect.llm.cascade import CascadeModel, at_tier, current_tier, tiers_of
from coditect.llm.ledger import CallContext, LedgerModel, MemoryLedger
from coditect.llm.openai_compat import OpenAICompatModel
from coditect.llm.pricing import cost_usd, price_for
from coditect.llm.registry import instrument, model_from_spec, parse_cascade

from .helpers import FakeModel

pytest.importorskip("openai")  # imported at collection: the SDK import is slow

ASK = [Message(role="user", content="hi")]
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-x", "OPENAI_API_KEY": "sk-x"}


def two_tiers() -> tuple[FakeModel, FakeModel, CascadeModel]:
    cheap = FakeModel("local:qwen", Usage(input_tokens=100, output_tokens=10))
    strong = FakeModel("anthropic:claude-sonnet-4-5", Usage(input_tokens=1000, output_tokens=200))
    return cheap, strong, CascadeModel([cheap, strong])


async def test_calls_go_to_the_tier_of_the_enclosing_block() -> None:
    cheap, strong, cascade = two_tiers()
    assert current_tier() == 0
    first = await cascade.request(ASK)
    with at_tier(1):
        assert current_tier() == 1
        second = await cascade.request(ASK)
        assert cascade.name == strong.name
    with at_tier(5):  # past the last tier: the last one answers
        await cascade.request(ASK)
    assert (first.model_name, second.model_name) == (cheap.name, strong.name)
    assert (len(cheap.calls), len(strong.calls)) == (1, 2)
    assert cascade.name == "cascade(local:qwen>anthropic:claude-sonnet-4-5)"


async def test_a_cascade_needs_two_tiers_and_tiers_are_not_negative() -> None:
    with pytest.raises(ConfigError, match="at least two"):
        CascadeModel([FakeModel()])
    with pytest.raises(ValueError, match=">= 0"), at_tier(-1):
        pass


async def test_tiers_are_found_through_wrappers_and_closed_once() -> None:
    cheap, strong, cascade = two_tiers()
    wrapped = instrument(
        cascade, ledger=MemoryLedger(), budget=Budget(max_tokens=10_000), cache=MemoryCacheStore()
    )
    assert tiers_of(wrapped) == 2
    assert tiers_of(cheap) == 1
    await CascadeModel([cheap, cheap, strong]).aclose()
    assert cheap.closed and strong.closed


async def test_the_ledger_records_the_tier_and_its_price() -> None:
    cheap, strong, cascade = two_tiers()
    ledger = MemoryLedger()
    base = LedgerModel(cascade, ledger, context=CallContext(mission_id="m", task_id="t2"))
    await base.request(ASK, ModelSettings(purpose="code"))
    await base.with_context(CallContext(mission_id="m", task_id="t2", tier=1)).request(ASK)
    with at_tier(1):  # no tier in the context: the caller's block decides
        await base.request(ASK)
    entries = await ledger.entries("m")
    assert [(e.tier, e.model) for e in entries] == [
        (0, cheap.name),
        (1, strong.name),
        (1, strong.name),
    ]
    assert entries[0].usd == 0.0
    assert entries[1].usd == pytest.approx(
        cost_usd(strong.usage, price_for("anthropic:claude-sonnet-4-5"))
    )


async def test_the_budget_covers_both_tiers_and_the_cache_keys_on_the_tier() -> None:
    cheap, strong, cascade = two_tiers()
    budget = Budget(max_tokens=10_000)
    model = instrument(cascade, ledger=MemoryLedger(), budget=budget, cache=MemoryCacheStore())
    await model.request(ASK)
    with at_tier(1):
        second = await model.request(ASK)  # same prompt, other tier: not a cache hit
    assert not second.reused and len(strong.calls) == 1
    assert budget.spent_tokens == 110 + 1200


def test_parse_cascade_splits_off_the_escalation_tiers() -> None:
    assert parse_cascade("local") == ("local", [])
    assert parse_cascade("local,plan=openai:x,escalate=anthropic:claude-sonnet-4-5") == (
        "local,plan=openai:x",
        ["anthropic:claude-sonnet-4-5"],
    )
    with pytest.raises(ConfigError, match="names no model"):
        parse_cascade("local,escalate=")


async def test_spec_builds_a_cascade_of_any_two_specs() -> None:
    model = model_from_spec(
        "openai:small@http://127.0.0.1:9/v1,escalate=anthropic:claude-sonnet-4-5", env=KEYS
    )
    assert isinstance(model, CascadeModel)
    assert [m.name for m in model.tiers] == [
        "openai:small@http://127.0.0.1:9/v1",
        "anthropic:claude-sonnet-4-5",
    ]
    three = model_from_spec(
        "openai:a@http://127.0.0.1:9/v1,escalate=openai:b@http://127.0.0.1:8/v1,"
        "escalate=anthropic:claude-sonnet-4-5",
        env=KEYS,
    )
    assert isinstance(three, CascadeModel) and len(three.tiers) == 3
    await model.aclose()
    await three.aclose()


async def test_llama_cpp_python_servers_get_their_json_mode() -> None:
    model = model_from_spec("llama-cpp-python:qwen@http://127.0.0.1:9/v1", env={})
    assert isinstance(model, OpenAICompatModel)
    assert model.json_schema_style == "json_object"
    assert model.provider.base_url == "http://127.0.0.1:9/v1"
    default = model_from_spec("llama-cpp-python:qwen", env={})
    assert isinstance(default, OpenAICompatModel)
    assert default.provider.base_url == "http://localhost:8000/v1"
    await model.aclose()
    await default.aclose()


async def test_slow_servers_get_a_longer_attempt_timeout() -> None:
    env = {"CODITECT_LLM_TIMEOUT_S": "900"}
    model = model_from_spec("llama-cpp-python:qwen@http://127.0.0.1:9/v1", env=env)
    assert isinstance(model, OpenAICompatModel) and model.retry.timeout_s == 900.0
    await model.aclose()
    with pytest.raises(ConfigError, match="not a number"):
        model_from_spec("openai:q@http://127.0.0.1:9/v1", env={"CODITECT_LLM_TIMEOUT_S": "x"})
