"""Missions whose owning process is gone: seen as INTERRUPTED rather than RUNNING forever.

The SQL store records which process saved a RUNNING report
(:meth:`coditect.state.sql.SqlStore.owners`). Whether that process still runs is judged when a
report is shown, never written back: a distributed orchestrator that restarts adopts its
RUNNING missions again and records itself as their owner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.leftovers import ProcessIdentity

__all__ = ["interrupted_reason", "is_interrupted", "judge_reports"]


def interrupted_reason(report: MissionReport, owner: ProcessIdentity) -> str:
    """The reason line of a mission whose owner ``owner`` ended while it ran."""
    return (
        f"interrupted: the process that ran it (pid {owner.pid} on {owner.host}) ended before "
        f"the mission did (killed or crashed); `coditect resume {report.mission_id}` continues it"
    )


def is_interrupted(status: str, owner: ProcessIdentity | None) -> bool:
    """Whether a mission stored with ``status`` and recorded ``owner`` was interrupted."""
    return status == MissionOutcome.RUNNING.value and owner is not None and not owner.alive()


def judge_reports(
    reports: Sequence[MissionReport], owners: Mapping[str, ProcessIdentity]
) -> list[MissionReport]:
    """``reports``, with each RUNNING one whose recorded owner is gone shown as INTERRUPTED."""
    judged: list[MissionReport] = []
    for report in reports:
        owner = owners.get(report.mission_id)
        if owner is not None and is_interrupted(report.status.value, owner):
            report = report.model_copy(
                update={
                    "status": MissionOutcome.INTERRUPTED,
                    "reason": interrupted_reason(report, owner),
                }
            )
        judged.append(report)
    return judged
