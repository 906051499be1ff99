"""``coditect apply ID``: merge an accepted mission's branch into the user's current branch.

The merge happens only when it is safe: the working tree has no uncommitted changes to tracked
files (they could be overwritten), the user is on a branch, and the branch merges without a
conflict. Otherwise nothing changes and the reason is printed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coditect.config import Settings
from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.errors import CoditectError, InputError

__all__ = ["ApplyResult", "apply", "apply_mission"]

# Same fallback identity as the mission commits: a merge commit needs an author.
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "CODITECT",
    "GIT_AUTHOR_EMAIL": "coditect@localhost",
    "GIT_COMMITTER_NAME": "CODITECT",
    "GIT_COMMITTER_EMAIL": "coditect@localhost",
}


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: ``merged`` or not, and why."""

    merged: bool
    message: str
    commit: str = ""


def _git(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def _refusal(report: MissionReport, repo: Path) -> str:
    """Why the mission's branch cannot be merged into ``repo`` now ("" when it can be)."""
    if report.status is not MissionOutcome.SUCCESS:
        return f"mission {report.mission_id} is {report.status.value}, not an accepted change"
    if not report.branch:
        where = f" (it was written to {report.applied_to})" if report.applied_to else ""
        return f"mission {report.mission_id} has no branch{where}"
    if _git(repo, "rev-parse", "--show-toplevel").returncode != 0:
        return f"{repo} is not a git repository"
    if _git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{report.branch}").returncode != 0:
        return f"branch {report.branch} does not exist in {repo}"
    head = _git(repo, "symbolic-ref", "-q", "--short", "HEAD")
    if head.returncode != 0:
        return "HEAD is detached: check out the branch to merge into first"
    status = _git(repo, "status", "--porcelain", "--untracked-files=no").stdout
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    if dirty:
        return "uncommitted changes would be at risk: " + ", ".join(dirty[:10])
    return ""


def apply_mission(report: MissionReport, repo: Path | None = None) -> ApplyResult:
    """Merge ``report.branch`` into the current branch of ``repo`` (the mission's by default).

    Never leaves a half-done merge: a conflicting merge is aborted and reported.
    """
    repo = (repo or Path(report.repo)).resolve()
    if not repo.is_dir():
        return ApplyResult(False, f"{repo} does not exist")
    reason = _refusal(report, repo)
    if reason:
        return ApplyResult(False, reason)
    current = _git(repo, "symbolic-ref", "-q", "--short", "HEAD").stdout.strip()
    if _git(repo, "merge-base", "--is-ancestor", report.branch, "HEAD").returncode == 0:
        return ApplyResult(False, f"{report.branch} is already merged into {current}")
    env = {} if _git(repo, "config", "user.email").returncode == 0 else _GIT_IDENTITY
    merge = _git(
        repo,
        "merge",
        "--no-ff",
        "--no-edit",
        "-m",
        f"Merge CODITECT mission {report.mission_id}\n\n{report.request}",
        report.branch,
        env=env,
    )
    if merge.returncode != 0:
        conflicts = _git(repo, "diff", "--name-only", "--diff-filter=U").stdout.split()
        _git(repo, "merge", "--abort")
        detail = (
            "conflicts in " + ", ".join(conflicts)
            if conflicts
            else (merge.stderr or merge.stdout).strip()
        )
        return ApplyResult(
            False, f"{report.branch} does not merge cleanly into {current}: {detail}"
        )
    commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
    return ApplyResult(True, f"merged {report.branch} into {current}", commit)


def apply(
    mission_id: Annotated[str, typer.Argument(help="A mission id or a unique prefix of it.")],
    repo: Annotated[
        Path | None,
        typer.Option("--repo", "-r", help="The repository (default: the mission's own)."),
    ] = None,
) -> None:
    """Merge an accepted mission's branch into your current branch, if it applies cleanly."""
    from coditect.runtime import open_mission_store

    console = Console()
    try:
        store = open_mission_store(Settings().database_url)
        try:
            report = asyncio.run(store.get_report(mission_id))
        finally:
            asyncio.run(store.close())
    except CoditectError as exc:
        console.print(f"[bold red]error:[/] {exc.message}")
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from None
    if report is None:
        console.print(f"[red]no mission {mission_id!r}[/] (see `coditect status`)")
        raise typer.Exit(2)
    result = apply_mission(report, repo)
    if not result.merged:
        console.print(f"[bold red]not applied:[/] {result.message}")
        raise typer.Exit(1)
    console.print(f"[green]{result.message}[/] ({result.commit[:12]})")
