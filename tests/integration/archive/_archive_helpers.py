"""Helpers of the archive integration tests: sample events, unique names, S3 settings."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from coditect.archive import ArchiveSettings
from coditect.bus.jetstream import JetStreamBus, JetStreamConfig, PublishPolicy
from coditect.domain.events import AgentAct, AgentLearn, AgentThink, Event, MissionState, TaskState
from coditect.domain.tasks import GoalState

FAST_PUBLISH = PublishPolicy(timeout_s=2.0, attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def stream_config() -> JetStreamConfig:
    name = unique()
    return JetStreamConfig(
        stream=name.upper(), subject_prefix=f"{name}.events", storage="memory", publish=FAST_PUBLISH
    )


def settings_for(s3_server) -> ArchiveSettings:
    return ArchiveSettings(
        s3_endpoint=s3_server.endpoint,
        s3_region=s3_server.region,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
    )


def s3_url() -> str:
    return f"s3://{unique('bkt-')}/archive/v1"


def make_events(n: int, *, missions: int = 3, seed: int = 7) -> list[Event]:
    """Events of every type, several missions, over two UTC days."""
    rng = random.Random(seed)
    start = datetime(2026, 6, 30, 23, 59, tzinfo=UTC)
    out: list[Event] = []
    for i in range(n):
        common = {
            "mission_id": f"m{i % missions}",
            "task_id": f"t{rng.randint(1, 4)}",
            "agent": rng.choice(["analyzer", "coder", "tester"]),
            "ts": start + timedelta(seconds=2 * i),
        }
        kind = rng.randrange(5)
        if kind == 0:
            out.append(AgentThink(text=f"thought {i}", **common))
        elif kind == 1:
            out.append(
                AgentAct(
                    action="llm", input_tokens=i, output_tokens=i // 2, duration_s=0.1, **common
                )
            )
        elif kind == 2:
            out.append(AgentLearn(lesson=f"lesson {i}", **common))
        elif kind == 3:
            out.append(TaskState(state=GoalState.RUNNING, attempt=1, **common))
        else:
            out.append(MissionState(state=GoalState.COMPLETE, **common))
    return out


async def publish(url: str, config: JetStreamConfig, events: list[Event]) -> None:
    bus = await JetStreamBus.connect(url, config=config, max_wait_s=5)
    try:
        for event in events:
            await bus.publish(event)
    finally:
        await bus.close()
