"""The SQL state store (SQLite embedded; the same code serves PostgreSQL through SQLAlchemy)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from coditect.domain.actions import FileRecord
from coditect.domain.checkpoint import MissionCheckpoint
from coditect.domain.events import Event, event_adapter
from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.errors import InputError, StoreError
from coditect.leftovers import ProcessIdentity
from coditect.state.base import CheckpointStore, FileIndexStore, MissionStore
from coditect.state.engine import EngineCalls, open_engine
from coditect.state.migrate import ensure_schema
from coditect.state.models import CheckpointRow, EventRow, FileIndexRow, MissionRow

__all__ = ["SqlStore", "sqlite_url"]

T = TypeVar("T")


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{path}"


class SqlStore(MissionStore, CheckpointStore, FileIndexStore):
    """Mission reports, event logs, checkpoints and file indexes in a SQL database.

    Calls run in a worker thread so the event loop is never blocked by disk I/O. Opening it
    brings the schema to the newest migration (:func:`coditect.state.migrate.ensure_schema`).

    Args:
        url: SQLAlchemy URL of the state database.
        echo: Log every SQL statement.
        auto_migrate: Upgrade an older schema on open; None reads ``CODITECT_DB_AUTO_MIGRATE``.

    Raises:
        StoreError: The database cannot be opened, or its schema cannot be used (see
            :func:`~coditect.state.migrate.ensure_schema`).
    """

    def __init__(self, url: str, *, echo: bool = False, auto_migrate: bool | None = None) -> None:
        self.url = url
        try:
            self._engine: Engine = open_engine(url, echo=echo)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open state store {url}: {exc}") from exc
        try:
            ensure_schema(self._engine, auto_migrate=auto_migrate)
        except StoreError:
            self._engine.dispose()
            raise
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        # Appends of this process commit one at a time, so their positions (``seq``) become
        # visible in increasing order: a reader going on from the last position it saw
        # (events_after) cannot skip an event that commits later with a smaller one.
        self._append_lock = threading.Lock()
        self._calls = EngineCalls(self._engine, f"state store {url}")

    async def _run(self, fn: Callable[[Session], T], *, lock: threading.Lock | None = None) -> T:
        def work() -> T:
            try:
                with lock or contextlib.nullcontext(), self._sessions.begin() as session:
                    return fn(session)
            except SQLAlchemyError as exc:
                raise StoreError(f"state store {self.url} failed: {exc}") from exc

        return await self._calls.run(work)

    async def save_report(self, report: MissionReport) -> None:
        """Insert or replace a mission report."""
        row = MissionRow(
            mission_id=report.mission_id,
            status=report.status.value,
            request=report.request,
            repo=report.repo,
            started_at=report.started_at,
            wall_s=report.wall_s,
            report_json=report.model_dump_json(),
            # Whoever saves a RUNNING report is running the mission (see owners()).
            owner=(
                ProcessIdentity.current().to_json()
                if report.status is MissionOutcome.RUNNING
                else None
            ),
        )
        await self._run(lambda s: s.merge(row))

    async def owners(self, mission_ids: Sequence[str]) -> dict[str, ProcessIdentity]:
        """The recorded owner process of each of ``mission_ids`` that is RUNNING and has one."""
        ids = list(mission_ids)
        rows = await self._run(
            lambda s: list(
                s.execute(
                    select(MissionRow.mission_id, MissionRow.owner).where(
                        MissionRow.mission_id.in_(ids), MissionRow.owner.is_not(None)
                    )
                )
            )
        )
        found: dict[str, ProcessIdentity] = {}
        for mission_id, raw in rows:
            owner = ProcessIdentity.from_json(raw or "")
            if owner is not None:
                found[mission_id] = owner
        return found

    async def get_report(self, mission_id: str) -> MissionReport | None:
        """One report by id or unique id prefix."""

        def work(s: Session) -> str | None:
            exact = s.get(MissionRow, mission_id)
            if exact is not None:
                return exact.report_json
            rows = s.scalars(
                select(MissionRow).where(MissionRow.mission_id.startswith(mission_id)).limit(2)
            ).all()
            if len(rows) > 1:
                raise InputError(
                    f"mission id prefix {mission_id!r} is ambiguous",
                    hint="give more characters of the id (see `coditect status`)",
                )
            return rows[0].report_json if rows else None

        raw = await self._run(work)
        return MissionReport.model_validate_json(raw) if raw is not None else None

    async def list_reports(self, limit: int = 50) -> list[MissionReport]:
        """Most recent first."""
        rows = await self._run(
            lambda s: list(
                s.scalars(
                    select(MissionRow.report_json)
                    .order_by(MissionRow.started_at.desc())
                    .limit(limit)
                )
            )
        )
        return [MissionReport.model_validate_json(r) for r in rows]

    async def append_events(self, events: Sequence[Event]) -> None:
        """Append events (an event id already stored is ignored)."""
        if not events:
            return
        rows = [
            EventRow(
                event_id=e.event_id,
                mission_id=e.mission_id,
                type=e.type,
                ts=e.ts,
                body=e.model_dump_json(),
            )
            for e in events
        ]

        def work(s: Session) -> None:
            ids = [r.event_id for r in rows]
            known = set(s.scalars(select(EventRow.event_id).where(EventRow.event_id.in_(ids))))
            s.add_all(r for r in rows if r.event_id not in known)

        await self._run(work, lock=self._append_lock)

    async def list_events(self, mission_id: str) -> list[Event]:
        """A mission's events in append order."""
        bodies = await self._run(
            lambda s: list(
                s.scalars(
                    select(EventRow.body)
                    .where(EventRow.mission_id == mission_id)
                    .order_by(EventRow.seq)
                )
            )
        )
        return [event_adapter.validate_json(b) for b in bodies]

    async def events_after(self, mission_id: str, after_seq: int = 0) -> list[tuple[int, Event]]:
        """A mission's events after position ``after_seq``, with their positions, in order."""
        rows = await self._run(
            lambda s: list(
                s.execute(
                    select(EventRow.seq, EventRow.body)
                    .where(EventRow.mission_id == mission_id, EventRow.seq > after_seq)
                    .order_by(EventRow.seq)
                )
            )
        )
        return [(int(seq), event_adapter.validate_json(body)) for seq, body in rows]

    async def save_checkpoint(self, mission_id: str, checkpoint: MissionCheckpoint) -> None:
        """Insert or replace the mission's checkpoint."""
        row = CheckpointRow(
            mission_id=mission_id, saved_at=datetime.now(UTC), body=checkpoint.model_dump_json()
        )
        await self._run(lambda s: s.merge(row))

    async def get_checkpoint(self, mission_id: str) -> MissionCheckpoint | None:
        """The mission's last checkpoint, or None."""

        def work(s: Session) -> str | None:
            row = s.get(CheckpointRow, mission_id)
            return row.body if row is not None else None

        raw = await self._run(work)
        return MissionCheckpoint.model_validate_json(raw) if raw is not None else None

    async def delete_checkpoint(self, mission_id: str) -> None:
        """Forget the mission's checkpoint (nothing happens when there is none)."""
        await self._run(
            lambda s: s.execute(delete(CheckpointRow).where(CheckpointRow.mission_id == mission_id))
        )

    async def load_file_index(self, root_key: str) -> list[FileRecord]:
        """Saved file records of one project."""
        rows = await self._run(
            lambda s: list(s.scalars(select(FileIndexRow).where(FileIndexRow.root_key == root_key)))
        )
        return [
            FileRecord(path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256) for r in rows
        ]

    async def save_file_index(self, root_key: str, records: Iterable[FileRecord]) -> None:
        """Replace the saved file records of one project."""
        rows = [
            FileIndexRow(
                root_key=root_key, path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256
            )
            for r in records
        ]

        def work(s: Session) -> None:
            s.execute(delete(FileIndexRow).where(FileIndexRow.root_key == root_key))
            s.add_all(rows)

        await self._run(work)

    async def close(self) -> None:
        """Wait for the calls still running, then dispose of the connection pool."""
        await self._calls.close()
