"""The distributed commands are registered and document their settings."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coditect.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["serve", "orchestrator", "--help"],
            ["--listen", "--db", "--taskqueue", "CODITECT_TOKEN"],
        ),
        (
            ["serve", "taskqueue", "--help"],
            [
                "--nats",
                "--redis",
                "--redis-cluster",
                "CODITECT_ACK_WAIT_S",
                "--state-retention",
                "CODITECT_STATE_RETENTION_S",
            ],
        ),
        (
            ["worker", "--help"],
            ["--capabilities", "--taskqueue", "--nats", "--burst", "--state-retention"],
        ),
        (["submit", "--help"], ["--repo", "--server", "--watch", "--plan-only"]),
    ],
)
def test_help_documents_the_settings(args, expected):
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for word in expected:
        assert word in result.output


def test_submit_to_a_missing_server_fails_clearly(calculator_repo):
    result = runner.invoke(
        app,
        [
            "submit",
            "x",
            "--repo",
            str(calculator_repo),
            "--server",
            "127.0.0.1:1",
            "--deadline",
            "1",
        ],
        env={"COLUMNS": "200", "CODITECT_RPC_RETRIES": "0"},
    )
    assert result.exit_code == 1
    assert "UNAVAILABLE" in result.output
