from coditect.domain import (
    AgentAct,
    AgentThink,
    FailureCategory,
    GoalState,
    MissionReport,
    TaskState,
    TestFailure,
    TestReport,
    event_adapter,
    new_mission_id,
)


def test_events_round_trip_through_json_with_their_type():
    for ev in (
        AgentThink(mission_id="m", text="hmm"),
        AgentAct(mission_id="m", action="write", detail="a.py", input_tokens=3),
        TaskState(mission_id="m", task_id="t1", state=GoalState.RUNNING),
    ):
        back = event_adapter.validate_json(ev.model_dump_json())
        assert back == ev and type(back) is type(ev)


def test_test_report_ok_needs_a_passing_test_and_no_failure():
    assert not TestReport().ok
    assert TestReport(passed=2).ok
    failure = TestFailure(test_id="t", category=FailureCategory.ASSERTION)
    assert not TestReport(passed=2, failed=1, failures=(failure,)).ok
    assert not TestReport(passed=2, timed_out=True).ok


def test_mission_ids_are_unique_and_reports_serialise():
    ids = {new_mission_id() for _ in range(50)}
    assert len(ids) == 50
    r = MissionReport(mission_id="m-1", request="x", repo="/r")
    assert MissionReport.model_validate_json(r.model_dump_json()) == r
