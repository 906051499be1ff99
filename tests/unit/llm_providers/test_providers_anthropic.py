"""AnthropicModel against recorded Messages API exchanges (no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from coditect.errors import ConfigError, ModelError, ModelUnavailableError
from coditect.llm.anthropic import AnthropicModel
from coditect.llm.base import Message, ModelSettings, Usage
from coditect.llm.guard import override_allow_model_requests
from coditect.llm.pricing import cost_usd, price_for
from coditect.llm.retry import RetryPolicy

from .helpers import Replay, SleepRecorder

pytest.importorskip("anthropic")  # imported at collection: the SDK import is slow

MESSAGES = [
    Message(role="system", content="You are a careful Python coder."),
    Message(role="user", content="Write add(a, b)."),
]
SETTINGS = ModelSettings(max_tokens=64, stop=("```\n",), purpose="code")


def make(replay: Replay, sleep: SleepRecorder, **kwargs: Any) -> AnthropicModel:
    return AnthropicModel(
        "claude-haiku-4-5",
        api_key="sk-ant-test",
        http_client=replay.client(),
        sleep=sleep,
        **kwargs,
    )


async def call(model: AnthropicModel, settings: ModelSettings = SETTINGS) -> Any:
    try:
        with override_allow_model_requests(True):
            return await model.request(MESSAGES, settings)
    finally:
        await model.aclose()


async def test_success_sends_cached_system_block_and_parses_usage(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_success")
    response = await call(make(replay, sleep))

    (body,) = replay.bodies()
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 64
    assert "temperature" not in body  # the 2026-10-21 API version rejects sampling params
    assert body["stop_sequences"] == ["```\n"]
    assert body["system"] == [
        {
            "type": "text",
            "text": "You are a careful Python coder.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert body["messages"] == [{"role": "user", "content": "Write add(a, b)."}]
    headers = replay.requests[0].headers
    # SDK 2.x sends the key as a bearer token; older ones used x-api-key.
    assert "sk-ant-test" in (headers.get("x-api-key") or headers.get("authorization", ""))
    assert replay.requests[0].url.path == "/v1/messages"

    assert response.text == "def add(a: int, b: int) -> int:\n    return a + b\n"
    # Anthropic's input_tokens (37) excludes the 1843 cache-read tokens; ours includes them.
    assert response.usage == Usage(input_tokens=1880, output_tokens=19, cached_input_tokens=1843)
    assert response.model_name == "anthropic:claude-haiku-4-5"
    assert response.finish_reason == "end_turn"
    assert not response.reused
    assert sleep.delays == []


async def test_cache_write_is_counted_and_billed_at_the_write_price(sleep: SleepRecorder) -> None:
    response = await call(make(Replay("anthropic_cache_write"), sleep))
    assert response.usage == Usage(
        input_tokens=1855, output_tokens=9, cached_input_tokens=0, cache_write_input_tokens=1843
    )
    assert response.finish_reason == "stop_sequence"
    # the bill: 12 plain input tokens, 1843 written to the cache at 1.25x, 9 output tokens
    price = price_for("anthropic:claude-haiku-4-5")
    expected = (12 * 1.00 + 1843 * 1.25 + 9 * 5.00) / 1_000_000
    assert cost_usd(response.usage, price) == pytest.approx(expected)


async def test_system_prompt_caching_can_be_turned_off(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_success")
    await call(make(replay, sleep, cache_system_prompt=False))
    assert "cache_control" not in replay.bodies()[0]["system"][0]


async def test_json_schema_becomes_output_config(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_success")
    schema: dict[str, object] = {"type": "object", "properties": {"x": {"type": "integer"}}}
    await call(make(replay, sleep), ModelSettings(json_schema=schema))
    body = replay.bodies()[0]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "stop_sequences" not in body


async def test_429_honours_retry_after_then_succeeds(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_429", "anthropic_success")
    response = await call(make(replay, sleep))
    assert response.usage.output_tokens == 19
    assert len(replay.requests) == 2
    assert sleep.delays == [7.0]  # the retry-after header, not our backoff


@pytest.mark.parametrize("failure", ["anthropic_529", "anthropic_500"])
async def test_overloaded_and_5xx_back_off_with_jitter(failure: str, sleep: SleepRecorder) -> None:
    replay = Replay(failure, failure, "anthropic_success")
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=30.0)
    response = await call(make(replay, sleep, retry=policy))
    assert response.text.startswith("def add")
    assert len(replay.requests) == 3
    first, second = sleep.delays
    assert 0.5 <= first <= 1.0  # equal jitter on 1 s
    assert 1.0 <= second <= 2.0  # then on 2 s


async def test_529_gives_up_after_max_attempts(sleep: SleepRecorder) -> None:
    replay = Replay(*["anthropic_529"] * 3)
    model = make(replay, sleep, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ModelUnavailableError) as info:
        await call(model)
    assert info.value.retryable
    assert "overloaded" in str(info.value) and "529" in str(info.value)
    assert len(replay.requests) == 3
    assert len(sleep.delays) == 2


async def test_401_is_not_retried_and_names_the_env_var(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_401")
    with pytest.raises(ModelError) as info:
        await call(make(replay, sleep))
    assert not isinstance(info.value, ModelUnavailableError)
    assert not info.value.retryable
    assert "401" in str(info.value) and "invalid x-api-key" in str(info.value)
    assert "ANTHROPIC_API_KEY" in str(info.value)
    assert len(replay.requests) == 1
    assert sleep.delays == []


async def test_400_is_not_retried(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_400")
    with pytest.raises(ModelError) as info:
        await call(make(replay, sleep))
    assert not info.value.retryable
    assert "max_tokens" in str(info.value)
    assert len(replay.requests) == 1


async def test_hard_timeout_per_attempt(sleep: SleepRecorder) -> None:
    async def hang(request: Any) -> Any:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(hang))
    model = AnthropicModel(
        "claude-haiku-4-5",
        api_key="k",
        http_client=client,
        sleep=sleep,
        retry=RetryPolicy(max_attempts=2, timeout_s=0.05),
    )
    with pytest.raises(ModelUnavailableError) as info:
        await call(model)
    assert info.value.retryable
    assert len(sleep.delays) == 1


async def test_guard_refuses_before_any_request(sleep: SleepRecorder) -> None:
    replay = Replay("anthropic_success")
    model = make(replay, sleep)
    try:
        with pytest.raises(ModelUnavailableError) as info:
            await model.request(MESSAGES, SETTINGS)
    finally:
        await model.aclose()
    assert not info.value.retryable
    assert "disabled" in str(info.value)
    assert replay.requests == []


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        AnthropicModel("claude-haiku-4-5")
    assert "ANTHROPIC_API_KEY" in str(info.value)
