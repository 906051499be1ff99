"""`coditect apply`: merge an accepted mission branch only when it is safe."""

import subprocess

import pytest

from coditect.cli.apply_cmd import apply_mission
from coditect.domain.mission import MissionOutcome, MissionReport


def commit_on_branch(repo, git, branch, path, text):
    git(repo, "checkout", "-q", "-b", branch)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-qm", f"change {path}")
    git(repo, "checkout", "-q", "main")


def report(repo, **kw):
    fields = dict(
        mission_id="m-1",
        request="r",
        repo=str(repo),
        status=MissionOutcome.SUCCESS,
        branch="coditect/m-1",
    )
    fields.update(kw)
    return MissionReport(**fields)


@pytest.fixture
def repo(calculator_repo, git):
    commit_on_branch(calculator_repo, git, "coditect/m-1", "NEW.txt", "from the mission\n")
    return calculator_repo


def test_clean_merge(repo, git):
    result = apply_mission(report(repo))
    assert result.merged and "merged coditect/m-1 into main" in result.message
    assert (repo / "NEW.txt").read_text() == "from the mission\n"
    assert git(repo, "rev-parse", "HEAD").strip() == result.commit
    assert not apply_mission(report(repo)).merged  # already merged


@pytest.mark.parametrize(
    "update, reason",
    [
        ({"status": MissionOutcome.REJECTED}, "is REJECTED"),
        ({"branch": "", "applied_to": "/x"}, "has no branch (it was written to /x)"),
        ({"branch": "coditect/m-gone"}, "does not exist"),
    ],
)
def test_refusals_from_the_report(repo, update, reason):
    result = apply_mission(report(repo, **update))
    assert not result.merged and reason in result.message


def test_refuses_uncommitted_work_and_detached_head(repo, git):
    (repo / "README.md").write_text("local work\n")
    result = apply_mission(report(repo))
    assert not result.merged and "uncommitted changes" in result.message
    assert (repo / "README.md").read_text() == "local work\n"
    git(repo, "checkout", "--", ".")
    git(repo, "checkout", "-q", "--detach")
    assert "detached" in apply_mission(report(repo)).message


def test_refuses_to_overwrite_an_untracked_file(repo):
    (repo / "NEW.txt").write_text("mine, not committed\n")
    result = apply_mission(report(repo))
    assert not result.merged and "does not merge cleanly" in result.message
    assert (repo / "NEW.txt").read_text() == "mine, not committed\n"


def test_conflict_is_aborted_and_named(repo, git):
    commit_on_branch(repo, git, "coditect/m-2", "README.md", "theirs\n")
    (repo / "README.md").write_text("ours\n")
    git(repo, "commit", "-qam", "ours")
    result = apply_mission(report(repo, branch="coditect/m-2"))
    assert not result.merged and "conflicts in README.md" in result.message
    assert git(repo, "status", "--porcelain") == ""  # no half-done merge left behind
    assert (repo / "README.md").read_text() == "ours\n"


def test_not_a_repository(tmp_path):
    assert "is not a git repository" in apply_mission(report(tmp_path)).message
    assert "does not exist" in apply_mission(report(tmp_path / "gone")).message
    assert subprocess.run(["git", "--version"], capture_output=True).returncode == 0
