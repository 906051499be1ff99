"""The SQLAlchemy engine of the state database, set up the same way by every store that shares it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

__all__ = ["open_engine"]


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
