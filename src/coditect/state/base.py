"""State store interfaces: mission reports and events, and the world model's file index."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from coditect.domain.actions import FileRecord
from coditect.domain.events import Event
from coditect.domain.mission import MissionReport

__all__ = ["FileIndexStore", "MissionStore"]


class MissionStore(abc.ABC):
    """Keeps mission reports and their event logs, so they outlive the process that ran them."""

    @abc.abstractmethod
    async def save_report(self, report: MissionReport) -> None:
        """Insert or replace the report of ``report.mission_id``."""

    @abc.abstractmethod
    async def get_report(self, mission_id: str) -> MissionReport | None:
        """The report of one mission, or None. A unique prefix of the id is accepted."""

    @abc.abstractmethod
    async def list_reports(self, limit: int = 50) -> list[MissionReport]:
        """Most recent missions first."""

    @abc.abstractmethod
    async def append_events(self, events: Sequence[Event]) -> None:
        """Append events to the mission event log."""

    @abc.abstractmethod
    async def list_events(self, mission_id: str) -> list[Event]:
        """A mission's events in the order they were appended."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class FileIndexStore(abc.ABC):
    """Persists the world model's file index between runs (so a rescan is incremental)."""

    @abc.abstractmethod
    async def load_file_index(self, root_key: str) -> list[FileRecord]:
        """The saved records for the project identified by ``root_key``."""

    @abc.abstractmethod
    async def save_file_index(self, root_key: str, records: Iterable[FileRecord]) -> None:
        """Replace the saved records for ``root_key``."""
