"""Owner identities and the removal of what dead CODITECT processes left (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from coditect.domain.mission import MissionOutcome, MissionReport
from coditect.leftovers import MARKER, ProcessIdentity, collect, mark_owned, owned_tempdir, owner_of
from coditect.state.owners import judge_reports


def dead_identity() -> ProcessIdentity:
    """The identity of a process that ran and has ended."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from coditect.leftovers import ProcessIdentity as P; print(P.current().to_json())",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate()
    identity = ProcessIdentity.from_json(out)
    assert identity is not None and identity.pid == proc.pid
    return identity


def test_the_current_process_is_alive_and_an_ended_one_is_not():
    me = ProcessIdentity.current()
    assert me.alive() and me.is_local() and me.start_ticks > 0
    assert not dead_identity().alive()


def test_a_reused_pid_is_not_mistaken_for_the_owner():
    me = ProcessIdentity.current()
    impostor = ProcessIdentity(me.host, me.boot_id, me.pid, me.start_ticks + 1)
    assert not impostor.alive()
    rebooted = ProcessIdentity(me.host, "another-boot", me.pid, me.start_ticks)
    assert not rebooted.alive()


def test_an_owner_on_another_host_counts_as_alive():
    assert ProcessIdentity("elsewhere.example", "", 1, 1).alive()


def test_malformed_identities_are_none():
    for raw in ("", "{}", "[1]", '{"host": "h", "boot_id": "", "pid": "x", "start_ticks": 0}'):
        assert ProcessIdentity.from_json(raw) is None


def test_collect_removes_only_folders_of_dead_owners(tmp_path):
    live = tmp_path / "coditect-live"
    dead = tmp_path / "coditect-dead"
    unmarked = tmp_path / "coditect-old"
    other = tmp_path / "not-ours"
    for path in (live, dead, unmarked, other):
        (path / "project").mkdir(parents=True)
    mark_owned(live)
    (dead / MARKER).write_text(dead_identity().to_json())
    (other / MARKER).write_text(dead_identity().to_json())
    assert owner_of(live) == ProcessIdentity.current()
    assert collect(tmp_path) == [dead]
    assert live.exists() and unmarked.exists() and other.exists()
    assert collect(tmp_path, unmarked_min_age_s=3600) == []  # just modified
    old = time.time() - 7200
    os.utime(unmarked, (old, old))
    assert collect(tmp_path, unmarked_min_age_s=3600) == [unmarked]
    assert live.exists()


def test_owned_tempdir_is_marked_and_removed(tmp_path):
    with owned_tempdir("coditect-x-", dir=tmp_path) as path:
        assert owner_of(path) == ProcessIdentity.current()
    assert not path.exists()


def test_running_reports_of_dead_owners_are_judged_interrupted():
    running = MissionReport(mission_id="m-a", request="r", repo="/r")
    done = MissionReport(mission_id="m-b", request="r", repo="/r", status=MissionOutcome.SUCCESS)
    mine = MissionReport(mission_id="m-c", request="r", repo="/r")
    dead = dead_identity()
    judged = judge_reports(
        [running, done, mine], {"m-a": dead, "m-b": dead, "m-c": ProcessIdentity.current()}
    )
    assert [r.status for r in judged] == [
        MissionOutcome.INTERRUPTED,
        MissionOutcome.SUCCESS,
        MissionOutcome.RUNNING,
    ]
    assert f"pid {dead.pid}" in judged[0].reason and "coditect resume m-a" in judged[0].reason
    assert running.status is MissionOutcome.RUNNING  # the stored report is not changed
