"""The archiver in embedded mode: the SQLite event log to local Parquet, exactly once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from coditect.archive import (
    ArchiveError,
    Archiver,
    Destination,
    RetryPolicy,
    SqliteSource,
    open_destination,
    read_archive,
    read_events,
)
from coditect.cli.main import app
from coditect.config import Settings
from coditect.domain.events import AgentAct, AgentThink, TaskState
from coditect.domain.tasks import GoalState
from coditect.state.sql import SqlStore

FAST = RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0)
DAY0 = datetime(2026, 5, 1, 23, 59, 0, tzinfo=UTC)


def make_events(n: int, mission_id: str = "m1", start: datetime = DAY0):
    out = []
    for i in range(n):
        ts = start + timedelta(seconds=20 * i)  # crosses midnight: two date partitions
        kind = i % 3
        if kind == 0:
            out.append(
                AgentThink(
                    mission_id=mission_id, task_id=f"t{i % 4}", agent="coder", text=f"n{i}", ts=ts
                )
            )
        elif kind == 1:
            out.append(
                AgentAct(
                    mission_id=mission_id,
                    task_id="t1",
                    agent="coder",
                    action="llm",
                    input_tokens=i,
                    ts=ts,
                )
            )
        else:
            out.append(
                TaskState(mission_id=mission_id, task_id="t1", state=GoalState.RUNNING, ts=ts)
            )
    return out


@pytest.fixture
async def store():
    s = SqlStore(Settings().database_url)
    yield s
    await s.close()


@pytest.fixture
def dest_url(tmp_path: Path) -> str:
    return (tmp_path / "archive").as_uri()


def archiver(dest_url: str, batch_size: int, destination: Destination | None = None) -> Archiver:
    source = SqliteSource(Settings().database_url, dest_key=dest_url)
    return Archiver(
        source, destination or open_destination(dest_url), batch_size=batch_size, retry=FAST
    )


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


async def test_every_event_is_archived_once_and_reads_back_equal(store, dest_url, tmp_path):
    events = make_events(50)
    await store.append_events(events)
    stats = await archiver(dest_url, batch_size=7).run_once()
    assert (stats.events, stats.batches, stats.last_seq) == (50, 8, 50)
    again = await archiver(dest_url, batch_size=7).run_once()
    assert again.events == 0
    assert read_events(dest_url) == events
    assert read_events(dest_url, mission_id="nope") == []
    files = parquet_files(tmp_path / "archive")
    assert len(files) == stats.files
    assert {f.parent.parent.name for f in files} == {"date=2026-05-01", "date=2026-05-02"}
    assert {f.parent.name for f in files} == {
        "type=agent.think",
        "type=agent.act",
        "type=task.state",
    }
    assert not [p for p in (tmp_path / "archive").rglob("*") if p.name.startswith(".")]
    assert pq.read_metadata(files[0]).row_group(0).column(0).compression == "ZSTD"


async def test_only_new_events_are_archived_by_the_next_run(store, dest_url):
    first, second = make_events(10, "m1"), make_events(5, "m2")
    await store.append_events(first)
    await archiver(dest_url, batch_size=100).run_once()
    await store.append_events(second)
    stats = await archiver(dest_url, batch_size=100).run_once()
    assert stats.events == 5
    assert read_events(dest_url) == first + second
    assert read_events(dest_url, mission_id="m2") == second


@dataclass(frozen=True)
class CrashingDestination(Destination):
    """Writes `allowed[0]` files, then every write fails like a process that died."""

    allowed: list[int] | None = None

    def write(self, relative, table):
        assert self.allowed is not None
        if self.allowed[0] <= 0:
            raise OSError("disk gone")
        self.allowed[0] -= 1
        return super().write(relative, table)


@pytest.mark.parametrize("retry_batch_size", [3, 20, 1000])
async def test_a_crash_in_the_middle_of_a_batch_neither_loses_nor_duplicates(
    store, dest_url, retry_batch_size
):
    events = make_events(30)
    await store.append_events(events)
    real = open_destination(dest_url)
    crashing = CrashingDestination(
        url=real.url, filesystem=real.filesystem, root=real.root, local=True, allowed=[8]
    )
    with pytest.raises(ArchiveError):
        await archiver(dest_url, batch_size=12, destination=crashing).run_once()
    source = SqliteSource(Settings().database_url, dest_key=dest_url)
    cursor = await source.cursor()
    assert cursor == 12  # the first batch (6 files) went through; the second did not
    # the restart may even use another batch size: files are named after their first seq
    await archiver(dest_url, batch_size=retry_batch_size).run_once()
    table = read_archive(dest_url)
    assert table.column("seq").to_pylist() == list(range(1, 31))
    assert read_events(dest_url) == events


async def test_an_unwritable_destination_advances_nothing(store, tmp_path):
    await store.append_events(make_events(5))
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the archive directory should be")
    url = blocker.as_uri()
    with pytest.raises(ArchiveError) as info:
        await archiver(url, batch_size=10).run_once()
    assert info.value.retryable
    assert await SqliteSource(Settings().database_url, dest_key=url).cursor() == 0


async def test_duckdb_reads_the_same_events(store, dest_url, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    events = make_events(40)
    await store.append_events(events)
    await archiver(dest_url, batch_size=9).run_once()
    glob = str(tmp_path / "archive" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT event_id, type, date FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY seq"
    ).fetchall()
    assert [r[0] for r in rows] == [e.event_id for e in events]
    assert [r[1] for r in rows] == [e.type for e in events]
    tokens = duckdb.sql(
        f"SELECT sum(input_tokens) FROM read_parquet('{glob}', hive_partitioning = true) WHERE type = 'agent.act'"
    ).fetchall()[0][0]
    assert tokens == sum(e.input_tokens for e in events if isinstance(e, AgentAct))


runner = CliRunner()


def test_cli_archive_run_and_replay(dest_url):
    events = make_events(6, "mission-abc")
    store = SqlStore(Settings().database_url)
    asyncio.run(store.append_events(events))
    asyncio.run(store.close())
    done = runner.invoke(app, ["archive", "run", "--once", "--to", dest_url, "--batch-size", "4"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout.strip().splitlines()[-1])["events"] == 6
    for extra in ([], ["--from", dest_url]):
        shown = runner.invoke(app, ["replay", "mission-abc", *extra], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        assert "mission mission-abc: 6 events" in shown.stdout and "+20.000s" in shown.stdout
        as_json = runner.invoke(app, ["replay", "mission-abc", "--json", *extra])
        assert [json.loads(line)["event_id"] for line in as_json.stdout.splitlines()] == [
            e.event_id for e in events
        ]
    missing = runner.invoke(app, ["replay", "nope"])
    assert missing.exit_code == 2


def test_cli_refuses_bad_arguments(dest_url):
    assert (
        runner.invoke(
            app, ["archive", "run", "--to", dest_url, "--once", "--every", "1h"]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(app, ["archive", "run", "--to", dest_url, "--every", "soon"]).exit_code == 2
    )
    assert runner.invoke(app, ["archive", "run", "--to", "ftp://x/y", "--once"]).exit_code == 1
