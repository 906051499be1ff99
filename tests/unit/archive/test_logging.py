"""Structured logs: JSON lines carrying the ids bound by bind_mission, from structlog and stdlib."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from coditect.logging import (
    bind_mission,
    configure_logging,
    get_logger,
    set_trace_id_provider,
    unconfigure_logging,
)


@pytest.fixture
def out():
    buf = io.StringIO()
    configure_logging(json=True, stream=buf, level="DEBUG")
    try:
        yield buf
    finally:
        unconfigure_logging()
        set_trace_id_provider(None)


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_structlog_and_stdlib_lines_carry_the_bound_ids(out):
    with bind_mission("m1", trace_id="abc"):
        with bind_mission("m1", task_id="t2", agent="coder"):
            get_logger("coditect.test").info("task.started", attempt=1)
            logging.getLogger("coditect.stdlib").warning("plain %s", "stdlib")
        get_logger().info("mission.only")
    get_logger().info("outside")
    first, second, third, fourth = lines(out)
    assert first["event"] == "task.started" and first["attempt"] == 1
    for line in (first, second):
        assert (line["mission_id"], line["task_id"], line["agent"], line["trace_id"]) == (
            "m1",
            "t2",
            "coder",
            "abc",
        )
        assert line["timestamp"].endswith("Z") and line["level"] in {"info", "warning"}
    assert second["event"] == "plain stdlib" and second["logger"] == "coditect.stdlib"
    assert third["mission_id"] == "m1" and "task_id" not in third
    assert "mission_id" not in fourth


async def test_ids_do_not_leak_between_concurrent_missions(out):
    async def mission(mid: str) -> None:
        with bind_mission(mid):
            await asyncio.sleep(0)
            get_logger().info("step")

    await asyncio.gather(mission("a"), mission("b"))
    steps = [line for line in lines(out) if line["event"] == "step"]
    assert sorted(line["mission_id"] for line in steps) == ["a", "b"]


def test_trace_id_provider_fills_lines_without_one(out):
    set_trace_id_provider(lambda: "t-123")
    with bind_mission("m"):
        get_logger().info("x")
    assert [line["trace_id"] for line in lines(out) if line["event"] == "x"] == ["t-123"]


def test_console_renderer_on_request():
    buf = io.StringIO()
    configure_logging(json=False, stream=buf)
    try:
        with bind_mission("m9", agent="tester"):
            get_logger().info("hello")
    finally:
        unconfigure_logging()
    text = buf.getvalue()
    assert "hello" in text and "mission_id=m9" in text and not text.startswith("{")


def test_json_by_default_when_the_stream_is_not_a_terminal():
    buf = io.StringIO()
    configure_logging(stream=buf)
    try:
        get_logger().info("x")
    finally:
        unconfigure_logging()
    assert json.loads(buf.getvalue())["event"] == "x"


def test_unconfigure_restores_the_root_logger():
    from coditect.logging import logging_configured

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging(stream=io.StringIO(), level="DEBUG")
    configure_logging(stream=io.StringIO(), level="INFO")  # reconfiguring replaces, not stacks
    assert logging_configured() and len(root.handlers) == len(handlers) + 1
    unconfigure_logging()
    assert not logging_configured() and root.level == level and root.handlers == handlers


async def test_a_mission_logs_its_lifecycle_with_mission_task_and_agent_ids(out, calculator_repo):
    from coditect.config import Settings
    from coditect.runtime import build_runtime

    runtime = build_runtime(Settings(llm="scripted:fibonacci", sandbox="subprocess"))
    try:
        report = await runtime.runner.run(
            "Add a function to calculate the nth Fibonacci number", calculator_repo
        )
    finally:
        await runtime.aclose()
    assert report.status == "SUCCESS", report.reason
    logged = [
        line for line in lines(out) if line.get("logger") == "coditect.orchestrator.coordinator"
    ]
    assert logged and all(line["mission_id"] == report.mission_id for line in logged)
    done = [line for line in logged if line["event"].split()[2:3] == ["complete"]]
    assert {line["task_id"] for line in done} == {"t1", "t2", "t3", "t4"}
    assert {line["agent"] for line in done} == {"analyzer", "coder", "tester"}
    assert logged[-1]["event"].startswith("mission ") and "task_id" not in logged[-1]


def test_mission_lines_stay_off_stdout_when_logging_is_not_configured(calculator_repo, capsys):
    from coditect.config import Settings
    from coditect.runtime import build_runtime

    async def run() -> str:
        runtime = build_runtime(Settings(llm="scripted:fibonacci", sandbox="subprocess"))
        try:
            report = await runtime.runner.run(
                "Add a function to calculate the nth Fibonacci number", calculator_repo
            )
        finally:
            await runtime.aclose()
        return report.status

    assert asyncio.run(run()) == "SUCCESS"
    captured = capsys.readouterr()
    assert captured.out == ""  # `coditect run --json` prints the report and nothing else
    assert "task t1" not in captured.err
