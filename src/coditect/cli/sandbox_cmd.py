"""``coditect sandbox``: run one command in a sandbox, as the agents do.

Example::

    coditect sandbox run --backend wasm --dir examples/calculator -- python -m pytest -q

The command's standard output and error are passed through, and so is its exit code, with the
shell's conventions for the rest: 124 when the wall-clock timeout stopped it, 128+N when a signal
(or the CPU limit, SIGXCPU) ended it, and 125 when the sandbox itself could not run it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from coditect.config import Settings
from coditect.errors import ConfigError, SandboxError
from coditect.sandbox.base import SandboxLimits, SandboxRequest, SandboxResult
from coditect.sandbox.policy import SANDBOX_BACKENDS, available_backends, build_sandbox

__all__ = ["EXIT_SANDBOX_FAILED", "EXIT_TIMEOUT", "app", "exit_code_of"]

EXIT_TIMEOUT = 124
EXIT_SANDBOX_FAILED = 125
_EXIT_USAGE = 2

app = typer.Typer(
    help="Run commands in a CODITECT sandbox (wasm, process, docker or subprocess).",
    no_args_is_help=True,
)


def exit_code_of(result: SandboxResult) -> int:
    """The shell exit code for ``result``: its own, 124 on timeout, 128+N for signal N."""
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.exit_code < 0:
        return 128 - result.exit_code
    return result.exit_code


def _env_pairs(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--env")
        env[key] = value
    return env


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def run(
    command: Annotated[
        list[str], typer.Argument(help="The command and its arguments (put them after --).")
    ],
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            "-b",
            help="auto, wasm, process, docker or subprocess (default: CODITECT_SANDBOX or auto).",
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="The project directory (the only writable place).")
    ] = Path("."),
    timeout: Annotated[
        float, typer.Option("--timeout", "-t", help="Wall-clock limit, seconds.")
    ] = 120.0,
    cpu: Annotated[int | None, typer.Option("--cpu", help="CPU limit, seconds.")] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb", help="Memory limit, MiB.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE for the command (repeat).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the SandboxResult as JSON instead of the output.")
    ] = False,
) -> None:
    """Run COMMAND in a sandbox and pass its output and exit code through."""
    given = {
        "wall_timeout_s": timeout,
        "cpu_s": cpu,
        "max_memory_bytes": None if memory_mb is None else memory_mb * 1024 * 1024,
    }
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    try:
        sandbox = build_sandbox(backend or Settings().sandbox)
        limits = SandboxLimits.model_validate({k: v for k, v in given.items() if v is not None})
        request = SandboxRequest(
            argv=tuple(command),
            workdir=directory,
            env=_env_pairs(env or []),
            limits=limits,
            stdin=stdin,
        )
        result = asyncio.run(sandbox.run(request))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(_EXIT_USAGE) from None
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    except SandboxError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(EXIT_SANDBOX_FAILED) from None
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        typer.echo(result.stdout, nl=False)
        typer.echo(result.stderr, nl=False, err=True)
        if result.killed_by:
            typer.echo(
                f"[coditect sandbox: {result.backend} stopped the command: {result.killed_by}]",
                err=True,
            )
    raise typer.Exit(exit_code_of(result))


@app.command("backends")
def backends() -> None:
    """List the sandbox backends and whether each can run here."""
    usable = set(available_backends())
    for name, spec in SANDBOX_BACKENDS.items():
        state = "available" if name in usable else f"unavailable ({spec.install_hint})"
        note = "" if spec.isolating else "  [not isolated: rlimits only]"
        typer.echo(f"{name:<11} {state}{note}")
