"""LocalModel's own logic, with a fake llama.cpp (the real one runs in tests/integration)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coditect.errors import ModelError, ModelOutputError, ModelUnavailableError
from coditect.llm import LocalModel, Message, ModelSettings


class FakeLlama:
    """Stands in for llama_cpp.Llama; records calls and how many ran at once."""

    def __init__(self, factory: FakeFactory, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.factory = factory
        self.closed = False

    def create_chat_completion(self, **kwargs: Any) -> Any:
        factory = self.factory
        with factory.guard:
            factory.running += 1
            factory.max_running = max(factory.max_running, factory.running)
        try:
            factory.requests.append(kwargs)
            if factory.delay_s:
                time.sleep(factory.delay_s)
            if isinstance(factory.answer, Exception):
                raise factory.answer
            return factory.answer
        finally:
            with factory.guard:
                factory.running -= 1

    def close(self) -> None:
        self.closed = True


class FakeFactory:
    def __init__(self, answer: Any = None) -> None:
        self.answer = answer if answer is not None else completion("def f(): pass")
        self.instances: list[FakeLlama] = []
        self.requests: list[dict[str, Any]] = []
        self.guard = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.delay_s = 0.0

    def __call__(self, **kwargs: Any) -> FakeLlama:
        llama = FakeLlama(self, **kwargs)
        self.instances.append(llama)
        return llama


def completion(text: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "Tiny-Model.gguf"
    path.write_bytes(b"GGUF")
    return path


USER = [Message(role="system", content="be brief"), Message(role="user", content="hi")]


async def test_request_passes_settings_and_reports_own_usage(model_file: Path) -> None:
    factory = FakeFactory()
    model = LocalModel(
        model_path=model_file, n_ctx=1024, n_threads=3, seed=7, llama_factory=factory
    )
    schema: dict[str, object] = {"type": "object"}

    response = await model.request(
        USER, ModelSettings(max_tokens=50, temperature=0.5, stop=("\n\n",), json_schema=schema)
    )

    assert factory.instances[0].kwargs == {
        "model_path": str(model_file),
        "n_ctx": 1024,
        "n_threads": 3,
        "verbose": False,
    }
    assert factory.requests == [
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "max_tokens": 50,
            "temperature": 0.5,
            "stop": ["\n\n"],
            "seed": 7,
            "response_format": {"type": "json_object", "schema": schema},
        }
    ]
    assert response.text == "def f(): pass"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.finish_reason == "stop"
    assert response.model_name == model.name == "local:tiny-model"
    assert model.load_seconds is not None
    await model.aclose()


async def test_samples_of_one_prompt_differ_by_seed_on_one_loaded_model(model_file: Path) -> None:
    # Candidates are sampled from the same messages on the same llama.cpp object (which reuses
    # the processed prompt prefix); only the per-request seed differs.
    factory = FakeFactory()
    model = LocalModel(model_path=model_file, seed=7, llama_factory=factory)
    for seed in (None, 11, 12):
        await model.request(USER, ModelSettings(temperature=0.8, seed=seed))
    assert [r["seed"] for r in factory.requests] == [7, 11, 12]
    assert len({str(r["messages"]) for r in factory.requests}) == 1
    assert len(factory.instances) == 1
    await model.aclose()


async def test_defaults_without_stop_or_schema(model_file: Path) -> None:
    factory = FakeFactory(completion(None, finish_reason="length"))
    model = LocalModel(model_path=model_file, llama_factory=factory)

    response = await model.request(USER)

    request = factory.requests[0]
    assert request["stop"] is None
    assert "response_format" not in request
    assert request["max_tokens"] == ModelSettings().max_tokens
    assert factory.instances[0].kwargs["n_ctx"] == 4096
    assert (response.text, response.finish_reason) == ("", "length")
    await model.aclose()


def test_default_name_is_the_embedded_model() -> None:
    assert LocalModel().name == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"


async def test_missing_model_file(tmp_path: Path) -> None:
    model = LocalModel(model_path=tmp_path / "absent.gguf", llama_factory=FakeFactory())
    with pytest.raises(ModelUnavailableError, match="absent.gguf"):
        await model.request(USER)


async def test_load_failure_is_model_unavailable(model_file: Path) -> None:
    def broken(**kwargs: Any) -> Any:
        raise ValueError("Failed to load model from file")

    model = LocalModel(model_path=model_file, llama_factory=broken)
    with pytest.raises(ModelUnavailableError, match="Failed to load"):
        await model.load()


async def test_prompt_too_long_is_a_model_error_with_hint(model_file: Path) -> None:
    factory = FakeFactory(ValueError("Requested tokens (5000) exceed context window of 4096"))
    model = LocalModel(model_path=model_file, llama_factory=factory)

    with pytest.raises(ModelError, match="exceed context window") as caught:
        await model.request(USER)

    assert "n_ctx" in caught.value.hint
    await model.aclose()


async def test_answer_without_usage_is_an_output_error(model_file: Path) -> None:
    factory = FakeFactory({"choices": [{"message": {"content": "x"}}]})
    model = LocalModel(model_path=model_file, llama_factory=factory)

    with pytest.raises(ModelOutputError, match="usage"):
        await model.request(USER)
    await model.aclose()


async def test_weights_are_shared_and_freed_with_the_last_user(model_file: Path) -> None:
    factory = FakeFactory()
    first = LocalModel(model_path=model_file, llama_factory=factory)
    second = LocalModel(model_path=model_file, llama_factory=factory)

    await first.request(USER)
    await second.request(USER)
    assert len(factory.instances) == 1

    await first.aclose()
    assert not factory.instances[0].closed
    await second.request(USER)
    await second.aclose()
    assert factory.instances[0].closed

    await second.request(USER)  # loads again after close
    assert len(factory.instances) == 2
    await second.aclose()


async def test_other_context_size_loads_separately(model_file: Path) -> None:
    factory = FakeFactory()
    small = LocalModel(model_path=model_file, n_ctx=512, llama_factory=factory)
    large = LocalModel(model_path=model_file, n_ctx=2048, llama_factory=factory)

    await small.load()
    await large.load()

    assert [i.kwargs["n_ctx"] for i in factory.instances] == [512, 2048]
    await small.aclose()
    await large.aclose()


async def test_calls_run_one_at_a_time_off_the_event_loop(model_file: Path) -> None:
    factory = FakeFactory()
    factory.delay_s = 0.02
    model = LocalModel(model_path=model_file, llama_factory=factory)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(model.request(USER) for _ in range(4)))
    ticking.cancel()

    assert factory.max_running == 1
    assert ticks > 0  # the loop kept running while the model worked
    await model.aclose()


def test_importing_the_package_does_not_import_llama_cpp() -> None:
    code = (
        "import sys, coditect.llm as llm\n"
        "assert 'llama_cpp' not in sys.modules\n"
        "assert llm.LocalModel.__name__ == 'LocalModel'\n"
        "assert 'llama_cpp' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class KvLlama(FakeLlama):
    """A fake that keeps a KV cache the way llama-cpp-python does: prompt plus answer tokens."""

    def __init__(self, factory: FakeFactory, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.input_ids: list[int] = [0] * 4096
        self.n_tokens = 0

    def create_chat_completion(self, **kwargs: Any) -> Any:
        prompt = [ord(c) for m in kwargs["messages"] for c in m["content"]]
        answer = [1, 2, 3]
        tokens = prompt + answer
        self.input_ids[: len(tokens)] = tokens
        self.n_tokens = len(tokens)
        out = completion("ok")
        out["usage"] = {"prompt_tokens": len(prompt), "completion_tokens": len(answer)}
        return out


async def test_prompt_tokens_reused_from_the_kv_cache_count_as_cached(model_file: Path) -> None:
    factory = FakeFactory()
    model = LocalModel(model_path=model_file, llama_factory=lambda **kw: KvLlama(factory, **kw))
    system = Message(role="system", content="a long shared system prompt")
    first = await model.request([system, Message(role="user", content="one")])
    second = await model.request([system, Message(role="user", content="two")])
    same = await model.request([system, Message(role="user", content="two")])
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens == len(system.content)
    # a repeated prompt still evaluates its last token, as llama.cpp does, for fresh logits
    assert same.usage.cached_input_tokens == same.usage.input_tokens - 1
    await model.aclose()


def test_kv_reuse_is_the_common_prefix_capped_below_the_prompt() -> None:
    from coditect.llm.local import kv_reused_tokens

    assert kv_reused_tokens([], [1, 2, 3], prompt_tokens=3) == 0
    assert kv_reused_tokens([1, 2, 9], [1, 2, 3, 4], prompt_tokens=3) == 2
    assert kv_reused_tokens([1, 2, 3, 7], [1, 2, 3, 8], prompt_tokens=3) == 2
    assert kv_reused_tokens([5], [1], prompt_tokens=0) == 0


async def test_a_failed_decode_empties_the_model_state(model_file: Path) -> None:
    """After llama_decode fails (or is aborted), the next request starts from an empty KV cache."""

    class ResettableLlama(FakeLlama):
        def __init__(self, factory: FakeFactory, **kwargs: Any) -> None:
            super().__init__(factory, **kwargs)
            self.resets = 0
            self._ctx = self
            self.cleared = 0

        def reset(self) -> None:
            self.resets += 1

        def kv_cache_clear(self) -> None:
            self.cleared += 1

    factory = FakeFactory(RuntimeError("llama_decode returned 2"))
    made: list[ResettableLlama] = []

    def build(**kwargs: Any) -> ResettableLlama:
        made.append(ResettableLlama(factory, **kwargs))
        return made[-1]

    model = LocalModel(model_path=model_file, llama_factory=build)
    with pytest.raises(ModelError, match="local model failed"):
        await model.request(USER)
    assert (made[0].resets, made[0].cleared) == (1, 1)
    await model.aclose()
