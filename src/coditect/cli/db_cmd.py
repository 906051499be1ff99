"""``coditect db upgrade|current``: the state database's schema migrations, run by an operator."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from coditect.config import Settings
from coditect.errors import CoditectError, ConfigError
from coditect.state.engine import open_engine
from coditect.state.migrate import SchemaStatus, engine_url, schema_status, upgrade_schema

__all__ = ["app"]

app = typer.Typer(
    help="The state database's schema: show its revision, or migrate it to this CODITECT's.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="CODITECT_DB_URL",
        help="Database URL (sqlite:///PATH or postgresql://...); default: the embedded state.db.",
        show_default=False,
    ),
]


def _engine(url: str | None) -> Engine:
    if not url:
        settings = Settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.database_url
    try:
        return open_engine(engine_url(url))
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"cannot use the database URL {url!r}: {exc}",
            hint="give sqlite:///PATH, or postgresql://USER:PASSWORD@HOST/DB "
            "(PostgreSQL needs: pip install 'coditect[distributed]')",
        ) from exc


def _fail(exc: CoditectError) -> typer.Exit:
    console = Console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {escape(exc.hint)}")
    return typer.Exit(1)


def _describe(status: SchemaStatus) -> dict[str, object]:
    return {
        "url": status.url,
        "current": status.current,
        "head": status.head,
        "state": status.state,
        "legacy_tables": list(status.legacy_tables),
    }


@app.command()
def current(
    url: UrlOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with status 1 unless the schema is current.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the database's schema revision and the newest one this CODITECT ships."""
    try:
        engine = _engine(url)
        try:
            status = schema_status(engine)
        finally:
            engine.dispose()
    except CoditectError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(_describe(status)))
    else:
        typer.echo(
            f"{status.url}: revision {status.current or '(none)'}, "
            f"newest {status.head} -> {status.state}"
        )
        if status.legacy_tables:
            typer.echo(f"tables made before migrations: {', '.join(status.legacy_tables)}")
    if check and not status.up_to_date:
        raise typer.Exit(1)


@app.command()
def upgrade(url: UrlOption = None) -> None:
    """Migrate the database to this CODITECT's newest schema revision (safe to run twice)."""
    try:
        engine = _engine(url)
        try:
            result = upgrade_schema(engine)
        finally:
            engine.dispose()
    except CoditectError as exc:
        raise _fail(exc) from None
    after = result.after
    if result.migrated:
        typer.echo(
            f"{after.url}: migrated from {result.before.current or '(none)'} to {after.current}"
        )
    else:
        typer.echo(f"{after.url}: already at {after.current}")
