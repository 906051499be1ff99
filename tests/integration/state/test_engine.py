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
