"""Schema migrations of the state database, on SQLite and on a real PostgreSQL.

Every test gets a database of its own (a file, or a fresh PostgreSQL database made on the
``postgres_url`` server), because the tests look at what a migration does to an empty one.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    text,
)

from coditect.archive.sources import SqliteSource
from coditect.domain import MissionOutcome, MissionReport
from coditect.errors import StoreError
from coditect.llm.ledger import SqliteLedger, llm_calls
from coditect.state.migrate import (
    BASELINE_COLUMNS,
    alembic_config,
    ensure_schema,
    head_revision,
    model_metadata,
    schema_status,
    upgrade_schema,
)
from coditect.state.models import Base
from coditect.state.sql import SqlStore

FUTURE = "9999_from_a_newer_coditect"

# A second process opening the database: waits for the start file so both begin together.
OPENER = """
import pathlib, sys, time
from sqlalchemy import create_engine
from coditect.state.migrate import upgrade_schema
go = pathlib.Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
result = upgrade_schema(create_engine(sys.argv[1]))
print("migrated" if result.migrated else "skipped", result.after.current)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_url").replace(
        "postgresql+psycopg://", "postgresql://"
    )
    name = "coditect_mig_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + "/" + name
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url):
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


def schema_diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, model_metadata())


def _baseline_llm_calls(metadata: MetaData) -> Table:
    """The ledger table as create_all made it before migrations (later columns left out)."""
    columns = [
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, index=c.index)
        for c in llm_calls.columns
        if c.name in BASELINE_COLUMNS["llm_calls"]
    ]
    return Table("llm_calls", metadata, *columns)


def make_legacy_database(engine) -> None:
    """What CODITECT before migrations left: create_all of each store's tables, with some data."""
    legacy = MetaData()
    for table in Base.metadata.tables.values():
        if table.name == "checkpoints":  # added by v0005
            continue
        if table.name == "missions":  # as it was before v0003 added the owner column
            Table("missions", legacy, *(c._copy() for c in table.columns if c.name != "owner"))
            continue
        table.to_metadata(legacy)
    _baseline_llm_calls(legacy)
    Table(  # archive_cursors as it was declared then (INTEGER seq)
        "archive_cursors",
        legacy,
        Column("dest", String(512), primary_key=True),
        Column("seq", Integer, nullable=False),
    )
    legacy.create_all(engine)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    report = MissionReport(
        mission_id="m-legacy",
        request="old",
        repo="/r",
        status=MissionOutcome.SUCCESS,
        started_at=ts,
    )
    with engine.begin() as conn:
        conn.execute(
            legacy.tables["missions"].insert(),
            {
                "mission_id": "m-legacy",
                "status": "success",
                "request": "old",
                "repo": "/r",
                "started_at": ts,
                "wall_s": 1.0,
                "report_json": report.model_dump_json(),
            },
        )
        conn.execute(legacy.tables["archive_cursors"].insert(), {"dest": "s3://b/p", "seq": 42})


def column_type(engine, table: str, column: str) -> str:
    cols = {c["name"]: c["type"] for c in inspect(engine).get_columns(table)}
    return str(cols[column]).upper()


def test_new_database_is_created_at_head_and_matches_the_models(engine):
    assert schema_status(engine).state == "empty"
    status = ensure_schema(engine)
    assert status.current == head_revision() and status.state == "current"
    assert set(BASELINE_COLUMNS) <= set(inspect(engine).get_table_names())
    assert schema_diff(engine) == []
    # A second open finds it current and changes nothing.
    assert upgrade_schema(engine).migrated is False


async def test_legacy_create_all_database_is_adopted_upgraded_and_keeps_data(engine, db_url):
    make_legacy_database(engine)
    status = schema_status(engine)
    assert status.state == "legacy" and status.current is None
    assert set(status.legacy_tables) == set(BASELINE_COLUMNS)
    assert column_type(engine, "archive_cursors", "seq") == "INTEGER"

    store = SqlStore(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT request FROM missions")).scalar_one() == "old"
        cursor = conn.execute(text("SELECT seq FROM archive_cursors")).scalar_one()
    assert cursor == 42
    assert schema_status(engine).current == head_revision()
    assert column_type(engine, "archive_cursors", "seq") == "BIGINT"
    assert schema_diff(engine) == []
    assert (await store.get_report("m-leg")).request == "old"
    await store.close()


def test_partial_legacy_database_gets_the_missing_tables(engine):
    _baseline_llm_calls(MetaData()).create(engine)  # an old ledger opened on a new file
    assert schema_status(engine).legacy_tables == ("llm_calls",)
    ensure_schema(engine)
    assert schema_diff(engine) == []


def test_foreign_table_with_a_coditect_name_is_refused(engine):
    Table("missions", MetaData(), Column("id", Integer, primary_key=True)).create(engine)
    with pytest.raises(StoreError, match="'missions'.*not made by CODITECT") as info:
        ensure_schema(engine)
    assert info.value.retryable is False
    assert "alembic_version" not in inspect(engine).get_table_names()


def test_database_from_a_newer_coditect_is_a_clear_error(engine, db_url):
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    assert schema_status(engine).state == "newer"
    with pytest.raises(StoreError, match="newer than this CODITECT knows") as info:
        SqlStore(db_url)
    assert "upgrade CODITECT" in info.value.hint
    assert info.value.retryable is False
    with pytest.raises(StoreError, match=FUTURE):
        upgrade_schema(engine)


def test_outdated_database_is_upgraded_step_by_step(engine):
    upgrade_schema(engine, "0001")
    assert schema_status(engine).state == "outdated"
    assert column_type(engine, "archive_cursors", "seq") == "INTEGER"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO archive_cursors (dest, seq) VALUES ('d', 7)"))
    result = upgrade_schema(engine)
    assert (result.before.current, result.after.current) == ("0001", head_revision())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM archive_cursors")).scalar_one() == 7
    assert schema_diff(engine) == []


def test_downgrade_scripts_undo_every_revision(engine):
    ensure_schema(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    ensure_schema(engine)
    assert schema_diff(engine) == []


async def test_auto_migrate_off_refuses_an_old_schema(engine, db_url, monkeypatch):
    monkeypatch.setenv("CODITECT_DB_AUTO_MIGRATE", "false")
    with pytest.raises(StoreError, match="automatic migration is off") as info:
        SqlStore(db_url)
    assert "coditect db upgrade" in info.value.hint
    assert schema_status(engine).state == "empty"  # nothing was created
    upgrade_schema(engine)  # the operator's explicit step
    await SqlStore(db_url).close()


def test_concurrent_openers_migrate_once(db_url):
    """Two openers at once (separate engines, so separate sessions): one migrates, both work."""
    engines = [create_engine(db_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def open_one(eng) -> None:
        try:
            barrier.wait()
            results.append(upgrade_schema(eng))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for eng in engines:
        eng.dispose()
    assert errors == []
    assert sorted(r.migrated for r in results) == [False, True]
    assert {r.after.current for r in results} == {head_revision()}


async def test_ledger_and_archive_source_open_through_the_migrations(db_url, engine):
    await SqliteLedger(db_url).close()
    assert schema_status(engine).state == "current"
    source = SqliteSource(db_url, dest_key="file:///x")
    assert await source.cursor() == 0
    await source.close()
    assert schema_diff(engine) == []


def test_concurrent_processes_migrate_once(db_url, tmp_path):
    """Two processes at once: the database lock (pg_advisory_lock / BEGIN IMMEDIATE) lets one in."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, db_url, str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(o[0] for o in outputs) == ["migrated", "skipped"]
    assert {o[1] for o in outputs} == {head_revision()}
