"""Web view benchmark: the missions list with 1,000 missions, and a 500-event live stream.

Usage: python bench/ui.py [--missions N] [--events N] [--repeat N]

Stores N missions (realistic reports: five tasks, a 3 kB diff) in a fresh SQLite state database,
then serves `coditect ui`'s application in-process (httpx over ASGI: no socket, so the figures
are server time) and prints one JSON object:

- list_all_ms_p50 / _max: GET /?per_page=N, one page holding all N missions (the target: < 300 ms),
  and list_all_cpu_ms_p50, the CPU time it took (wall time includes waiting for a busy CPU);
- list_page_ms_p50: GET / (the default 50-row page), and filtered_ms_p50 (status + words);
- mission_page_ms_p50: one mission's page (graph, tasks, diff, costs, timeline of its events);
- stream_*: a mission whose events are appended in batches while /events streams them:
  events sent, received, duplicates, missing (must be 0) and seconds until the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from coditect.bus.memory import MemoryBus
from coditect.config import Settings
from coditect.domain.events import AgentAct, MissionState
from coditect.domain.mission import MissionOutcome, MissionReport, TaskRun, TestTotals
from coditect.domain.tasks import GoalState, Intent
from coditect.ui.app import UiState, create_app
from coditect.ui.launcher import Launcher
from coditect.ui.security import Guard
from coditect.ui.source import MissionSource

DIFF = "".join(
    f"--- a/pkg/mod{i}.py\n+++ b/pkg/mod{i}.py\n@@ -1,3 +1,5 @@\n def f{i}(x):\n-    return x\n"
    f"+    # keep it simple\n+    return x + {i}\n" * 3
    for i in range(12)
)


def report(i: int, start: datetime) -> MissionReport:
    tasks = [
        TaskRun(id="t1", intent=Intent.ANALYZE, agent="analyzer", status=GoalState.COMPLETE),
        TaskRun(
            id="t2",
            intent=Intent.WRITE_CODE,
            agent="coder",
            depends_on=["t1"],
            status=GoalState.COMPLETE,
            input_tokens=900,
            output_tokens=200,
        ),
        TaskRun(
            id="t3",
            intent=Intent.WRITE_TESTS,
            agent="coder",
            depends_on=["t2"],
            status=GoalState.COMPLETE,
            input_tokens=1100,
            output_tokens=260,
        ),
        TaskRun(
            id="t4",
            intent=Intent.RUN_TESTS,
            agent="tester",
            depends_on=["t3"],
            status=GoalState.COMPLETE,
        ),
    ]
    status = [MissionOutcome.SUCCESS, MissionOutcome.FAILED, MissionOutcome.REJECTED][i % 3]
    return MissionReport(
        mission_id=f"m-bench-{i:05d}",
        status=status,
        request=f"Add feature number {i} to the parser",
        repo=f"/srv/projects/p{i % 17}",
        branch=f"coditect/m-bench-{i:05d}",
        tasks=tasks,
        changed_files=["pkg/mod1.py"],
        diff=DIFF,
        tests=TestTotals(passed=12),
        started_at=start + timedelta(seconds=i),
        wall_s=30.0 + i % 50,
    )


async def timed(
    client: httpx.AsyncClient, url: str, repeat: int, cpu: list[float] | None = None
) -> list[float]:
    """Wall milliseconds of ``repeat`` GETs; ``cpu`` collects this process's CPU milliseconds."""
    times = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        response = await client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - c0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


async def stream(
    client: httpx.AsyncClient, source: MissionSource, n_events: int
) -> dict[str, object]:
    mid = "m-bench-stream"
    await source.store.save_report(
        MissionReport(
            mission_id=mid, request="stream", repo="/srv/x", status=MissionOutcome.RUNNING
        )
    )
    events = [
        AgentAct(mission_id=mid, task_id=f"t{i % 9}", agent="coder", action="step", detail=str(i))
        for i in range(n_events)
    ]

    async def write() -> None:
        for i in range(0, n_events, 20):
            await source.store.append_events(events[i : i + 20])
            await asyncio.sleep(0.005)
        await source.store.append_events([MissionState(mission_id=mid, state=GoalState.COMPLETE)])

    got: list[str] = []
    t0 = time.perf_counter()
    writer = asyncio.create_task(write())
    async with client.stream("GET", f"/missions/{mid}/events?after=0") as response:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "coditect":
                body = json.loads(line[6:])
                if body["type"] == "agent.act":
                    got.append(body["detail"])
            elif kind == "end":
                break
    await writer
    sent = [str(i) for i in range(n_events)]
    return {
        "stream_events_sent": n_events,
        "stream_events_received": len(got),
        "stream_duplicates": len(got) - len(set(got)),
        "stream_missing": len(set(sent) - set(got)),
        "stream_in_order": got == sent,
        "stream_s": round(time.perf_counter() - t0, 3),
    }


async def run(n_missions: int, n_events: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        source = MissionSource(settings.database_url)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        for i in range(n_missions):
            await source.store.save_report(report(i, start))
        seed_s = time.perf_counter() - t0
        bus = MemoryBus()
        state = UiState(
            source=source,
            guard=Guard("127.0.0.1"),
            bus=bus,
            launcher=Launcher(settings, bus),
            poll_s=0.05,
        )
        transport = httpx.ASGITransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8420") as c:
            await timed(c, "/", 2)  # warm-up: templates compiled, connections opened
            all_cpu: list[float] = []
            all_ms = await timed(c, f"/?per_page={n_missions}", repeat, all_cpu)
            page_ms = await timed(c, "/", repeat)
            filtered_ms = await timed(c, "/?status=FAILED&q=feature", repeat)
            mission_ms = await timed(c, "/missions/m-bench-00007", repeat)
            streamed = await stream(c, source, n_events)
        await source.close()
    return {
        "missions": n_missions,
        "seed_s": round(seed_s, 3),
        "list_all_ms_p50": round(statistics.median(all_ms), 1),
        "list_all_ms_max": round(max(all_ms), 1),
        # CPU time of this process (database thread included): what the page costs on a
        # machine whose cores other jobs are not also using
        "list_all_cpu_ms_p50": round(statistics.median(all_cpu), 1),
        "list_page_ms_p50": round(statistics.median(page_ms), 1),
        "filtered_ms_p50": round(statistics.median(filtered_ms), 1),
        "mission_page_ms_p50": round(statistics.median(mission_ms), 1),
        "target_ms": 300,
        **streamed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.missions, args.events, args.repeat))))


if __name__ == "__main__":
    main()
