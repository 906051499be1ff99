"""The token API of the Model interface: context window and token counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coditect.llm import LocalModel
from coditect.llm.base import DEFAULT_CONTEXT_WINDOW, estimate_tokens, prompt_budget
from coditect.llm.registry import RoutedModel
from coditect.llm.testing import ScriptedModel
from coditect.reuse.tally import TokenTally


class TokenizingLlama:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def n_ctx(self) -> int:
        return self.kwargs["n_ctx"]

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        assert add_bos is False and special is False
        return list(range(len(data.split())))

    def close(self) -> None:
        pass


class PlainLlama(TokenizingLlama):
    tokenize = None  # type: ignore[assignment]


def test_default_is_a_cautious_estimate():
    model = ScriptedModel(["x"])
    assert model.context_window == DEFAULT_CONTEXT_WINDOW
    assert model.count_tokens("abcdef") == estimate_tokens("abcdef") == 2
    assert estimate_tokens("é") == 1
    assert prompt_budget(model, 400, messages=2) == DEFAULT_CONTEXT_WINDOW - 400 - 48


def test_wrappers_answer_with_the_wrapped_model(tmp_path: Path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    local = LocalModel(model_path=gguf, n_ctx=2048, llama_factory=TokenizingLlama)
    assert local.context_window == 2048  # before loading: the configured size
    wrapped = TokenTally(local)
    assert wrapped.count_tokens("one two three") == 3  # the model's own tokenizer
    assert wrapped.context_window == 2048
    routed = RoutedModel(ScriptedModel(["x"]), {"code": local})
    assert routed.context_window == 2048
    assert routed.count_tokens("one two three") == estimate_tokens("one two three")


def test_local_model_without_a_tokenizer_estimates(tmp_path: Path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    local = LocalModel(model_path=gguf, llama_factory=PlainLlama)
    assert local.count_tokens("abcdef") == 2
    missing = LocalModel(model_path=tmp_path / "absent.gguf")
    assert missing.count_tokens("abcdef") == 2
