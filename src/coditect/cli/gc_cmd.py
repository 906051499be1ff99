"""``coditect gc``: remove what killed CODITECT processes left in the temporary directory."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from coditect.leftovers import collect

__all__ = ["gc"]


def gc(
    unmarked_older_than: Annotated[
        float,
        typer.Option(
            help="Also remove coditect-* folders without an owner marker (left by an older "
            "CODITECT) not modified for this many seconds.",
        ),
    ] = 3600.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the removed paths as JSON.")
    ] = False,
) -> None:
    """Remove coditect-* temporary folders (workspace copies, sandbox folders) of dead processes.

    A folder whose owner process still runs is never touched.
    """
    removed = collect(unmarked_min_age_s=unmarked_older_than)
    if as_json:
        sys.stdout.write(json.dumps({"removed": [str(p) for p in removed]}) + "\n")
        return
    console = Console()
    for path in removed:
        console.print(f"removed {path}")
    console.print(f"{len(removed)} leftover folder(s) removed")
