"""The web view's Starlette application: pages, the live event stream, start, review and apply."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from coditect.bus.base import EventBus
from coditect.cli.apply_cmd import apply_mission
from coditect.domain.events import Event
from coditect.domain.mission import MissionOutcome
from coditect.errors import CoditectError
from coditect.orchestrator.review import ReviewDecision, Verdict
from coditect.ui import render
from coditect.ui.feed import EventFeed
from coditect.ui.graph import render_svg
from coditect.ui.launcher import Launcher, StartForm
from coditect.ui.security import CSRF_FIELD, Guard
from coditect.ui.source import MissionSource

__all__ = ["UiState", "create_app"]

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
_STATUSES = [o.value for o in MissionOutcome]


@dataclass
class UiState:
    """What the handlers share.

    Attributes:
        source: The state database.
        guard: Token, host and CSRF checks.
        bus: The bus live streams listen to (None: the event store alone).
        launcher: Starts and reviews missions (None: the view is read-only).
        poll_s: How often a live stream reads the event store when the bus is quiet.
        history: A mission's events kept only on the bus (distributed workers' agent events in
            JetStream), by mission id and start time; merged into the page's timeline.
    """

    source: MissionSource
    guard: Guard
    bus: EventBus | None = None
    launcher: Launcher | None = None
    poll_s: float = 0.25
    history: Callable[[str, datetime], Awaitable[list[Event]]] | None = None


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("coditect.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda v: f"${float(v):.4f}"
    env.filters["secs"] = lambda v: f"{float(v):.1f}s"
    return env


_TEMPLATES = _env()


def _state(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    ui = _state(request)
    html = _TEMPLATES.get_template(name).render(
        csrf=ui.guard.csrf, can_start=ui.launcher is not None, **context
    )
    return HTMLResponse(html, status_code=status_code)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


async def missions(request: Request) -> Response:
    """The missions list: filter by status and words, paginated."""
    q = request.query_params
    status = q.get("status", "") if q.get("status", "") in _STATUSES else ""
    text = q.get("q", "").strip()[:200]
    page = await _state(request).source.page(
        status=status, query=text, page=_int(q.get("page"), 1), per_page=_int(q.get("per_page"), 50)
    )
    return _page(request, "missions.html", page=page, status=status, q=text, statuses=_STATUSES)


async def new_form(request: Request) -> Response:
    """The form that starts a mission."""
    if _state(request).launcher is None:
        return PlainTextResponse("read-only view: start missions with `coditect submit`", 404)
    return _page(request, "new.html", form={}, error="")


async def _checked_form(request: Request) -> FormData | Response:
    form = await request.form()
    value = form.get(CSRF_FIELD)
    if not await _state(request).guard.csrf_ok(request, value if isinstance(value, str) else None):
        return PlainTextResponse("CSRF check failed: reload the page and try again", 403)
    return form


def _start_form(form: FormData) -> StartForm:
    fields: dict[str, Any] = {}
    for name in StartForm.model_fields:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            fields[name] = value.strip()
    for flag in ("no_reuse", "review"):
        fields[flag] = flag in form
    return StartForm.model_validate(fields)


async def start(request: Request) -> Response:
    """Start a mission from the form; on success, go to its page."""
    ui = _state(request)
    form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    if ui.launcher is None:
        return PlainTextResponse("read-only view", 403)
    raw = {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
    try:
        mission_id = ui.launcher.start(_start_form(form))
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _page(request, "new.html", 400, form=raw, error=errors)
    except CoditectError as exc:
        return _page(request, "new.html", 400, form=raw, error=exc.message)
    return RedirectResponse(f"/missions/{mission_id}", 303)


async def mission(request: Request) -> Response:
    """One mission: graph, tasks, tests, diff, costs, timeline; review and apply buttons."""
    ui = _state(request)
    mid = request.path_params["mission_id"]
    report = await ui.source.report(mid)
    if report is None and ui.launcher is not None:
        report = ui.launcher.placeholder(mid)
    if report is None:
        return PlainTextResponse(f"no mission {mid}", 404)
    stored = await ui.source.events_after(mid, 0, limit=100_000)
    events = [s.event for s in stored]
    if ui.history is not None:
        known = {e.event_id for e in events}
        extra = [e for e in await ui.history(mid, report.started_at) if e.event_id not in known]
        events = sorted(events + extra, key=lambda e: e.ts)
    review = ui.launcher.reviews.pending(mid) if ui.launcher is not None else None
    return _page(
        request,
        "mission.html",
        report=report,
        live=report.status is MissionOutcome.RUNNING,
        seq=stored[-1].seq if stored else 0,
        graph=render_svg(report.tasks),
        tasks=render.task_views(report, events),
        timeline=[(e, render.event_text(e)) for e in events],
        diff=render.diff_html(report.diff),
        diff_css=render.DIFF_CSS,
        costs=render.costs(report, await ui.source.calls(mid)),
        review=review,
        can_apply=ui.launcher is not None
        and report.status is MissionOutcome.SUCCESS
        and bool(report.branch),
        message=request.query_params.get("msg", "")[:300],
    )


async def graph(request: Request) -> Response:
    """The task graph alone (the page swaps it in when a repair round adds tasks)."""
    report = await _state(request).source.report(request.path_params["mission_id"])
    if report is None:
        return PlainTextResponse("no such mission", 404)
    return HTMLResponse(render_svg(report.tasks))


async def events(request: Request) -> Response:
    """The mission's events as server-sent events, from ``after`` (an event-store position)."""
    ui = _state(request)
    mid = request.path_params["mission_id"]
    known = ui.launcher is not None and ui.launcher.placeholder(mid) is not None
    if not known and await ui.source.report(mid) is None:
        return PlainTextResponse("no such mission", 404)
    feed = EventFeed(ui.source, ui.bus, poll_s=ui.poll_s)
    after = _int(request.query_params.get("after"), 0)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        async for item in feed.follow(mid, after_seq=after):
            body = item.event.model_dump(mode="json")
            body["text"] = render.event_text(item.event)
            prefix = f"id: {item.seq}\n" if item.seq else ""
            yield f"{prefix}event: coditect\ndata: {json.dumps(body)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _writable(request: Request) -> tuple[Launcher, FormData] | Response:
    """The launcher and the checked form of a review or apply request (or the refusal)."""
    form = await _checked_form(request)
    if isinstance(form, Response):
        return form
    launcher = _state(request).launcher
    if launcher is None:
        return PlainTextResponse("read-only view", 403)
    return launcher, form


async def review(request: Request) -> Response:
    """Accept, reject, or send feedback on a mission waiting for review."""
    checked = await _writable(request)
    if isinstance(checked, Response):
        return checked
    launcher, form = checked
    mid = request.path_params["mission_id"]
    try:
        verdict = Verdict(str(form.get("verdict", "")))
        launcher.reviews.decide(mid, ReviewDecision(verdict, str(form.get("feedback", ""))))
    except ValueError:
        return PlainTextResponse("verdict must be accept, reject or feedback", 400)
    except CoditectError as exc:
        return PlainTextResponse(exc.message, 409)
    await asyncio.sleep(0)  # let the mission take the decision before the page is rendered
    return RedirectResponse(f"/missions/{mid}", 303)


async def apply(request: Request) -> Response:
    """Merge an accepted mission's branch into the repository's current branch (if clean)."""
    checked = await _writable(request)
    if isinstance(checked, Response):
        return checked
    mid = request.path_params["mission_id"]
    report = await _state(request).source.report(mid)
    if report is None:
        return PlainTextResponse("no such mission", 404)
    # Only the mission's own repository is touched: the path comes from the stored report.
    result = await asyncio.to_thread(apply_mission, report)
    return RedirectResponse(f"/missions/{mid}?msg={quote(result.message)}", 303)


async def static(request: Request) -> Response:
    """The page's script and styles, from the package (no file system path is ever taken)."""
    name = request.path_params["name"]
    if name not in _STATIC:
        return PlainTextResponse("not found", 404)
    text = resources.files("coditect.ui").joinpath("static", name).read_text(encoding="utf-8")
    return Response(text, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})


async def healthz(_request: Request) -> Response:
    """Liveness probe."""
    return PlainTextResponse("ok")


def create_app(ui: UiState) -> Starlette:
    """The application over ``ui`` (its launcher's missions are cancelled on shutdown)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if ui.launcher is not None:
                await ui.launcher.aclose()

    app = Starlette(
        routes=[
            Route("/", missions),
            Route("/new", new_form),
            Route("/missions", start, methods=["POST"]),
            Route("/missions/{mission_id}", mission),
            Route("/missions/{mission_id}/graph", graph),
            Route("/missions/{mission_id}/events", events),
            Route("/missions/{mission_id}/review", review, methods=["POST"]),
            Route("/missions/{mission_id}/apply", apply, methods=["POST"]),
            Route("/static/{name}", static),
            Route("/healthz", healthz),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=ui.guard)],
        lifespan=lifespan,
    )
    app.state.ui = ui
    return app
