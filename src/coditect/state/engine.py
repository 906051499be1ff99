"""The SQLAlchemy engine of the state database, set up the same way by every store that shares it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event

from coditect.errors import StoreError

__all__ = ["EngineCalls", "open_engine"]

T = TypeVar("T")

# How long closing waits for calls still running in their threads.
_CLOSE_WAIT_S = 10.0


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (coditect status, the archiver) never wait for the mission writing; a busy
    # timeout instead of an immediate "database is locked" when two writers meet.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def open_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite connections get WAL mode and a 5 s busy timeout.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The URL is not usable (callers turn it into StoreError).
    """
    engine = create_engine(url, echo=echo, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class EngineCalls:
    """Runs an engine's calls in worker threads; closing waits for the ones still running.

    A caller that is cancelled (a mission's timeout) stops waiting, but its thread goes on
    with a connection checked out. Disposing of the pool under it would leave that connection
    open and unowned: it is dropped by the garbage collector later, unclosed. So
    :meth:`close` refuses new calls, waits for the running ones (up to 10 s), then disposes.

    Args:
        engine: The engine the calls use.
        what: Names the store in errors ("state store sqlite:///...").
    """

    def __init__(self, engine: Engine, what: str) -> None:
        self.engine = engine
        self._what = what
        self._idle = threading.Condition()
        self._running = 0
        self._closed = False

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread.

        Raises:
            StoreError: The store is closed (not retryable).
        """

        def work() -> T:
            with self._idle:
                if self._closed:
                    raise StoreError(f"{self._what} is closed", retryable=False)
                self._running += 1
            try:
                return fn()
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

        return await asyncio.to_thread(work)

    def _wait_idle(self) -> None:
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._running == 0, timeout=_CLOSE_WAIT_S)

    async def close(self) -> None:
        """Refuse new calls, wait for the running ones, dispose of the connection pool."""
        await asyncio.to_thread(self._wait_idle)
        self.engine.dispose()
