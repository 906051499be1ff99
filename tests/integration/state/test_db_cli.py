"""``coditect db current|upgrade`` on the embedded SQLite database and on PostgreSQL."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from coditect.cli.main import app
from coditect.config import Settings
from coditect.state.migrate import head_revision, schema_status, upgrade_schema

runner = CliRunner()


def test_current_and_upgrade_on_the_embedded_database():
    head = head_revision()
    res = runner.invoke(app, ["db", "current", "--check"])
    assert res.exit_code == 1, res.output
    assert "revision (none)" in res.output and "empty" in res.output

    res = runner.invoke(app, ["db", "upgrade"])
    assert res.exit_code == 0, res.output
    assert f"migrated from (none) to {head}" in res.output

    res = runner.invoke(app, ["db", "upgrade"])
    assert res.exit_code == 0 and f"already at {head}" in res.output

    res = runner.invoke(app, ["db", "current", "--json", "--check"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["current"] == head and info["state"] == "current"
    assert info["url"] == Settings().database_url


def test_upgrade_refuses_a_database_from_a_newer_coditect(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
    engine.dispose()
    res = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert res.exit_code == 1
    assert "newer than this CODITECT knows" in res.output
    assert "upgrade CODITECT" in res.output
    res = runner.invoke(app, ["db", "current", "--url", url])
    assert res.exit_code == 0 and "newer" in res.output


def test_bad_url_is_a_clear_error():
    res = runner.invoke(app, ["db", "current", "--url", "nosuchdb://x"])
    assert res.exit_code == 1
    assert "cannot use the database URL" in res.output
    assert "sqlite:///PATH" in res.output


def test_upgrade_postgres_from_the_environment(postgres_url, monkeypatch):
    import psycopg

    server = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    name = "coditect_cli_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    plain = server.rsplit("/", 1)[0] + "/" + name  # postgresql:// as an operator writes it
    try:
        monkeypatch.setenv("CODITECT_DB_URL", plain)
        res = runner.invoke(app, ["db", "upgrade"])
        assert res.exit_code == 0, res.output
        assert f"to {head_revision()}" in res.output
        engine = create_engine(plain.replace("postgresql://", "postgresql+psycopg://", 1))
        assert schema_status(engine).state == "current"
        engine.dispose()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
