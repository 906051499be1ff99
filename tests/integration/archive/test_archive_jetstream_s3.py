"""The archiver against a real NATS JetStream and a real SeaweedFS S3 server: exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nats
import pytest
from _archive_helpers import make_events, publish, s3_url, settings_for, stream_config
from pyarrow import fs as pafs

from coditect.archive import (
    ArchiveError,
    Archiver,
    ArchiveSettings,
    JetStreamSource,
    RetryPolicy,
    SqliteSource,
    archive_dataset,
    open_destination,
    read_archive,
    read_events,
)
from coditect.config import Settings
from coditect.state.sql import SqlStore
from infra.s3 import ACCESS_KEY, REGION, SECRET_KEY, start_weed, weed_binary
from infra.servers import free_port

FAST = RetryPolicy(attempts=3, initial_s=0.05, max_s=0.2)


async def archive_jetstream(
    nats_url, config, url, settings, *, batch_size=25, durable="archive", ack_wait_s=2.0
):
    source = await JetStreamSource.connect(
        nats_url, durable=durable, config=config, ack_wait_s=ack_wait_s, max_ack_pending=batch_size
    )
    try:
        archiver = Archiver(
            source, open_destination(url, settings), batch_size=batch_size, retry=FAST
        )
        return await archiver.run_once(max_wait_s=10)
    finally:
        await source.close()


def assert_exactly_once(url, settings, events):
    table = read_archive(url, settings=settings)
    ids = table.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(events)
    assert read_events(url, settings=settings) == events


async def test_published_events_are_archived_exactly_once(nats_url, s3_server):
    config, url, settings = stream_config(), s3_url(), settings_for(s3_server)
    events = make_events(120)
    await publish(nats_url, config, events)
    stats = await archive_jetstream(nats_url, config, url, settings)
    assert (stats.events, stats.last_seq) == (120, 120)
    assert_exactly_once(url, settings, events)
    # nothing new: nothing written; then only the new events
    assert (await archive_jetstream(nats_url, config, url, settings)).events == 0
    more = make_events(30, seed=8)
    await publish(nats_url, config, more)
    assert (await archive_jetstream(nats_url, config, url, settings)).events == 30
    assert_exactly_once(url, settings, events + more)
    assert read_events(url, mission_id="m1", settings=settings) == [
        e for e in events + more if e.mission_id == "m1"
    ]


async def test_pyarrow_and_duckdb_read_the_same_events(nats_url, s3_server):
    duckdb = pytest.importorskip("duckdb")
    config, url, settings = stream_config(), s3_url(), settings_for(s3_server)
    events = make_events(60)
    await publish(nats_url, config, events)
    await archive_jetstream(nats_url, config, url, settings, batch_size=16)
    dataset = archive_dataset(url, settings)
    assert dataset is not None
    rows = duckdb.sql("SELECT event_id, type, input_tokens FROM dataset ORDER BY seq").fetchall()
    table = read_archive(url, settings=settings)
    assert (
        [r[0] for r in rows] == table.column("event_id").to_pylist() == [e.event_id for e in events]
    )
    assert [r[1] for r in rows] == [e.type for e in events]
    per_day = duckdb.sql(
        "SELECT date, count(*) FROM dataset GROUP BY date ORDER BY date"
    ).fetchall()
    assert [d for d, _ in per_day] == ["2026-06-30", "2026-07-01"] and sum(
        c for _, c in per_day
    ) == 60


@pytest.mark.slow
async def test_s3_unreachable_acknowledges_nothing_then_archives_everything_once(
    nats_url, tmp_path
):
    config, url = stream_config(), s3_url()
    port = free_port(with_bus_port=True)
    settings = ArchiveSettings(
        s3_endpoint=f"http://127.0.0.1:{port}",
        s3_region=REGION,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
    )
    events = make_events(40)
    await publish(nats_url, config, events)
    source = await JetStreamSource.connect(
        nats_url, durable="archive", config=config, ack_wait_s=1.0, max_ack_pending=10
    )
    try:
        with pytest.raises(ArchiveError) as info:
            await Archiver(
                source, open_destination(url, settings), batch_size=10, retry=FAST
            ).run_once()
        assert info.value.retryable
        consumer = await source._psub.consumer_info()
        assert consumer.ack_floor.stream_seq == 0  # nothing acknowledged
    finally:
        await source.close()
    server = start_weed(tmp_path / "weed", weed_binary(), s3_port=port)
    try:
        stats = await archive_jetstream(
            nats_url, config, url, settings, batch_size=10, ack_wait_s=1.0
        )
        assert stats.events == 40
        assert_exactly_once(url, settings, events)
    finally:
        server.stop()


async def ack_floor(nats_url: str, stream: str, durable: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return info.ack_floor.stream_seq if info.ack_floor else 0
    finally:
        await nc.close()


def _files(fs: pafs.FileSystem, root: str) -> list[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except OSError:
        return []
    return [i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")]


@pytest.mark.slow
async def test_archiver_killed_in_the_middle_of_a_batch_restarts_exactly_once(
    nats_url, s3_server, tmp_path
):
    config, url, settings = stream_config(), s3_url(), settings_for(s3_server)
    events = make_events(150)
    await publish(nats_url, config, events)
    env = {**os.environ, **s3_server.env(), "CODITECT_HOME": str(tmp_path / "home")}
    argv = [
        sys.executable, "-m", "coditect", "archive", "run", "--once", "--nats", nats_url, "--to", url,
        "--batch-size", "5", "--ack-wait", "2", "--stream", config.stream, "--subject-prefix", config.subject_prefix,
    ]  # fmt: skip
    dest = open_destination(url, settings)
    log = (tmp_path / "first.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _files(dest.filesystem, dest.root):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the archiver wrote no file in 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    written_before = len(_files(dest.filesystem, dest.root))
    floor = await ack_floor(nats_url, config.stream, "coditect-archive")
    print(f"killed with {written_before} files written and events up to seq {floor} acknowledged")
    assert floor < len(events)  # killed before the end: the restart has work left
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert written_before < len(_files(dest.filesystem, dest.root))
    assert_exactly_once(url, settings, events)


async def test_embedded_event_log_to_s3_exactly_once(s3_server):
    url, settings = s3_url(), settings_for(s3_server)
    events = make_events(80)
    store = SqlStore(Settings().database_url)
    await store.append_events(events)
    await store.close()
    for _ in range(2):
        source = SqliteSource(Settings().database_url, dest_key=url)
        await Archiver(
            source, open_destination(url, settings), batch_size=30, retry=FAST
        ).run_once()
        await source.close()
    assert_exactly_once(url, settings, events)


def test_replay_reads_a_mission_from_jetstream(nats_url):
    import asyncio
    import json

    from typer.testing import CliRunner

    from coditect.cli.main import app

    config = stream_config()
    events = make_events(30)
    asyncio.run(publish(nats_url, config, events))
    argv = [
        "replay",
        "m2",
        "--nats",
        nats_url,
        "--stream",
        config.stream,
        "--subject-prefix",
        config.subject_prefix,
    ]
    shown = CliRunner().invoke(app, [*argv, "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert [json.loads(line)["event_id"] for line in shown.stdout.splitlines()] == [
        e.event_id for e in events if e.mission_id == "m2"
    ]
    table = CliRunner().invoke(app, argv, terminal_width=200)
    assert table.exit_code == 0 and "mission m2: 10 events" in table.stdout
