"""--llm specs, purpose routing and the guard switch."""

from __future__ import annotations

import pytest

from coditect.errors import ConfigError, ModelUnavailableError
from coditect.llm import guard
from coditect.llm.anthropic import AnthropicModel
from coditect.llm.base import Message, ModelSettings
from coditect.llm.local import LocalModel
from coditect.llm.openai_compat import OpenAICompatModel
from coditect.llm.registry import RoutedModel, model_from_spec, parse_routes

from .helpers import FakeModel

pytest.importorskip("anthropic")  # imported at collection: the SDK import is slow
pytest.importorskip("openai")  # imported at collection: the SDK import is slow

KEYS = {"ANTHROPIC_API_KEY": "sk-ant-x", "OPENAI_API_KEY": "sk-x"}


async def test_local_is_the_default() -> None:
    model = model_from_spec(env={})
    assert isinstance(model, LocalModel)
    assert model.name.startswith("local:")


async def test_anthropic_spec() -> None:
    model = model_from_spec("anthropic:claude-sonnet-4-5", env=KEYS)
    try:
        assert isinstance(model, AnthropicModel)
        assert model.name == "anthropic:claude-sonnet-4-5"
    finally:
        await model.aclose()


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("openai:gpt-4o-mini", "openai:gpt-4o-mini@https://api.openai.com/v1"),
        (
            "openai:qwen2.5-coder@http://localhost:11434/v1/",
            "openai:qwen2.5-coder@http://localhost:11434/v1",
        ),
        ("ollama:qwen2.5-coder", "openai:qwen2.5-coder@http://localhost:11434/v1"),
        ("vllm:Qwen/Qwen2.5-Coder-7B", "openai:Qwen/Qwen2.5-Coder-7B@http://localhost:8000/v1"),
        ("lmstudio:qwen", "openai:qwen@http://localhost:1234/v1"),
        ("llamacpp:qwen@http://gpu-box:9000/v1", "openai:qwen@http://gpu-box:9000/v1"),
    ],
)
async def test_openai_compatible_specs(spec: str, name: str) -> None:
    model = model_from_spec(spec, env=KEYS)
    try:
        assert isinstance(model, OpenAICompatModel)
        assert model.name == name
    finally:
        await model.aclose()


async def test_compat_server_key_comes_from_its_own_env_var() -> None:
    model = model_from_spec(
        "openai:m@https://llm.example.com/v1", env={"CODITECT_LLM_API_KEY": "secret"}
    )
    assert isinstance(model, OpenAICompatModel)
    try:
        assert model.provider.api_key == "secret"
    finally:
        await model.aclose()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
        ("openai:gpt-4o", "OPENAI_API_KEY"),
    ],
)
def test_missing_keys_name_the_env_var(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        model_from_spec(spec, env={})


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "gpt-4o",
        "bedrock:claude",
        "anthropic:",
        "anthropic",
        "openai:@http://x/v1",
        "openai:m@localhost:11434",
        "local:model.bin",
        "local,plan",
        "local,plan=",
        "local,plan=local,plan=local",
        "anthropic:claude@http://x",
    ],
)
def test_malformed_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        model_from_spec(spec, env=KEYS)


def test_parse_routes() -> None:
    assert parse_routes("local, plan=anthropic:claude-haiku-4-5") == (
        "local",
        {"plan": "anthropic:claude-haiku-4-5"},
    )


async def test_routes_by_purpose() -> None:
    model = model_from_spec("local,plan=ollama:qwen,review=ollama:qwen", env={})
    try:
        assert isinstance(model, RoutedModel)
        assert model.routes["plan"] is model.routes["review"]  # one client per distinct spec
        assert isinstance(model.route(ModelSettings(purpose="plan")), OpenAICompatModel)
        assert isinstance(model.route(ModelSettings(purpose="code")), LocalModel)
    finally:
        await model.aclose()


async def test_routed_model_forwards_and_closes_each_model_once() -> None:
    default, planner = FakeModel("local:a"), FakeModel("anthropic:claude-haiku-4-5")
    model = RoutedModel(default, {"plan": planner, "triage": planner})
    ask = [Message(role="user", content="x")]
    planned = await model.request(ask, ModelSettings(purpose="plan"))
    coded = await model.request(ask, ModelSettings(purpose="code"))
    assert planned.model_name == "anthropic:claude-haiku-4-5"
    assert coded.model_name == "local:a"
    assert model.name.startswith("routed(local:a;plan=")
    await model.aclose()
    assert default.closed and planner.closed


def test_guard_override_restores_the_previous_value() -> None:
    assert guard.ALLOW_MODEL_REQUESTS is False  # set by the suite's fixture
    with guard.override_allow_model_requests(True):
        guard.check_allowed("x")
        with guard.override_allow_model_requests(False), pytest.raises(ModelUnavailableError):
            guard.check_allowed("x")
    assert guard.ALLOW_MODEL_REQUESTS is False
