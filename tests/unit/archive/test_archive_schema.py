"""The Parquet schema: every event type round-trips, typed columns are filled."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from coditect.archive.schema import SCHEMA, partition_of, records_to_table, table_to_events
from coditect.domain.events import AgentAct, AgentLearn, AgentThink, MissionState, TaskState
from coditect.domain.tasks import GoalState

TS = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def sample_events():
    return [
        AgentThink(mission_id="m1", task_id="t1", agent="coder", text="plan", ts=TS),
        AgentAct(
            mission_id="m1",
            task_id="t1",
            agent="coder",
            action="llm.call",
            detail="d",
            ok=False,
            input_tokens=120,
            output_tokens=30,
            duration_s=1.5,
            ts=TS,
        ),  # fmt: skip
        AgentLearn(mission_id="m1", agent="tester", lesson="use pytest.approx", ts=TS),
        TaskState(
            mission_id="m1", task_id="t2", state=GoalState.FAILED, attempt=2, error="boom", ts=TS
        ),
        MissionState(mission_id="m1", state=GoalState.COMPLETE, reason="done", ts=TS),
    ]


def test_every_event_type_round_trips_through_the_table():
    events = sample_events()
    table = records_to_table([(i + 1, e.model_dump_json()) for i, e in enumerate(events)])
    assert table.schema == SCHEMA
    assert table_to_events(table) == events


def test_typed_columns_hold_the_fields_of_each_type_and_null_elsewhere():
    events = sample_events()
    rows = records_to_table(
        [(i + 1, e.model_dump_json().encode()) for i, e in enumerate(events)]
    ).to_pylist()
    think, act, learn, task, mission = rows
    assert think["text"] == "plan" and think["action"] is None and think["input_tokens"] is None
    assert (act["action"], act["ok"], act["input_tokens"], act["output_tokens"], act["duration_s"]) == (
        "llm.call", False, 120, 30, 1.5,
    )  # fmt: skip
    assert learn["lesson"] == "use pytest.approx" and learn["text"] is None
    assert (task["state"], task["attempt"], task["error"]) == ("failed", 2, "boom")
    assert (mission["state"], mission["reason"]) == ("complete", "done")
    assert act["ts"] == TS and act["seq"] == 2 and act["type"] == "agent.act"


def test_ts_is_microsecond_utc_and_seq_is_int64():
    assert SCHEMA.field("ts").type == pa.timestamp("us", tz="UTC")
    assert SCHEMA.field("seq").type == pa.int64()


def test_partition_is_hive_style_by_utc_date_and_type():
    assert partition_of(TS, "agent.think") == "date=2026-03-01/type=agent.think"


def test_a_body_that_is_not_json_is_refused():
    with pytest.raises(ValueError):
        records_to_table([(1, b"not json")])


def test_empty_table_gives_no_events():
    assert table_to_events(SCHEMA.empty_table()) == []
