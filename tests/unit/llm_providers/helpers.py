"""Helpers for the provider tests: recorded exchanges served through httpx2.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx2

from coditect.llm.base import Message, ModelResponse, ModelSettings, Usage
from coditect.llm.testing import FunctionModel, ResponseFunction

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "recorded"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return data


class Replay:
    """Serves recorded responses in order and keeps the requests it received."""

    def __init__(self, *names: str) -> None:
        self.queue = [recorded(n) for n in names]
        self.requests: list[Any] = []

    def handler(self, request: Any) -> Any:
        self.requests.append(request)
        exchange = self.queue.pop(0)
        return httpx2.Response(
            exchange["status"], headers=exchange["headers"], json=exchange["body"]
        )

    def client(self) -> Any:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


class SleepRecorder:
    """An injectable sleep that only records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


class FakeModel(FunctionModel):
    """The package's FunctionModel with a fixed usage (its name decides its price).

    Without ``fn`` it answers ``"answer <n>"``; it also records whether it was closed.
    """

    def __init__(
        self,
        name: str = "anthropic:claude-haiku-4-5",
        usage: Usage | None = None,
        *,
        fn: ResponseFunction | None = None,
    ) -> None:
        self.usage = usage or Usage(input_tokens=1000, output_tokens=200)
        self.closed = False
        super().__init__(fn or self._answer, name=name)

    def _answer(self, messages: Sequence[Message], settings: ModelSettings) -> ModelResponse:
        return ModelResponse(
            text=f"answer {len(self.calls)}", usage=self.usage, model_name=self.name
        )

    async def aclose(self) -> None:
        self.closed = True
