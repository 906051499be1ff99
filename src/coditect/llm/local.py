"""The embedded local model: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) run by llama.cpp.

The weights are loaded once per process and shared by every :class:`LocalModel` that uses the
same file and context size. llama.cpp is not thread-safe for one context, so calls to a loaded
model run one at a time (a lock), each in a worker thread so the event loop stays responsive.

``llama_cpp`` is imported lazily, on the first request: importing this module is cheap and works
without the ``[local]`` extra.

Caveats, from llama-cpp-python itself: with ``verbose=False`` it silences llama.cpp's load log
by pointing the process's file descriptors 1 and 2 at /dev/null for the duration of the load
(about a second, once per process), so output written by other threads in that window is lost.
A cancelled :meth:`LocalModel.request` stops waiting at once, and llama.cpp stops computing
within one decoding step: a cancel flag is read by llama.cpp's abort callback, which it calls
during every graph computation (reading the prompt as well as generating each token). So
Ctrl-C ends the process within about a second instead of after the whole answer.
(llama-cpp-python's stopping criteria are not reachable through its chat API, and its logits
processors run as C callbacks that cannot stop anything.)
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coditect.errors import ModelError, ModelOutputError, ModelUnavailableError
from coditect.llm.base import (
    Message,
    Model,
    ModelResponse,
    ModelSettings,
    Usage,
    estimate_tokens,
)
from coditect.llm.model_file import (
    LOCAL_EXTRA_HINT,
    MODEL_FILE_NAME,
    ensure_model_file,
)

__all__ = ["LOCAL_MODEL_NAME", "LocalModel", "ensure_model_file", "kv_reused_tokens"]

LOCAL_MODEL_NAME = "local:" + MODEL_FILE_NAME.removesuffix(".gguf")
"""The name reported by :class:`LocalModel` for the embedded model file."""

_DEFAULT_N_CTX = 4096


@dataclass(eq=False)
class _Loaded:
    """One loaded llama.cpp model shared by the LocalModel instances that use it."""

    llama: Any
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: set[int] = field(default_factory=set)
    # Set (under ``lock``) for the request running now; llama.cpp's abort callback reads it.
    cancelled: threading.Event | None = None
    abort_callback: Any = None  # kept referenced: llama.cpp holds a raw pointer to it


def _watch_cancel(loaded: _Loaded) -> None:
    """Install llama.cpp's abort callback on ``loaded`` once (real llama.cpp models only)."""
    if loaded.abort_callback is not None:
        return
    ctx = getattr(getattr(loaded.llama, "_ctx", None), "ctx", None)
    if ctx is None:
        return
    import llama_cpp

    def abort(_data: Any) -> bool:
        event = loaded.cancelled
        return event is not None and event.is_set()

    loaded.abort_callback = llama_cpp.ggml_abort_callback(abort)
    llama_cpp.llama_set_abort_callback(ctx, loaded.abort_callback, None)


_cache: dict[tuple[str, int], _Loaded] = {}
_cache_lock = threading.Lock()


class LocalModel(Model):
    """The embedded Qwen2.5-Coder-1.5B-Instruct model, run in-process by llama.cpp.

    Nothing is loaded until the first :meth:`request` (or :meth:`load`). Without ``model_path``
    the model file is assembled from the installed weight packages on first use (see
    :func:`~coditect.llm.model_file.ensure_model_file`).

    Args:
        model_path: A GGUF file to load instead of the embedded model.
        n_ctx: Context window in tokens (prompt plus answer).
        n_threads: CPU threads for inference; defaults to ``os.cpu_count()``. Only the first
            instance that loads a given (file, n_ctx) pair decides it: the weights are shared.
        seed: Sampling seed, so that temperatures above 0 are reproducible too (a request's
            ``settings.seed`` overrides it).
        llama_factory: Builds the llama.cpp model, called as
            ``factory(model_path=..., n_ctx=..., n_threads=..., verbose=False)``; defaults to
            ``llama_cpp.Llama``. Tests pass a fake; its objects need ``create_chat_completion``
            and ``close``.

    Example:
        >>> model = LocalModel()
        >>> answer = await model.request([Message(role="user", content="Say hi")])
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        n_ctx: int = _DEFAULT_N_CTX,
        n_threads: int | None = None,
        seed: int = 0,
        llama_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._seed = seed
        self._llama_factory = llama_factory
        self._name = (
            LOCAL_MODEL_NAME
            if model_path is None
            else "local:" + Path(model_path).name.removesuffix(".gguf").lower()
        )
        self._loaded: _Loaded | None = None
        self._prepare_seconds: float | None = None

    @property
    def name(self) -> str:
        """``local:qwen2.5-coder-1.5b-instruct-q4_k_m`` (or ``local:<file stem>``)."""
        return self._name

    @property
    def load_seconds(self) -> float | None:
        """Seconds llama.cpp took to load the weights in this process, None before loading.

        When the weights were already loaded by another instance, this is that load's time.
        """
        return self._loaded.load_seconds if self._loaded is not None else None

    @property
    def prepare_seconds(self) -> float | None:
        """Seconds spent finding and verifying (or assembling) the model file, None before."""
        return self._prepare_seconds

    @property
    def context_window(self) -> int:
        """llama.cpp's ``n_ctx``: the loaded context's size, else the configured one."""
        loaded = self._loaded
        if loaded is not None and loaded.llama is not None:
            n_ctx = getattr(loaded.llama, "n_ctx", None)
            if callable(n_ctx):
                return int(n_ctx())
        return self._n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's own tokenizer (loads the weights if needed).

        Falls back to :func:`~coditect.llm.base.estimate_tokens` when llama.cpp is not
        installed or the fake llama of a test has no tokenizer. The tokenizer only reads the
        vocabulary, so it runs without waiting for a generation in progress.
        """
        try:
            loaded = self._ensure_loaded()
        except ModelUnavailableError:
            return estimate_tokens(text)
        llama = loaded.llama
        tokenize = getattr(llama, "tokenize", None) if llama is not None else None
        if tokenize is None:
            return estimate_tokens(text)
        return len(tokenize(text.encode("utf-8"), add_bos=False, special=False))

    async def load(self) -> None:
        """Load the weights now instead of on the first request.

        Raises:
            ModelUnavailableError: llama.cpp or the model file is not available.
        """
        await asyncio.to_thread(self._ensure_loaded)

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Answer ``messages`` with the local model.

        When ``settings.json_schema`` is set, output is constrained by a grammar derived from
        the schema. The answer is returned as produced; an answer cut off by ``max_tokens``
        has ``finish_reason == "length"`` and may not parse.

        Raises:
            ModelUnavailableError: llama.cpp or the model file is not available.
            ModelError: llama.cpp rejected the request (for example the prompt does not fit).
            ModelOutputError: llama.cpp answered without usage figures or text.
        """
        cancelled = threading.Event()
        try:
            return await asyncio.to_thread(
                self._request_sync, tuple(messages), settings or ModelSettings(), cancelled
            )
        except asyncio.CancelledError:
            cancelled.set()  # llama.cpp aborts its current decoding step (module docstring)
            raise

    async def aclose(self) -> None:
        """Release this instance's hold on the weights; they are freed when no user is left."""
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        await asyncio.to_thread(_release, loaded, id(self))

    def _request_sync(
        self,
        messages: tuple[Message, ...],
        settings: ModelSettings,
        cancelled: threading.Event | None = None,
    ) -> ModelResponse:
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            "stop": list(settings.stop) or None,
            "seed": self._seed if settings.seed is None else settings.seed,
        }
        if settings.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": settings.json_schema}
        while True:
            loaded = self._ensure_loaded()
            with loaded.lock:
                if loaded.llama is None:
                    # Freed by a concurrent aclose(); load again.
                    self._loaded = None
                    continue
                started = time.perf_counter()
                before = _kv_tokens(loaded.llama)
                _watch_cancel(loaded)
                loaded.cancelled = cancelled
                try:
                    raw = loaded.llama.create_chat_completion(**kwargs)
                except ValueError as exc:
                    raise ModelError(
                        f"local model rejected the request: {exc}",
                        hint=f"shorten the prompt or raise n_ctx (now {self._n_ctx})",
                    ) from exc
                except RuntimeError as exc:
                    # An aborted or failed decode can leave part of a batch in the KV cache:
                    # start the next request from an empty state instead of trusting it.
                    _forget_state(loaded.llama)
                    if cancelled is not None and cancelled.is_set():
                        raise ModelError("local model generation was cancelled") from exc
                    raise ModelError(f"local model failed: {exc}") from exc
                finally:
                    loaded.cancelled = None
                latency_s = time.perf_counter() - started
                after = _kv_tokens(loaded.llama)
            return self._to_response(raw, latency_s, kv=(before, after))

    def _to_response(
        self, raw: Any, latency_s: float, *, kv: tuple[list[int], list[int]] = ([], [])
    ) -> ModelResponse:
        try:
            choice = raw["choices"][0]
            usage = raw["usage"]
            text = choice["message"]["content"] or ""
            prompt_tokens = int(usage["prompt_tokens"])
            return ModelResponse(
                text=text,
                usage=Usage(
                    input_tokens=prompt_tokens,
                    output_tokens=int(usage["completion_tokens"]),
                    cached_input_tokens=kv_reused_tokens(*kv, prompt_tokens=prompt_tokens),
                ),
                model_name=self._name,
                latency_s=latency_s,
                finish_reason=str(choice.get("finish_reason") or ""),
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelOutputError(f"local model returned an unexpected shape: {exc!r}") from exc

    def _ensure_loaded(self) -> _Loaded:
        if self._loaded is not None and self._loaded.llama is not None:
            return self._loaded
        factory = self._llama_factory or _import_llama()
        path = self._resolve_path()
        key = (str(path), self._n_ctx)
        with _cache_lock:
            loaded = _cache.get(key)
            if loaded is None:
                loaded = _load(factory, path, n_ctx=self._n_ctx, n_threads=self._n_threads)
                _cache[key] = loaded
            loaded.users.add(id(self))
        self._loaded = loaded
        return loaded

    def _resolve_path(self) -> Path:
        if self._model_path is not None:
            if not self._model_path.is_file():
                raise ModelUnavailableError(f"model file not found: {self._model_path}")
            self._prepare_seconds = 0.0
            return self._model_path
        started = time.perf_counter()
        path = ensure_model_file()
        self._prepare_seconds = time.perf_counter() - started
        return path


def _forget_state(llama: Any) -> None:
    """Empty llama.cpp's KV cache and llama-cpp-python's token record (after a failed decode)."""
    reset = getattr(llama, "reset", None)
    if callable(reset):
        reset()
    clear = getattr(getattr(llama, "_ctx", None), "kv_cache_clear", None)
    if callable(clear):
        clear()


def _kv_tokens(llama: Any) -> list[int]:
    """The tokens held in llama.cpp's KV cache (empty for objects that do not expose them)."""
    ids, n = getattr(llama, "input_ids", None), getattr(llama, "n_tokens", None)
    if ids is None or not isinstance(n, int):
        return []
    return [int(t) for t in ids[:n]]


def kv_reused_tokens(before: Sequence[int], after: Sequence[int], *, prompt_tokens: int) -> int:
    """Prompt tokens llama.cpp reused from its KV cache instead of evaluating them again.

    llama-cpp-python keeps the longest common prefix of the cached tokens (``before``) and the new
    prompt (the first ``prompt_tokens`` of ``after``, which holds prompt plus answer once the call
    is done) and evaluates only the rest, always at least one token so that it has fresh logits to
    sample from. Those reused tokens cost no compute: they are the embedded model's "cached input".
    """
    prefix = 0
    for a, b in zip(before, after[:prompt_tokens], strict=False):
        if a != b:
            break
        prefix += 1
    return max(0, min(prefix, prompt_tokens - 1))


def _import_llama() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ModelUnavailableError(
            "llama-cpp-python is not installed", hint=LOCAL_EXTRA_HINT
        ) from exc
    return Llama


def _load(factory: Callable[..., Any], path: Path, *, n_ctx: int, n_threads: int) -> _Loaded:
    started = time.perf_counter()
    try:
        llama = factory(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelUnavailableError(f"cannot load model {path}: {exc}") from exc
    return _Loaded(llama=llama, load_seconds=time.perf_counter() - started)


def _release(loaded: _Loaded, user: int) -> None:
    with _cache_lock:
        loaded.users.discard(user)
        if loaded.users:
            return
        for key, value in list(_cache.items()):
            if value is loaded:
                del _cache[key]
    with loaded.lock:
        llama, loaded.llama = loaded.llama, None
    if llama is not None:
        llama.close()
