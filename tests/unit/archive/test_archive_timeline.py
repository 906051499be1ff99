"""Timeline rows and summaries, and the CLI's duration parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coditect.archive.timeline import summarize, timeline
from coditect.cli.archive_cmd import parse_duration
from coditect.domain.events import AgentAct, AgentThink, MissionState, TaskState
from coditect.domain.tasks import GoalState
from coditect.errors import InputError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_offsets_are_measured_from_the_first_event():
    events = [
        MissionState(mission_id="m", state=GoalState.RUNNING, ts=T0),
        AgentThink(
            mission_id="m", task_id="t1", agent="coder", text="x", ts=T0 + timedelta(seconds=1.5)
        ),
    ]
    rows = timeline(events)
    assert [r.offset_s for r in rows] == [0.0, 1.5]
    assert (rows[1].type, rows[1].task_id, rows[1].agent) == ("agent.think", "t1", "coder")
    assert timeline([]) == []


def test_summaries_say_what_happened():
    act = AgentAct(
        mission_id="m", action="llm", ok=False, input_tokens=10, output_tokens=2, detail="timeout"
    )
    assert summarize(act) == "llm FAILED tokens 10/2 0.00s: timeout"
    task = TaskState(mission_id="m", state=GoalState.FAILED, attempt=2, error="bad")
    assert summarize(task) == "failed (attempt 2): bad"
    assert summarize(AgentThink(mission_id="m", text="a\n  b" + "x" * 200)).endswith("…")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("45s", 45), ("30m", 1800), ("24h", 86400), ("7d", 604800)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "1w"])
def test_bad_durations(text):
    with pytest.raises(InputError):
        parse_duration(text)
