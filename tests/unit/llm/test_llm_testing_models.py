from __future__ import annotations

import pytest

from coditect.errors import ModelError
from coditect.llm import Message, ModelResponse, ModelSettings, Usage
from coditect.llm.testing import FunctionModel, ScriptedModel, estimate_tokens

ASK = [Message(role="user", content="x" * 9)]


def test_estimate_is_four_chars_per_token_at_least_one() -> None:
    assert [estimate_tokens(t) for t in ["", "a", "abcd", "abcde", "a" * 400]] == [1, 1, 1, 2, 100]


async def test_scripted_model_answers_in_order_and_records_calls() -> None:
    model = ScriptedModel(["first", "second answer"])
    settings = ModelSettings(max_tokens=7, purpose="plan")

    one = await model.request(ASK, settings)
    two = await model.request([Message(role="user", content="again")])

    assert (one.text, two.text) == ("first", "second answer")
    assert one.usage == Usage(input_tokens=3, output_tokens=2)
    assert one.model_name == model.name == "test:scripted"
    assert one.finish_reason == "stop"
    assert model.calls[0] == (tuple(ASK), settings)
    assert model.calls[1][1] == ModelSettings()
    assert model.remaining == 0


async def test_scripted_model_exhausted_says_so() -> None:
    model = ScriptedModel(["only"])
    await model.request(ASK)

    with pytest.raises(ModelError, match=r"script exhausted, all 1 answers used; request 2"):
        await model.request([Message(role="user", content="one more?")])
    assert len(model.calls) == 2


async def test_scripted_model_returns_full_responses_unchanged() -> None:
    prepared = ModelResponse(text="t", usage=Usage(input_tokens=50), model_name="other")
    model = ScriptedModel([prepared], name="test:custom")

    assert await model.request(ASK) is prepared
    assert model.name == "test:custom"


async def test_function_model_sees_messages_and_settings() -> None:
    def answer(messages: tuple[Message, ...], settings: ModelSettings) -> str:
        return f"{len(messages)} messages, max {settings.max_tokens}"

    model = FunctionModel(answer)
    response = await model.request(ASK, ModelSettings(max_tokens=3))

    assert response.text == "1 messages, max 3"
    assert response.model_name == "test:function"
    assert response.usage.output_tokens == estimate_tokens(response.text)
    assert len(model.calls) == 1


async def test_function_model_accepts_async_functions_and_errors() -> None:
    async def answer(messages: object, settings: object) -> str:
        return "async"

    assert (await FunctionModel(answer).request(ASK)).text == "async"

    def failing(messages: object, settings: object) -> str:
        raise ModelError("simulated outage", retryable=True)

    with pytest.raises(ModelError, match="simulated outage"):
        await FunctionModel(failing).request(ASK)


async def test_function_model_rejects_other_answer_types() -> None:
    model = FunctionModel(lambda messages, settings: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(ModelError, match="got int"):
        await model.request(ASK)
