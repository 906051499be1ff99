"""OpenAICompatModel against recorded chat-completions exchanges, and a closed local port."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from coditect.errors import ConfigError, ModelError, ModelUnavailableError
from coditect.llm.base import Message, ModelSettings, Usage
from coditect.llm.guard import override_allow_model_requests
from coditect.llm.openai_compat import OpenAICompatModel, Provider
from coditect.llm.retry import RetryPolicy

from .helpers import Replay, SleepRecorder

pytest.importorskip("openai")  # imported at collection: the SDK import is slow

MESSAGES = [
    Message(role="system", content="You are a careful Python coder."),
    Message(role="user", content="Write add(a, b)."),
]
SETTINGS = ModelSettings(max_tokens=48, stop=("\n\n",), purpose="code")


def make(
    replay: Replay, sleep: SleepRecorder, provider: Provider | None = None, **kwargs: Any
) -> OpenAICompatModel:
    provider = provider or Provider(base_url="https://api.openai.com/v1", api_key="sk-test")
    return OpenAICompatModel(
        "gpt-4o-mini", provider=provider, http_client=replay.client(), sleep=sleep, **kwargs
    )


async def call(model: OpenAICompatModel, settings: ModelSettings = SETTINGS) -> Any:
    try:
        with override_allow_model_requests(True):
            return await model.request(MESSAGES, settings)
    finally:
        await model.aclose()


async def test_success_sends_chat_body_and_parses_cached_usage(sleep: SleepRecorder) -> None:
    replay = Replay("openai_success")
    response = await call(make(replay, sleep))

    (body,) = replay.bodies()
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a careful Python coder."},
            {"role": "user", "content": "Write add(a, b)."},
        ],
        "max_tokens": 48,
        "temperature": 0.0,
        "stop": ["\n\n"],
    }
    request = replay.requests[0]
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"

    assert response.text == "def add(a, b):\n    return a + b"
    assert response.usage == Usage(input_tokens=1532, output_tokens=18, cached_input_tokens=1408)
    assert response.model_name == "openai:gpt-4o-mini@https://api.openai.com/v1"
    assert response.finish_reason == "stop"


async def test_local_server_without_key_or_cached_details(sleep: SleepRecorder) -> None:
    replay = Replay("ollama_success")
    provider = Provider.ollama()
    provider = Provider(base_url=provider.base_url, headers={"X-Trace": "t1"})
    response = await call(make(replay, sleep, provider), ModelSettings(max_tokens=1))
    request = replay.requests[0]
    assert str(request.url) == "http://localhost:11434/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer unused"
    assert request.headers["x-trace"] == "t1"
    assert "stop" not in replay.bodies()[0]
    assert response.usage == Usage(input_tokens=30, output_tokens=1)
    assert response.finish_reason == "length"


async def test_json_schema_is_sent_as_response_format(sleep: SleepRecorder) -> None:
    schema: dict[str, object] = {"type": "object"}
    replay = Replay("openai_success", "openai_success", "openai_success")
    await call(make(replay, sleep), ModelSettings(json_schema=schema))
    assert replay.bodies()[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    styled = make(replay, sleep, json_schema_style="json_object")
    await call(styled, ModelSettings(json_schema=schema))
    assert replay.bodies()[1]["response_format"] == {"type": "json_object", "schema": schema}
    await call(make(replay, sleep, json_schema_style="none"), ModelSettings(json_schema=schema))
    assert "response_format" not in replay.bodies()[2]


async def test_429_honours_retry_after_ms(sleep: SleepRecorder) -> None:
    replay = Replay("openai_429", "openai_success")
    response = await call(make(replay, sleep))
    assert response.usage.input_tokens == 1532
    assert sleep.delays == [0.465]


@pytest.mark.parametrize("failure", ["openai_500", "openai_503"])
async def test_5xx_is_retried(failure: str, sleep: SleepRecorder) -> None:
    replay = Replay(failure, "openai_success")
    await call(make(replay, sleep, retry=RetryPolicy(base_delay_s=0.2)))
    assert len(replay.requests) == 2
    assert 0.1 <= sleep.delays[0] <= 0.2


async def test_5xx_exhausted_is_retryable_error(sleep: SleepRecorder) -> None:
    replay = Replay("openai_500", "openai_500")
    with pytest.raises(ModelUnavailableError) as info:
        await call(make(replay, sleep, retry=RetryPolicy(max_attempts=2)))
    assert info.value.retryable
    assert "500" in str(info.value)


async def test_401_is_not_retried(sleep: SleepRecorder) -> None:
    replay = Replay("openai_401")
    provider = Provider.openai(api_key="sk-wrong")
    with pytest.raises(ModelError) as info:
        await call(make(replay, sleep, provider))
    assert not info.value.retryable
    assert "Incorrect API key" in str(info.value)
    assert "OPENAI_API_KEY" in str(info.value)
    assert len(replay.requests) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_connection_refused_is_retryable_and_names_the_url(sleep: SleepRecorder) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = OpenAICompatModel(
        "qwen", provider=Provider(base_url=url), retry=RetryPolicy(max_attempts=2), sleep=sleep
    )
    with pytest.raises(ModelUnavailableError) as info:
        await call(model)
    assert info.value.retryable
    assert url in str(info.value)
    assert len(sleep.delays) == 1


async def test_guard_refuses_before_any_request(sleep: SleepRecorder) -> None:
    replay = Replay("openai_success")
    model = make(replay, sleep)
    try:
        with pytest.raises(ModelUnavailableError):
            await model.request(MESSAGES, SETTINGS)
    finally:
        await model.aclose()
    assert replay.requests == []


def test_openai_provider_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Provider.openai()


def test_provider_presets() -> None:
    assert Provider.ollama().base_url == "http://localhost:11434/v1"
    assert Provider.vllm().base_url == "http://localhost:8000/v1"
    assert Provider.lm_studio().base_url == "http://localhost:1234/v1"
    assert Provider.llama_cpp().base_url == "http://localhost:8080/v1"
