"""Where reusable work is kept: a small key/value interface with embedded and Redis backends.

Keys are namespaced strings (``task:<sha256>``, ``plan:<sha256>``); values are JSON text. The
SQLite backend (the default, a file in ``CODITECT_HOME``) serves one machine; the Redis backend
lets every worker of a distributed deployment share what any of them learned.
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import threading
from pathlib import Path

from coditect.errors import StoreError

__all__ = ["MemoryReuseStore", "ReuseStore", "SqliteReuseStore"]


class ReuseStore(abc.ABC):
    """A key/value store of JSON text for work reuse."""

    @abc.abstractmethod
    async def get(self, key: str) -> str | None:
        """The value under ``key``, or None."""

    @abc.abstractmethod
    async def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any older value)."""

    @abc.abstractmethod
    async def items(self, prefix: str) -> list[tuple[str, str]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, sorted by key."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryReuseStore(ReuseStore):
    """Values in a dict (one process; tests)."""

    def __init__(self) -> None:
        self._items: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        """The value, or None."""
        return self._items.get(key)

    async def put(self, key: str, value: str) -> None:
        """Store a value."""
        self._items[key] = value

    async def items(self, prefix: str) -> list[tuple[str, str]]:
        """Matching items, sorted by key."""
        return sorted((k, v) for k, v in self._items.items() if k.startswith(prefix))


class SqliteReuseStore(ReuseStore):
    """Values in the ``reuse`` table of a SQLite file; calls run in a worker thread.

    Args:
        path: The database file (created with its directory if missing).

    Raises:
        StoreError: The database cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            with self._db:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS reuse (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the reuse store {path}: {exc}") from exc

    def _exec(self, sql: str, args: tuple[str, ...]) -> list[tuple[str, str]]:
        with self._lock:
            try:
                with self._db:
                    return list(self._db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"reuse store {self.path} failed: {exc}") from exc

    async def get(self, key: str) -> str | None:
        """The value, or None."""
        rows = await asyncio.to_thread(self._exec, "SELECT value FROM reuse WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def put(self, key: str, value: str) -> None:
        """Insert or replace a value."""
        await asyncio.to_thread(
            self._exec, "INSERT OR REPLACE INTO reuse (key, value) VALUES (?, ?)", (key, value)
        )

    async def items(self, prefix: str) -> list[tuple[str, str]]:
        """Matching items, sorted by key."""
        upper = prefix + "\U0010ffff"
        return await asyncio.to_thread(
            self._exec,
            "SELECT key, value FROM reuse WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, upper),
        )

    async def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
