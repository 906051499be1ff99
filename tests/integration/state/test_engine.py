"""Every store on the state database opens it the same way (WAL and a busy timeout on SQLite)."""

from __future__ import annotations

from sqlalchemy import text

from coditect.archive.sources import SqliteSource
from coditect.llm.ledger import SqliteLedger
from coditect.state.sql import SqlStore, sqlite_url


def _pragmas(engine) -> tuple[str, int]:
    with engine.connect() as conn:
        mode = conn.execute(text("PRAGMA journal_mode")).scalar()
        busy = conn.execute(text("PRAGMA busy_timeout")).scalar()
    return mode, busy


def test_the_stores_sharing_state_db_all_use_wal_and_a_busy_timeout(tmp_path):
    url = sqlite_url(tmp_path / "state.db")
    for store in (SqlStore(url), SqliteLedger(url), SqliteSource(url, "file:///x")):
        assert _pragmas(store._engine) == ("wal", 5000), type(store).__name__


async def test_closing_waits_for_a_call_whose_caller_gave_up(tmp_path):
    import asyncio
    import threading

    import pytest

    from coditect.errors import StoreError
    from coditect.state.engine import EngineCalls, open_engine

    engine = open_engine(sqlite_url(tmp_path / "state.db"))
    calls = EngineCalls(engine, "test store")
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        with engine.connect() as conn:
            started.set()
            release.wait(5)
            return int(conn.execute(text("SELECT 1")).scalar_one())

    caller = asyncio.create_task(calls.run(slow))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()  # a mission's timeout: the caller stops waiting, its thread goes on
    closing = asyncio.create_task(calls.close())
    await asyncio.sleep(0.3)
    # Disposing now would orphan the connection the thread holds: close waits for it.
    assert not closing.done()
    release.set()
    await closing
    with pytest.raises(StoreError, match="test store is closed") as refused:
        await calls.run(lambda: 1)
    assert not refused.value.retryable
