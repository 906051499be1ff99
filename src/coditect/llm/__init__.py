"""Language models behind one interface, :class:`Model`.

``LocalModel`` (the embedded llama.cpp model) is imported lazily, so ``import coditect.llm`` stays
fast and works without the ``[local]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coditect.llm.base import Message, Model, ModelResponse, ModelSettings, Usage

if TYPE_CHECKING:
    from coditect.llm.local import LocalModel

__all__ = ["LocalModel", "Message", "Model", "ModelResponse", "ModelSettings", "Usage"]


def __getattr__(name: str) -> Any:
    if name == "LocalModel":
        from coditect.llm.local import LocalModel

        return LocalModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
