"""``coditect archive run`` (events to Parquet) and ``coditect replay`` (a mission's timeline).

Registered in :mod:`coditect.cli.main`::

    app.add_typer(archive_cmd.app, name="archive")
    app.command("replay")(archive_cmd.replay)
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coditect.config import Settings
from coditect.domain.events import Event
from coditect.errors import CoditectError, InputError

__all__ = ["app", "parse_duration", "replay"]

app = typer.Typer(help="Archive events as Parquet (local or S3).", no_args_is_help=True)

EXIT_FAILED, EXIT_INPUT = 1, 2

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds of ``90``, ``45s``, ``30m``, ``24h`` or ``7d``.

    Raises:
        InputError: The text is not such a duration.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"not a duration: {text!r}", hint="e.g. 30m, 24h, 7d")
    return float(match.group(1)) * _UNITS.get(match.group(2) or "s", 1.0)


def _err(console: Console, exc: CoditectError) -> None:
    console.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        console.print(f"[dim]hint:[/] {exc.hint}")


async def _archive(
    to: str,
    *,
    nats: str,
    every_s: float | None,
    batch_size: int,
    durable: str,
    ack_wait_s: float,
    attempts: int,
    stream: str,
    subject_prefix: str,
) -> dict[str, object]:
    from coditect.archive import Archiver, RetryPolicy, Source, open_destination
    from coditect.archive.sources import JetStreamSource, SqliteSource

    dest = open_destination(to)
    source: Source
    if nats:
        from coditect.bus.jetstream import JetStreamConfig

        config = JetStreamConfig(stream=stream, subject_prefix=subject_prefix)
        source = await JetStreamSource.connect(
            nats,
            durable=durable,
            config=config,
            ack_wait_s=ack_wait_s,
            max_ack_pending=batch_size,
        )
    else:
        source = SqliteSource(Settings().database_url, dest_key=to)
    archiver = Archiver(source, dest, batch_size=batch_size, retry=RetryPolicy(attempts=attempts))
    try:
        if every_s is None:
            stats = await archiver.run_once(max_wait_s=max(3 * ack_wait_s, 10.0))
            return stats.model_dump()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await archiver.run_forever(every_s, stop=stop)
        return {}
    finally:
        await source.close()


@app.command("run")
def run(
    to: Annotated[
        str, typer.Option("--to", help="file:///path or s3://bucket/prefix.", show_default=False)
    ],
    once: Annotated[
        bool, typer.Option("--once", help="Archive what is there now, then exit (default).")
    ] = False,
    every: Annotated[
        str | None, typer.Option("--every", help="Keep running, archiving every 24h, 30m...")
    ] = None,
    nats: Annotated[
        str,
        typer.Option(
            "--nats",
            envvar="CODITECT_NATS_URL",
            help="Read from JetStream at this URL (default: the local SQLite event log).",
        ),
    ] = "",
    batch_size: Annotated[int, typer.Option(help="Events per batch.", min=1)] = 10_000,
    durable: Annotated[str, typer.Option(help="Name of the durable JetStream consumer.")] = (
        "coditect-archive"
    ),
    ack_wait: Annotated[
        float, typer.Option(help="JetStream re-delivers a batch unacknowledged this long (s).")
    ] = 30.0,
    attempts: Annotated[
        int, typer.Option(help="Tries of each file write (exponential backoff).", min=1)
    ] = 8,
    stream: Annotated[str, typer.Option(help="JetStream stream of the events.")] = (
        "CODITECT_EVENTS"
    ),
    subject_prefix: Annotated[str, typer.Option(help="Subject prefix of the events.")] = (
        "coditect.events"
    ),
) -> None:
    """Archive events as Parquet, acknowledging each batch once its files are durably written.

    S3 settings: CODITECT_S3_ENDPOINT, CODITECT_S3_REGION, CODITECT_S3_ACCESS_KEY and
    CODITECT_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    """
    from coditect.logging import configure_logging, logging_configured, unconfigure_logging

    console = Console(stderr=True)
    if once and every:
        _err(console, InputError("give --once or --every, not both"))
        raise typer.Exit(EXIT_INPUT)
    own_logging = not logging_configured()  # the caller may have set logging up already
    if own_logging:
        configure_logging()
    try:
        every_s = parse_duration(every) if every else None
        stats = asyncio.run(
            _archive(
                to,
                nats=nats,
                every_s=every_s,
                batch_size=batch_size,
                durable=durable,
                ack_wait_s=ack_wait,
                attempts=attempts,
                stream=stream,
                subject_prefix=subject_prefix,
            )
        )
    except InputError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_INPUT) from None
    except CoditectError as exc:
        _err(console, exc)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        if own_logging:  # a CLI call inside a longer-lived process leaves no handler behind
            unconfigure_logging()
    if stats:
        sys.stdout.write(json.dumps(stats) + "\n")


async def _events_from_sqlite(mission_id: str) -> list[Event]:
    from coditect.runtime import open_mission_store

    store = open_mission_store(Settings().database_url)
    try:
        report = await store.get_report(mission_id)
        full_id = report.mission_id if report is not None else mission_id
        return await store.list_events(full_id)
    finally:
        await store.close()


async def _events_from_nats(
    url: str, mission_id: str, stream: str, subject_prefix: str
) -> list[Event]:
    from coditect.bus.jetstream import JetStreamBus, JetStreamConfig, connect_nats

    config = JetStreamConfig(stream=stream, subject_prefix=subject_prefix)
    nc = await connect_nats(url, name="coditect-replay")
    # Not JetStreamBus.connect: a reader must not change the stream's settings.
    bus = JetStreamBus(nc, config=config)
    try:
        return [e async for e in bus.replay(">") if e.mission_id == mission_id]
    finally:
        await bus.close()


def _load(mission_id: str, source: str, nats: str, stream: str, subject_prefix: str) -> list[Event]:
    if source:
        from coditect.archive import read_events

        return read_events(source, mission_id=mission_id)
    if nats:
        return asyncio.run(_events_from_nats(nats, mission_id, stream, subject_prefix))
    return asyncio.run(_events_from_sqlite(mission_id))


def _render(mission_id: str, events: list[Event]) -> Table:
    from coditect.archive import timeline

    table = Table(title=f"mission {mission_id}: {len(events)} events", title_justify="left")
    for name, justify in (
        ("time", "left"),
        ("+offset", "right"),
        ("type", "left"),
        ("task", "left"),
        ("agent", "left"),
        ("summary", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "summary")  # type: ignore[arg-type]
    for row in timeline(events):
        table.add_row(
            f"{row.ts:%H:%M:%S.%f}"[:-3],
            f"+{row.offset_s:.3f}s",
            row.type,
            row.task_id,
            row.agent,
            row.summary,
        )
    return table


def replay(
    mission_id: Annotated[str, typer.Argument(help="The mission id.")],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Read an archive: file:///path or s3://bucket/prefix.",
            show_default=False,
        ),
    ] = "",
    nats: Annotated[
        str, typer.Option("--nats", help="Read the live JetStream stream at this URL.")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    stream: Annotated[str, typer.Option(help="JetStream stream of the events.")] = (
        "CODITECT_EVENTS"
    ),
    subject_prefix: Annotated[str, typer.Option(help="Subject prefix of the events.")] = (
        "coditect.events"
    ),
) -> None:
    """Show a mission's timeline from the event log, an archive (--from) or JetStream (--nats)."""
    console = Console()
    try:
        events = _load(mission_id, source, nats, stream, subject_prefix)
    except CoditectError as exc:
        _err(Console(stderr=True), exc)
        raise typer.Exit(EXIT_FAILED) from None
    if not events:
        Console(stderr=True).print(f"[red]no events for mission {mission_id!r}[/]")
        raise typer.Exit(EXIT_INPUT)
    if as_json:
        sys.stdout.writelines(e.model_dump_json() + "\n" for e in events)
        return
    console.print(_render(mission_id, events))
