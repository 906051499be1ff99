"""The embedded model, for real: assembles or reuses the GGUF file, loads it, asks it for code."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")

from coditect.llm import LocalModel, Message, ModelSettings  # noqa: E402

pytestmark = pytest.mark.local_model


async def test_writes_a_fibonacci_function() -> None:
    model = LocalModel()
    try:
        response = await model.request(
            [
                Message(role="system", content="You are a Python programmer. Answer with code."),
                Message(
                    role="user",
                    content="Write a Python function fibonacci(n) that returns the n-th "
                    "Fibonacci number.",
                ),
            ],
            ModelSettings(max_tokens=200, temperature=0.0),
        )
    finally:
        await model.aclose()

    assert "def " in response.text
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.model_name == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert response.finish_reason in {"stop", "length"}


async def test_json_schema_constrains_the_answer() -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "args": {"type": "integer"}},
        "required": ["name", "args"],
    }
    model = LocalModel()
    try:
        response = await model.request(
            [Message(role="user", content="Name a Python builtin function and its arity.")],
            ModelSettings(max_tokens=60, json_schema=schema),
        )
    finally:
        await model.aclose()

    value = json.loads(response.text)
    assert isinstance(value["name"], str)
    assert isinstance(value["args"], int)


async def test_a_shared_prompt_prefix_is_reported_as_cached_input() -> None:
    system = Message(
        role="system",
        content="You are a careful Python reviewer. Answer in at most five words. " * 4,
    )
    model = LocalModel(n_ctx=1024)
    try:
        ask = ModelSettings(max_tokens=4)
        first = await model.request([system, Message(role="user", content="Is 1 odd?")], ask)
        second = await model.request([system, Message(role="user", content="Is 2 odd?")], ask)
    finally:
        await model.aclose()

    # llama.cpp evaluated only the new suffix of the second prompt: the shared system prompt
    # (and chat template head) came from its KV cache
    assert first.usage.cached_input_tokens < first.usage.input_tokens
    assert 40 < second.usage.cached_input_tokens < second.usage.input_tokens
