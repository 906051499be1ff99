"""A real mission's events (scripted model) archived, then replayed from the log and the archive."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from coditect.cli.main import app

runner = CliRunner()


def test_a_mission_is_archived_and_replayed_the_same_from_log_and_archive(
    calculator_repo, tmp_path
):
    done = runner.invoke(
        app,
        ["run", "Add a function to calculate the nth Fibonacci number", "--repo", str(calculator_repo),
         "--llm", "scripted:fibonacci", "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    mission_id = json.loads(done.stdout)["mission_id"]
    url = (tmp_path / "archive").as_uri()
    archived = runner.invoke(app, ["archive", "run", "--once", "--to", url], catch_exceptions=False)
    assert archived.exit_code == 0, archived.output
    assert json.loads(archived.stdout.strip().splitlines()[-1])["events"] > 0

    from_log = runner.invoke(app, ["replay", mission_id, "--json"], catch_exceptions=False)
    from_archive = runner.invoke(
        app, ["replay", mission_id, "--json", "--from", url], catch_exceptions=False
    )
    assert from_log.exit_code == from_archive.exit_code == 0
    log_events = [json.loads(line) for line in from_log.stdout.splitlines()]
    assert (
        log_events and [json.loads(line) for line in from_archive.stdout.splitlines()] == log_events
    )
    assert {e["type"] for e in log_events} >= {"task.state", "mission.state"}

    table = runner.invoke(app, ["replay", mission_id], terminal_width=200)
    assert table.exit_code == 0 and "+offset" in table.stdout and "mission.state" in table.stdout
    files = sorted((tmp_path / "archive").rglob("*.parquet"))
    assert files and all(pq.read_schema(f).field("ts").type.tz == "UTC" for f in files)
