"""``coditect costs [MISSION_ID]``: LLM cost per mission, agent, task and cascade tier.

It also shows what work reuse saved and what escalation to a stronger tier cost.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from coditect.config import Settings
from coditect.domain.mission import MissionReport
from coditect.errors import CoditectError
from coditect.llm.ledger import LedgerEntry

__all__ = ["costs", "costs_summary"]


def _row(entries: list[LedgerEntry]) -> dict[str, Any]:
    return {
        "calls": len(entries),
        "reused_calls": sum(e.reused for e in entries),
        "input_tokens": sum(e.input_tokens for e in entries),
        "cached_input_tokens": sum(e.cached_input_tokens for e in entries),
        "cache_write_input_tokens": sum(e.cache_write_input_tokens for e in entries),
        "output_tokens": sum(e.output_tokens for e in entries),
        "usd": round(sum(e.usd for e in entries), 6),
    }


def costs_summary(report: MissionReport, entries: list[LedgerEntry]) -> dict[str, Any]:
    """One mission's costs: totals, per agent, per task (with reused tasks and tokens saved)."""
    by_agent: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        by_agent.setdefault(e.agent or "-", []).append(e)
    tasks = []
    for t in [("plan", "planner", False, 0)] + [
        (t.id, t.agent, t.reused, t.saved_tokens) for t in report.tasks
    ]:
        mine = [e for e in entries if e.task_id == t[0]]
        if t[0] == "plan" and not mine:
            continue
        tier = max((e.tier for e in mine), default=0)
        tasks.append(
            {
                "task": t[0],
                "agent": t[1],
                "reused": t[2],
                "saved_tokens": t[3],
                "tier": tier,
                **_row(mine),
            }
        )
    return {
        "mission_id": report.mission_id,
        "request": report.request,
        "status": report.status.value,
        "plan_source": report.plan_source,
        **_row(entries),
        "saved_tokens": report.tokens.saved,
        "reused_tasks": sum(t.reused for t in report.tasks),
        "estimated_tokens": report.tokens.estimated,
        "agents": {a: _row(es) for a, es in sorted(by_agent.items())},
        "tasks": tasks,
        **_tiers(entries, tasks),
    }


def _tiers(entries: list[LedgerEntry], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cascade tier its models, costs and tasks; what escalation (calls above tier 0) cost."""
    by_tier: dict[int, list[LedgerEntry]] = {}
    for e in entries:
        by_tier.setdefault(e.tier, []).append(e)
    tiers = {
        str(n): {
            "models": sorted({e.model for e in es}),
            "tasks": [t["task"] for t in tasks if t["tier"] == n and t["calls"]],
            **_row(es),
        }
        for n, es in sorted(by_tier.items())
    }
    escalated = [e for e in entries if e.tier > 0]
    return {
        "tiers": tiers,
        "escalation": {
            "tasks": sorted({e.task_id for e in escalated}),
            **_row(escalated),
        },
    }


async def _load(mission_id: str | None, limit: int, db: str = "") -> list[dict[str, Any]]:
    from coditect.runtime import open_ledger, open_mission_store

    url = (Settings(db_url=db) if db else Settings()).database_url
    store = open_mission_store(url)
    ledger = open_ledger(url)
    try:
        if mission_id:
            found = await store.get_report(mission_id)
            reports = [found] if found is not None else []
        else:
            reports = await store.list_reports(limit)
        return [costs_summary(r, await ledger.entries(r.mission_id)) for r in reports]
    finally:
        await ledger.close()
        await store.close()


def _table(title: str, rows: list[dict[str, Any]], first: str) -> Table:
    table = Table(title=title)
    for col in (first, "calls", "reused", "in", "cached in", "out", "usd", "saved"):
        table.add_column(col, justify="left" if col == first else "right")
    for r in rows:
        saved = "reused" if r.get("reused") else str(r.get("saved_tokens", "") or "")
        table.add_row(
            str(r[first]),
            str(r["calls"]),
            str(r["reused_calls"]),
            str(r["input_tokens"]),
            str(r["cached_input_tokens"]),
            str(r["output_tokens"]),
            f"${r['usd']:.4f}",
            saved,
        )
    return table


def costs(
    mission_id: Annotated[
        str | None, typer.Argument(help="A mission id or unique prefix (default: recent ones).")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many recent missions without an id.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Annotated[
        str,
        typer.Option(
            help="The distributed mode's database (as `coditect serve --db`; default: this "
            "machine's state database).",
            envvar="CODITECT_DB_URL",
        ),
    ] = "",
) -> None:
    """Show LLM costs per mission, agent and task, and what work reuse saved."""
    console = Console()
    try:
        summaries = asyncio.run(_load(mission_id, limit, db))
    except CoditectError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    if mission_id and not summaries:
        console.print(f"[red]no mission {mission_id!r}[/] (see `coditect status`)")
        raise typer.Exit(2)
    if as_json:
        out: object = summaries[0] if mission_id else summaries
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    if not mission_id:
        rows = [{**s, "saved_tokens": s["saved_tokens"]} for s in summaries]
        console.print(_table("LLM costs per mission", rows, "mission_id"))
        return
    s = summaries[0]
    console.print(f"[bold]{s['mission_id']}[/] {s['status']}: {s['request']}")
    console.print(
        f"tokens: {s['input_tokens']} in, {s['output_tokens']} out, ${s['usd']:.4f}; "
        f"saved by reuse: {s['saved_tokens']} tokens, {s['reused_tasks']} task(s) reused, "
        f"{s['reused_calls']} cached response(s); plan: {s['plan_source']}"
    )
    agents = [{"agent": a, **row} for a, row in s["agents"].items()]
    console.print(_table("per agent", agents, "agent"))
    console.print(_table("per task", s["tasks"], "task"))
    if len(s["tiers"]) > 1 or s["escalation"]["calls"]:
        tiers = [{"tier": f"{n} {' '.join(t['models'])}", **t} for n, t in s["tiers"].items()]
        console.print(_table("per cascade tier", tiers, "tier"))
        esc = s["escalation"]
        console.print(
            f"escalation: {len(esc['tasks'])} task(s) ({', '.join(esc['tasks'])}) cost "
            f"{esc['input_tokens']} in, {esc['output_tokens']} out, ${esc['usd']:.4f}"
        )
