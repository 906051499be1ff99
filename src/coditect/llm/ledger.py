"""Cost accounting: one ledger entry per model call, and totals per mission, task or agent.

:class:`LedgerModel` wraps any :class:`~coditect.llm.base.Model` and records every call it
forwards, priced with :mod:`coditect.llm.pricing`. A response served from the response cache
(``reused=True``) is recorded with zero new tokens and zero cost.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Engine,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from coditect.errors import StoreError
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.cascade import at_tier, current_tier
from coditect.llm.pricing import cost_usd, price_for
from coditect.llm.wrapper import WrapperModel
from coditect.state.engine import EngineCalls, open_engine
from coditect.state.migrate import ensure_schema
from coditect.state.models import llm_calls

__all__ = [
    "CallContext",
    "Ledger",
    "LedgerEntry",
    "LedgerModel",
    "LedgerTotals",
    "MemoryLedger",
    "SqliteLedger",
    "entry_for",
    "llm_calls",  # declared with the rest of the schema in coditect.state.models
]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class CallContext:
    """Who made a call: recorded with it so costs add up per mission, task and agent.

    Attributes:
        tier: The cascade tier the call goes to (0 = the first model; see
            :mod:`coditect.llm.cascade`); None keeps the tier of the caller's
            :func:`~coditect.llm.cascade.at_tier` block. Models that are not a cascade ignore it.
    """

    mission_id: str = ""
    task_id: str = ""
    agent: str = ""
    tier: int | None = None


class LedgerEntry(BaseModel):
    """One model call as it was accounted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mission_id: str = ""
    task_id: str = ""
    agent: str = ""
    model: str
    purpose: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    priced: bool = True
    latency_s: float = 0.0
    reused: bool = False
    tier: int = 0
    ts: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LedgerTotals(BaseModel):
    """Sums over ledger entries.

    Attributes:
        calls: Entries counted, including reused ones.
        reused_calls: Entries answered from the response cache.
        priced: False when some entry's model had no known price (so ``usd`` is a lower bound).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: int = 0
    reused_calls: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    latency_s: float = 0.0
    priced: bool = True

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def entry_for(
    response: ModelResponse, *, context: CallContext, purpose: str, latency_s: float
) -> LedgerEntry:
    """The ledger entry for one response (zero tokens and cost when it was reused)."""
    price = price_for(response.model_name)
    usage = response.usage
    reused = response.reused
    return LedgerEntry(
        mission_id=context.mission_id,
        task_id=context.task_id,
        agent=context.agent,
        model=response.model_name,
        purpose=purpose,
        input_tokens=0 if reused else usage.input_tokens,
        cached_input_tokens=0 if reused else usage.cached_input_tokens,
        cache_write_input_tokens=0 if reused else usage.cache_write_input_tokens,
        output_tokens=0 if reused else usage.output_tokens,
        usd=0.0 if reused else cost_usd(usage, price),
        priced=price.priced,
        latency_s=latency_s,
        reused=reused,
        tier=current_tier() if context.tier is None else context.tier,
    )


def _matches(
    entry: LedgerEntry, mission_id: str | None, task_id: str | None, agent: str | None
) -> bool:
    return (
        (mission_id is None or entry.mission_id == mission_id)
        and (task_id is None or entry.task_id == task_id)
        and (agent is None or entry.agent == agent)
    )


def _sum(entries: Sequence[LedgerEntry]) -> LedgerTotals:
    return LedgerTotals(
        calls=len(entries),
        reused_calls=sum(e.reused for e in entries),
        input_tokens=sum(e.input_tokens for e in entries),
        cached_input_tokens=sum(e.cached_input_tokens for e in entries),
        output_tokens=sum(e.output_tokens for e in entries),
        usd=sum(e.usd for e in entries),
        latency_s=sum(e.latency_s for e in entries),
        priced=all(e.priced for e in entries),
    )


class Ledger(abc.ABC):
    """Where model calls are accounted."""

    @abc.abstractmethod
    async def record(self, entry: LedgerEntry) -> None:
        """Append one entry."""

    @abc.abstractmethod
    async def entries(
        self,
        mission_id: str | None = None,
        *,
        task_id: str | None = None,
        agent: str | None = None,
    ) -> list[LedgerEntry]:
        """Entries in the order they were recorded, optionally filtered (None = any)."""

    async def totals(
        self,
        mission_id: str | None = None,
        *,
        task_id: str | None = None,
        agent: str | None = None,
    ) -> LedgerTotals:
        """Sums over the matching entries."""
        return _sum(await self.entries(mission_id, task_id=task_id, agent=agent))

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryLedger(Ledger):
    """A ledger in a Python list (tests, one-off runs)."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    async def record(self, entry: LedgerEntry) -> None:
        """Append one entry."""
        self._entries.append(entry)

    async def entries(
        self,
        mission_id: str | None = None,
        *,
        task_id: str | None = None,
        agent: str | None = None,
    ) -> list[LedgerEntry]:
        """Matching entries, oldest first."""
        return [e for e in self._entries if _matches(e, mission_id, task_id, agent)]


class SqliteLedger(Ledger):
    """A ledger in the ``llm_calls`` table of a SQL database (SQLAlchemy Core).

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.coditect/state.db``; the state database's
            schema is created or migrated (:mod:`coditect.state.migrate`). Calls run in a worker
            thread so the event loop never waits on disk.

    Raises:
        StoreError: The database cannot be opened or its schema cannot be used.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine: Engine = open_engine(url)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the LLM ledger {url}: {exc}") from exc
        # ``llm_calls`` lives in the state database, whose migrations own it.
        ensure_schema(self._engine)
        self._calls = EngineCalls(self._engine, f"LLM ledger {url}")

    async def _run(self, fn: Callable[[Any], T]) -> T:
        def work() -> T:
            try:
                with self._engine.begin() as conn:
                    return fn(conn)
            except SQLAlchemyError as exc:
                raise StoreError(f"LLM ledger {self.url} failed: {exc}") from exc

        return await self._calls.run(work)

    async def record(self, entry: LedgerEntry) -> None:
        """Insert one row."""
        row = {
            "mission": entry.mission_id,
            "task": entry.task_id,
            "agent": entry.agent,
            **entry.model_dump(exclude={"mission_id", "task_id", "agent"}),
        }
        await self._run(lambda conn: conn.execute(insert(llm_calls), [row]))

    async def entries(
        self,
        mission_id: str | None = None,
        *,
        task_id: str | None = None,
        agent: str | None = None,
    ) -> list[LedgerEntry]:
        """Matching rows, oldest first."""
        query = select(llm_calls).order_by(llm_calls.c.id)
        for column, value in (("mission", mission_id), ("task", task_id), ("agent", agent)):
            if value is not None:
                query = query.where(llm_calls.c[column] == value)
        rows = await self._run(lambda conn: conn.execute(query).mappings().all())
        return [_entry_from_row(dict(row)) for row in rows]

    async def totals(
        self,
        mission_id: str | None = None,
        *,
        task_id: str | None = None,
        agent: str | None = None,
    ) -> LedgerTotals:
        """Sums computed by the database."""
        c = llm_calls.c
        query = select(
            func.count(),
            func.coalesce(func.sum(c.reused), 0),
            func.coalesce(func.sum(c.input_tokens), 0),
            func.coalesce(func.sum(c.cached_input_tokens), 0),
            func.coalesce(func.sum(c.output_tokens), 0),
            func.coalesce(func.sum(c.usd), 0.0),
            func.coalesce(func.sum(c.latency_s), 0.0),
            func.coalesce(func.min(c.priced), True),
        )
        for column, value in (("mission", mission_id), ("task", task_id), ("agent", agent)):
            if value is not None:
                query = query.where(llm_calls.c[column] == value)
        row = await self._run(lambda conn: conn.execute(query).one())
        return LedgerTotals(
            calls=row[0],
            reused_calls=int(row[1]),
            input_tokens=int(row[2]),
            cached_input_tokens=int(row[3]),
            output_tokens=int(row[4]),
            usd=float(row[5]),
            latency_s=float(row[6]),
            priced=bool(row[7]),
        )

    async def close(self) -> None:
        """Wait for the calls still running, then dispose of the connection pool."""
        await self._calls.close()


def _entry_from_row(row: dict[str, Any]) -> LedgerEntry:
    row.pop("id")
    ts = row["ts"]
    if ts.tzinfo is None:  # SQLite keeps no offset; we always write UTC.
        row["ts"] = ts.replace(tzinfo=UTC)
    return LedgerEntry(
        mission_id=row.pop("mission"), task_id=row.pop("task"), agent=row.pop("agent"), **row
    )


class LedgerModel(WrapperModel):
    """Records every call made through ``inner`` in ``ledger``.

    Args:
        inner: The model to forward to.
        ledger: Where to record.
        context: Mission, task and agent recorded with each call.
    """

    def __init__(self, inner: Model, ledger: Ledger, *, context: CallContext) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.context = context

    def with_context(self, context: CallContext) -> LedgerModel:
        """The same model and ledger, recording under another mission/task/agent."""
        return LedgerModel(self.inner, self.ledger, context=context)

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward the call, then record it (failed calls are not recorded)."""
        settings = settings or ModelSettings()
        started = time.perf_counter()
        tier = current_tier() if self.context.tier is None else self.context.tier
        with at_tier(tier):  # a cascade answers on the tier of this context
            response = await self.inner.request(messages, settings)
        latency_s = response.latency_s or (time.perf_counter() - started)
        await self.ledger.record(
            entry_for(response, context=self.context, purpose=settings.purpose, latency_s=latency_s)
        )
        return response
