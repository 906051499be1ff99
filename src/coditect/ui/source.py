"""Read access to missions, events and costs in the state database (SQLite or PostgreSQL).

The views only read; the one write path (starting and reviewing missions) goes through the
mission runner, which writes with its own store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, cast, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from coditect.domain.events import Event, event_adapter
from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.errors import StoreError
from coditect.leftovers import ProcessIdentity
from coditect.llm.ledger import LedgerEntry, llm_calls
from coditect.state.base import MissionStore
from coditect.state.engine import open_engine
from coditect.state.models import EventRow, MissionRow
from coditect.state.owners import is_interrupted, judge_reports

__all__ = ["MissionPage", "MissionRowView", "MissionSource", "StoredEvent"]

T = TypeVar("T")


@dataclass(frozen=True)
class MissionRowView:
    """One line of the missions list."""

    mission_id: str
    status: str
    request: str
    repo: str
    started_at: datetime
    wall_s: float
    tokens: int
    usd: float
    outcome: str


@dataclass(frozen=True)
class MissionPage:
    """One page of the missions list and where it sits in the whole (filtered) list."""

    rows: tuple[MissionRowView, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the filtered list has (at least 1)."""
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class StoredEvent:
    """An event with its position in the event log (``seq`` grows with every append)."""

    seq: int
    event: Event


def _outcome(branch: str | None, applied_to: str | None, reason: str | None) -> str:
    if branch:
        return f"branch {branch}"
    if applied_to:
        return f"written to {applied_to}"
    return (reason or "")[:120]


_SHOWN = ("tokens.input", "tokens.output", "tokens.usd", "branch", "applied_to", "reason")


def _list_columns(dialect: str) -> tuple[Any, ...]:
    """The list's columns; tokens, cost and outcome are read from the report JSON by the database.

    Loading and parsing 1,000 whole reports (diffs included) would cost more than the rest of
    the page, so only the fields shown leave the database: on SQLite as one JSON array (one
    parse of each report instead of one per field).
    """
    plain = (
        MissionRow.mission_id,
        MissionRow.status,
        MissionRow.request,
        MissionRow.repo,
        MissionRow.started_at,
        MissionRow.wall_s,
    )
    if dialect == "sqlite":
        shown = func.json_extract(MissionRow.report_json, *(f"$.{p}" for p in _SHOWN))
        return (*plain, shown, MissionRow.owner)
    doc: Any = cast(MissionRow.report_json, JSONB)
    fields = [doc[p.split(".")[0]][p.split(".")[1]] if "." in p else doc[p] for p in _SHOWN]
    return (*plain, func.jsonb_build_array(*fields), MissionRow.owner)


def _row_view(row: Any) -> MissionRowView:
    started = row[4] if row[4].tzinfo else row[4].replace(tzinfo=UTC)
    shown = row[6] if isinstance(row[6], list) else json.loads(row[6])
    tokens_in, tokens_out, usd, branch, applied_to, reason = shown
    status, wall_s = row[1], row[5]
    owner = ProcessIdentity.from_json(row[7] or "")
    if is_interrupted(status, owner):  # as `coditect status` shows it (state/owners.py)
        status = MissionOutcome.INTERRUPTED.value
        reason = f"interrupted: its process ended; `coditect resume {row[0]}` continues it"
    elif status == MissionOutcome.RUNNING.value:
        # a running mission's stored wall time is 0 until it ends: show how long it has run
        wall_s = (datetime.now(UTC) - started).total_seconds()
    return MissionRowView(
        mission_id=row[0],
        status=status,
        request=row[2],
        repo=row[3],
        started_at=started,
        wall_s=wall_s,
        tokens=int(tokens_in or 0) + int(tokens_out or 0),
        usd=float(usd or 0.0),
        outcome=_outcome(branch, applied_to, reason),
    )


class MissionSource:
    """Missions, events and LLM calls of one state database.

    Args:
        url: SQLAlchemy URL of the state database (embedded ``state.db`` or the distributed
            mode's metadata database). Its schema is brought up to date on open, as every
            CODITECT store does.
        store: The mission store of the same database (default: the one the runtime opens
            for ``url``); the source closes it.
    """

    def __init__(self, url: str, *, store: MissionStore | None = None) -> None:
        from coditect.runtime.local import open_mission_store  # the composition root picks it

        self.url = url
        self.store = store or open_mission_store(url)
        try:
            self._engine: Engine = open_engine(url)
        except SQLAlchemyError as exc:  # pragma: no cover - SqlStore opened the same URL
            raise StoreError(f"cannot open {url}: {exc}") from exc
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    async def _run(self, fn: Callable[[Session], T]) -> T:
        def work() -> T:
            try:
                with self._sessions() as session:
                    return fn(session)
            except SQLAlchemyError as exc:
                raise StoreError(f"state database {self.url} failed: {exc}") from exc

        return await asyncio.to_thread(work)

    async def page(
        self, *, status: str = "", query: str = "", page: int = 1, per_page: int = 50
    ) -> MissionPage:
        """Missions, most recent first, filtered by status and by words in request or repo."""
        page, per_page = max(1, page), min(max(1, per_page), 1000)
        conditions = []
        # RUNNING and INTERRUPTED are told apart per row (is the owner process alive?), so
        # both read the stored RUNNING rows and are paginated after that judgement.
        judged = status in (MissionOutcome.RUNNING.value, MissionOutcome.INTERRUPTED.value)
        if status:
            conditions.append(
                MissionRow.status == (MissionOutcome.RUNNING.value if judged else status)
            )
        if query:
            like = f"%{query}%"
            conditions.append(
                or_(
                    MissionRow.request.ilike(like),
                    MissionRow.repo.ilike(like),
                    MissionRow.mission_id.ilike(like),
                )
            )

        def work(s: Session) -> MissionPage:
            ordered = (
                select(*_list_columns(self._engine.dialect.name))
                .where(*conditions)
                .order_by(MissionRow.started_at.desc(), MissionRow.mission_id.desc())
            )
            if judged:
                views = [v for v in map(_row_view, s.execute(ordered).all()) if v.status == status]
                start = (page - 1) * per_page
                return MissionPage(
                    tuple(views[start : start + per_page]), len(views), page, per_page
                )
            total = s.scalar(select(func.count()).select_from(MissionRow).where(*conditions)) or 0
            rows = s.execute(ordered.offset((page - 1) * per_page).limit(per_page)).all()
            return MissionPage(tuple(_row_view(r) for r in rows), total, page, per_page)

        return await self._run(work)

    async def report(self, mission_id: str) -> MissionReport | None:
        """One mission's report (an exact id; the views never guess from a prefix).

        A RUNNING mission whose process is gone is shown as INTERRUPTED, as in the list.
        """

        def work(s: Session) -> str | None:
            row = s.get(MissionRow, mission_id)
            return row.report_json if row is not None else None

        raw = await self._run(work)
        if raw is None:
            return None
        report = MissionReport.model_validate_json(raw)
        return judge_reports([report], await self.store.owners([mission_id]))[0]

    async def events_after(
        self, mission_id: str, seq: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """The mission's events appended after position ``seq``, oldest first."""

        def work(s: Session) -> list[tuple[int, str]]:
            rows = s.execute(
                select(EventRow.seq, EventRow.body)
                .where(EventRow.mission_id == mission_id, EventRow.seq > seq)
                .order_by(EventRow.seq)
                .limit(limit)
            ).all()
            return [(r[0], r[1]) for r in rows]

        rows = await self._run(work)
        return [StoredEvent(n, event_adapter.validate_json(body)) for n, body in rows]

    async def last_mission_state(self, mission_id: str) -> StoredEvent | None:
        """The mission's latest ``mission.state`` event, if it has one."""

        def work(s: Session) -> tuple[int, str] | None:
            row = s.execute(
                select(EventRow.seq, EventRow.body)
                .where(EventRow.mission_id == mission_id, EventRow.type == "mission.state")
                .order_by(EventRow.seq.desc())
                .limit(1)
            ).first()
            return (row[0], row[1]) if row is not None else None

        found = await self._run(work)
        return StoredEvent(found[0], event_adapter.validate_json(found[1])) if found else None

    async def calls(self, mission_id: str) -> list[LedgerEntry]:
        """The mission's LLM calls as the ledger recorded them (empty when none were)."""

        def work(s: Session) -> list[dict[str, Any]]:
            query = select(llm_calls).where(llm_calls.c.mission == mission_id)
            return [dict(r) for r in s.execute(query.order_by(llm_calls.c.id)).mappings()]

        entries = []
        for row in await self._run(work):
            row.pop("id", None)
            if row["ts"].tzinfo is None:  # SQLite keeps no offset; the ledger writes UTC
                row["ts"] = row["ts"].replace(tzinfo=UTC)
            mission, task, agent = row.pop("mission"), row.pop("task"), row.pop("agent")
            entries.append(LedgerEntry(mission_id=mission, task_id=task, agent=agent, **row))
        return entries

    async def close(self) -> None:
        """Dispose of the connection pools."""
        await self.store.close()
        self._engine.dispose()
