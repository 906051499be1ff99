"""Killing the processes of the distributed mode mid-mission, and judging what follows.

One :class:`FaultRun` is a cluster (task queue, orchestrator, two workers, as real processes on
real NATS, Redis and PostgreSQL; :mod:`infra.cluster`) on which missions are submitted one
after another with ``coditect submit --watch``. During each, one process (a worker, the task
queue or the orchestrator) gets ``kill -9`` at a random point, chosen by a seeded RNG, and is
started again. Each mission is then judged:

* it ended SUCCESS, and the watching ``submit`` followed it to the end (exit 0);
* each task's change is on the mission branch exactly once (``Coditect-Task`` trailers);
* the stored history has no gaps: every agent event a worker published for the mission (on
  the JetStream events stream) is kept, every task has its ``complete`` state and the mission
  its end, and the watcher printed every task and mission state that was stored;
* recovery: for a worker, from the kill to the killed task's next start on a worker (the
  workers' log lines); otherwise to the mission's next task or mission state.

After :meth:`FaultRun.stop`, :meth:`FaultRun.leftovers` lists the processes of the run still
alive and the ``coditect-*`` temporary directories left. tests/reliability/ and
bench/faults.py both drive this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from coditect.api.clients import OrchestratorClient, TaskQueueClient
from coditect.bus.jetstream import JetStreamBus, JetStreamConfig
from coditect.domain.events import Event, MissionState, TaskState
from coditect.domain.mission import MissionReport
from coditect.runtime import open_mission_store
from infra.cluster import Cluster, Proc

__all__ = ["KINDS", "FaultRun", "MissionVerdict", "summary"]

KINDS = ("worker", "taskqueue", "orchestrator")
REQUEST = "Add a function to calculate the nth Fibonacci number"
_MARK = "CODITECT_FAULT_RUN"
_STATE_LINE = re.compile(r"^\d\d:\d\d:\d\d (task\.state|mission\.state) ", re.M)


@dataclass
class MissionVerdict:
    """What one mission with one kill came to.

    Attributes:
        kind: The process killed.
        mission_id: The mission.
        succeeded: It ended SUCCESS and its watcher exited 0.
        duplicates: Task changes applied more than once.
        events_lost: Events missing from the history (or from what the watcher printed).
        recovery_s: Kill to the mission moving again (None: nothing to measure).
        problems: What went wrong, in words.
    """

    kind: str
    mission_id: str = ""
    succeeded: bool = False
    duplicates: int = 0
    events_lost: int = 0
    recovery_s: float | None = None
    problems: list[str] = field(default_factory=list)


class FaultRun:
    """A cluster to kill processes of, mission after mission (see the module docstring).

    Args:
        tmp: This run's directory (logs, home, its own TMPDIR).
        env: The cluster environment (:func:`infra.cluster.cluster_env`).
        repo: The git repository the missions change.
        seed: Seeds the choice of kill points.
    """

    def __init__(self, tmp: Path, env: dict[str, str], repo: Path, *, seed: int = 0) -> None:
        self.tmpdir = tmp / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.mark = uuid.uuid4().hex
        env = {
            **env,
            "TMPDIR": str(self.tmpdir),
            _MARK: self.mark,
            "COLUMNS": "250",  # the watcher's lines unwrapped
            "CODITECT_REUSE": "false",  # each mission does its work: every kill meets a task
        }
        env.pop("CODITECT_ACK_WAIT_S", None)  # the product's lease and heartbeat are measured
        self.cluster = Cluster(tmp, env)
        self.repo = repo
        self.rng = random.Random(seed)
        self.procs: dict[str, Proc] = {}
        self._missions = 0
        self._db = env["CODITECT_DB_URL"]
        self._nats = env["CODITECT_NATS_URL"]
        self._queue = env["CODITECT_QUEUE_NAME"]

    # --- the cluster ------------------------------------------------------------------------
    def start(self) -> None:
        """Task queue, orchestrator and two workers (a task takes at least 1 s)."""
        self.procs["taskqueue"] = self.cluster.start_taskqueue()
        self.procs["orchestrator"] = self.cluster.start_orchestrator()
        for name in ("w1", "w2"):
            self.procs[name] = self._start_worker(name)

    def _start_worker(self, name: str) -> Proc:
        return self.cluster.start_worker(name, CODITECT_TASK_DELAY_S="1")

    def _restart(self, name: str) -> Proc:
        if name == "taskqueue":
            proc = self.cluster.start_taskqueue(self.cluster.tq_port)
        elif name == "orchestrator":
            proc = self.cluster.start_orchestrator(self.cluster.orch_port)
        else:
            proc = self._start_worker(name)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        """Stop every process of the run (SIGTERM)."""
        self.cluster.stop()

    def leftovers(self, wait_s: float = 5.0) -> list[str]:
        """Processes of this run still alive, and ``coditect-*`` temporary directories left."""
        deadline = time.monotonic() + wait_s
        while True:
            alive = [f"process {pid}" for pid in _marked_pids(self.mark)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        dirs = [f"directory {p}" for p in sorted(self.tmpdir.glob("coditect-*"))]
        return alive + dirs

    # --- one mission with one kill ----------------------------------------------------------
    def mission(self, kind: str) -> MissionVerdict:
        """Submit a mission, kill one process of ``kind`` at a random point, judge the result."""
        self._missions += 1
        verdict = MissionVerdict(kind=kind)
        watcher = self.cluster.start(
            f"submit{self._missions}", "submit", REQUEST, "--repo", str(self.repo), "--watch"
        )
        mid = watcher.wait_for(r"mission ([\w-]+): \d+ task", timeout_s=60).group(1)
        verdict.mission_id = mid
        killed_task, t_kill = asyncio.run(self._kill_somewhere(kind, mid))
        try:
            code = watcher.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            watcher.stop(signal.SIGKILL)
            code = -1
        report, history, published = asyncio.run(self._outcome(mid))
        if code != 0:
            verdict.problems.append(f"submit --watch exited {code}: {watcher.text()[-600:]}")
        if report.status.value != "SUCCESS":
            verdict.problems.append(f"mission {report.status.value}: {report.reason}")
        verdict.succeeded = code == 0 and report.status.value == "SUCCESS"
        verdict.duplicates = self._duplicates(mid, report.branch)
        verdict.events_lost = _lost(report, history, published, watcher.text(), verdict.problems)
        if kind == "worker":
            verdict.recovery_s = self._redelivered(mid, killed_task, t_kill)
        else:
            verdict.recovery_s = _recovery(t_kill, history)
        return verdict

    def _redelivered(self, mid: str, task: str, t_kill: float) -> float | None:
        """Kill to the killed task's next start on a worker (the workers' own log lines)."""
        starts = []
        for proc in self.cluster.procs:
            if proc.args[:1] != ["worker"]:
                continue
            for line in proc.text().splitlines():
                if f'"task {task} started (delivery' not in line or mid not in line:
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
                    if at > t_kill:
                        starts.append(at)
        return round(min(starts) - t_kill, 3) if starts else None

    async def _kill_somewhere(self, kind: str, mid: str) -> tuple[str, float]:
        """Wait for a random task to run, a random while longer, then kill; (task, time)."""
        target = self.rng.choice(["t1", "t2", "t3", "t4"])
        delay_s = self.rng.uniform(0.0, 0.8)
        running: dict[str, str] = {}
        async with TaskQueueClient(self.cluster.client_options(self.cluster.tq_port)) as tq:
            async with asyncio.timeout(90):
                while True:
                    states = {v.record.task_id: v.record for v in await tq.get_tasks(mid)}
                    rec = states.get(target)
                    if rec is not None and rec.state.value != "pending":
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(delay_s)
            views = await tq.get_tasks(mid)
            running = {
                v.record.task_id: v.record.worker for v in views if v.record.state == "running"
            }
        task, worker = next(iter(running.items()), ("", ""))
        name = kind
        if kind == "worker":
            name = worker if worker in self.procs else self.rng.choice(["w1", "w2"])
        self.procs[name].stop(signal.SIGKILL)
        t_kill = time.time()
        self._restart(name)
        return task, t_kill

    async def _outcome(self, mid: str) -> tuple[MissionReport, list[Event], list[Event]]:
        async with OrchestratorClient(self.cluster.client_options(self.cluster.orch_port)) as c:
            report = await c.get(mid)
        store = await asyncio.to_thread(open_mission_store, self._db)
        bus = await JetStreamBus.connect(
            self._nats,
            config=JetStreamConfig(
                stream=f"{self._queue.upper()}_EVENTS", subject_prefix=f"{self._queue}.events"
            ),
        )
        try:
            published = [e async for e in bus.replay("agent.>") if e.mission_id == mid]
            # An event published just before the end may still be on its way to the history.
            deadline = time.monotonic() + 10
            while True:
                history = await store.list_events(mid)
                kept = {e.event_id for e in history}
                if all(e.event_id in kept for e in published) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        finally:
            await bus.close()
            await store.close()
        return report, history, published

    def _duplicates(self, mid: str, branch: str) -> int:
        out = subprocess.run(
            ["git", "log", "--format=%B", f"main..{branch}"],
            cwd=self.repo, capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        counts: dict[str, int] = {}
        for tid in re.findall(rf"Coditect-Task: {mid}/(\S+)", out):
            counts[tid] = counts.get(tid, 0) + 1
        return sum(n - 1 for n in counts.values())


def _lost(
    report: MissionReport,
    history: list[Event],
    published: list[Event],
    watched: str,
    problems: list[str],
) -> int:
    """Events missing: agent events not kept, task or mission ends not stored, not watched."""
    kept = {e.event_id for e in history}
    lost = [e for e in published if e.event_id not in kept]
    if lost:
        problems.append(f"{len(lost)} agent event(s) not kept: {[e.type for e in lost]}")
    n = len(lost)
    states = [e for e in history if isinstance(e, TaskState | MissionState)]
    done = {e.task_id for e in states if e.type == "task.state" and e.state == "complete"}
    for task in report.tasks:
        if task.id not in done:
            problems.append(f"no stored complete state of {task.id}")
            n += 1
    ended = any(e.type == "mission.state" and e.state == "complete" for e in states)
    if report.status.value == "SUCCESS" and not ended:
        problems.append("no stored end of the mission")
        n += 1
    printed = len(_STATE_LINE.findall(watched))
    if printed < len(states):
        problems.append(f"the watcher printed {printed} of {len(states)} stored states")
        n += len(states) - printed
    return n


def _recovery(t_kill: float, history: list[Event]) -> float | None:
    """Kill to the mission's next task or mission state (the killed service is back)."""
    after = [
        e.ts.timestamp()
        for e in history
        if e.type in ("task.state", "mission.state") and e.ts.timestamp() > t_kill
    ]
    return round(min(after) - t_kill, 3) if after else None


def _marked_pids(mark: str) -> list[int]:
    """Processes whose environment carries this run's mark (our own process excepted)."""
    needle = f"{_MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat[stat.rfind(")") + 2] != "Z":  # a zombie is gone, only not yet reaped
                    found.append(int(entry.name))
    return found


def summary(verdicts: list[MissionVerdict], leftovers: list[str]) -> dict[str, object]:
    """The figures of bench/faults.py: kills, successes, duplicates, lost events, recovery."""
    worker = [v.recovery_s for v in verdicts if v.kind == "worker" and v.recovery_s is not None]
    by_kind = {}
    for kind in KINDS:
        times = [v.recovery_s for v in verdicts if v.kind == kind and v.recovery_s is not None]
        by_kind[kind] = round(statistics.median(times), 3) if times else None
    return {
        "kills": len(verdicts),
        "missions_succeeded": sum(v.succeeded for v in verdicts),
        "duplicates": sum(v.duplicates for v in verdicts),
        "events_lost": sum(v.events_lost for v in verdicts),
        "leftovers": len(leftovers),
        "median_recovery_s": round(statistics.median(worker), 3) if worker else None,
        "median_recovery_s_by_kind": by_kind,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
