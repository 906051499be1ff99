"""``coditect ui``: the web view of missions (docs/ui.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from coditect.config import Settings
from coditect.domain.events import Event
from coditect.errors import CoditectError, ConfigError

__all__ = ["build_state", "serve", "ui"]


def _require_ui() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the web view needs the ui extra ({exc.name} is missing)",
            hint="pip install 'coditect[ui]'",
        ) from exc


@contextlib.asynccontextmanager
async def build_state(
    *, listen_host: str, token: str, db: str | None, nats: str | None
) -> AsyncIterator[Any]:
    """The web view's shared state: database, bus and (embedded mode) the mission launcher.

    Embedded mode (no ``db``): the CODITECT home's ``state.db``; missions started from the page
    run in this process. With ``db`` (the distributed mode's metadata database) the view is
    read-only and ``nats`` adds the workers' agent events from JetStream to the live streams.
    """
    from coditect.bus.base import EventBus
    from coditect.bus.memory import MemoryBus
    from coditect.ui.app import UiState
    from coditect.ui.launcher import Launcher
    from coditect.ui.security import Guard
    from coditect.ui.source import MissionSource

    guard = Guard(listen_host, token)
    settings = Settings()
    launcher = None
    bus: EventBus = MemoryBus()
    if db:
        from coditect.distributed.settings import DistributedSettings

        url = DistributedSettings(db_url=db).database_url
    else:
        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.database_url
        launcher = Launcher(settings, bus)
    source = await asyncio.to_thread(MissionSource, url)
    remote: EventBus | None = None
    history: Callable[[str, datetime], Awaitable[list[Event]]] | None = None
    try:
        if nats:
            from coditect.bus.jetstream import JetStreamBus, JetStreamConfig
            from coditect.distributed.settings import DistributedSettings

            name = DistributedSettings(nats_url=nats).queue_name
            jetstream = await JetStreamBus.connect(
                nats,
                config=JetStreamConfig(
                    stream=f"{name.upper().replace('-', '_')}_EVENTS",
                    subject_prefix=f"{name}.events",
                ),
            )
            remote = jetstream

            async def replayed(mission_id: str, since: datetime) -> list[Event]:
                # Workers' agent events are only in JetStream, not in the database.
                return [
                    e
                    async for e in jetstream.replay(">", since=since)
                    if e.mission_id == mission_id
                ]

            history = replayed
        yield UiState(
            source=source, guard=guard, bus=remote or bus, launcher=launcher, history=history
        )
    finally:
        if remote is not None:
            await remote.close()
        await bus.close()
        await source.close()


async def serve(
    listen: str,
    token: str,
    db: str | None,
    nats: str | None,
    console: Console,
    *,
    on_server: Callable[[Any], None] | None = None,
) -> None:
    """Serve until stopped; ``on_server`` gets the uvicorn server (tests stop it through it)."""
    import uvicorn

    from coditect.ui.app import create_app
    from coditect.ui.security import split_listen

    host, port = split_listen(listen)
    async with build_state(listen_host=host, token=token, db=db, nats=nats) as state:
        config = uvicorn.Config(
            create_app(state), host=host, port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        if on_server is not None:
            on_server(server)
        shown = f"[{host}]" if ":" in host else host
        console.print(
            f"CODITECT ui on http://{shown}:{port}/" + ("  (token required)" if token else "")
        )
        if state.launcher is None:
            console.print(
                "[dim]read-only: missions of the distributed mode (start them with `coditect submit`)[/]"
            )
        await server.serve()


def ui(
    listen: Annotated[
        str, typer.Option(help="host:port to serve on (a non-loopback address needs --token).")
    ] = "127.0.0.1:8420",
    db: Annotated[
        str | None,
        typer.Option(
            help="The distributed mode's database URL (read-only view).", show_default=False
        ),
    ] = None,
    nats: Annotated[
        str | None,
        typer.Option(
            help="NATS URL: live agent events of distributed workers.", show_default=False
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token required of every request (env CODITECT_TOKEN).", show_default=False
        ),
    ] = None,
) -> None:
    """Serve the web view: missions, the live task graph, diffs, costs, review before landing."""
    console = Console()
    token = token if token is not None else os.environ.get("CODITECT_TOKEN", "")
    try:
        _require_ui()
        asyncio.run(serve(listen, token, db, nats, console))
    except CoditectError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            console.print(f"[dim]hint:[/] {exc.hint}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
