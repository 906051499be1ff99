"""`coditect sandbox run`: output and exit codes pass through (typer's CliRunner, real sandboxes)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from coditect.cli import sandbox_cmd
from coditect.sandbox.wasm import WasmSandbox

runner = CliRunner()


def _main() -> typer.Typer:
    # Registered the way the lead's main app does it.
    main = typer.Typer()

    @main.callback()
    def _root() -> None:
        """Root."""

    main.add_typer(sandbox_cmd.app, name="sandbox")
    return main


APP = _main()


def test_output_and_exit_code_pass_through(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "--backend",
            "subprocess",
            "--dir",
            str(tmp_path),
            "--",
            "python",
            "-c",
            code,
        ],
    )
    assert result.exit_code == 7
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_options_of_the_command_are_not_ours(tmp_path: Path) -> None:
    # Without "--", everything after the program name still belongs to the command.
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "-b",
            "subprocess",
            "-d",
            str(tmp_path),
            "-e",
            "GREETING=hi",
            "python",
            "-c",
            "import os; print(os.environ['GREETING'])",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "hi\n"


def test_timeout_is_124(tmp_path: Path) -> None:
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "-b",
            "subprocess",
            "-d",
            str(tmp_path),
            "--timeout",
            "0.5",
            "--",
            "python",
            "-c",
            "import time; time.sleep(30)",
        ],
    )
    assert result.exit_code == 124
    assert "timeout" in result.stderr


def test_json_report(tmp_path: Path) -> None:
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "-b",
            "subprocess",
            "-d",
            str(tmp_path),
            "--json",
            "--",
            "python",
            "-c",
            "print(6 * 7)",
        ],
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["stdout"], report["backend"]) == ("42\n", "subprocess")


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(APP, ["sandbox", "run", "-b", "vm", "--", "python", "-c", "pass"])
    assert result.exit_code == 2
    assert "unknown sandbox backend" in result.stderr


def test_missing_dir_is_125(tmp_path: Path) -> None:
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "-b",
            "subprocess",
            "-d",
            str(tmp_path / "nope"),
            "--",
            "python",
            "-c",
            "pass",
        ],
    )
    assert result.exit_code == 125
    assert "does not exist" in result.stderr


def test_wasm_cannot_run_a_shell(tmp_path: Path) -> None:
    result = runner.invoke(
        APP,
        ["sandbox", "run", "-b", "wasm", "-d", str(tmp_path), "--", "sh", "-c", "true"],
    )
    assert result.exit_code == 125
    assert "hint:" in result.stderr


def test_wasm_runs_python(tmp_path: Path) -> None:
    if not WasmSandbox.available():
        return
    result = runner.invoke(
        APP,
        [
            "sandbox",
            "run",
            "-b",
            "wasm",
            "-d",
            str(tmp_path),
            "--",
            "python",
            "-c",
            "import sys; print(sys.platform)",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "wasi\n"


def test_backends_lists_all() -> None:
    result = runner.invoke(APP, ["sandbox", "backends"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"wasm", "process", "docker", "subprocess"} <= set(names)
    assert "not isolated" in result.stdout
