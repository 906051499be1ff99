"""Every worker of a mission judges tests against the same baseline, recorded once at its base.

Real git clones and the real process sandbox; the mission values are the in-memory store (the
same on Redis is covered by tests/contracts/test_mission_contract.py).
"""

from __future__ import annotations

from pathlib import Path

from coditect.agents.baseline import BASELINE_PATH, Baseline
from coditect.distributed.baselines import MissionBaselines
from coditect.distributed.taskqueue import BASELINE
from coditect.sandbox.base import SandboxRequest, SandboxResult
from coditect.sandbox.subprocess import SubprocessSandbox
from coditect.state.memory import MemoryMissionValueStore
from coditect.taskqueue.deps import DEPS_DIR, plugins

KNOWN_BUG = "tests.test_known_bug::test_known_bug"  # JUnit's classname::name


class CountingSandbox(SubprocessSandbox):
    """The process sandbox, counting its runs and the backends it was asked to avoid."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.avoided: list[tuple[Path, str]] = []

    async def run(self, request: SandboxRequest) -> SandboxResult:
        self.runs += 1
        return await super().run(request)

    def avoid(self, workdir: Path, backend: str) -> bool:
        self.avoided.append((workdir, backend))
        return True


def _project(repo: Path, git) -> str:
    (repo / "tests" / "test_known_bug.py").write_text(
        "import calculator\n\n\ndef test_known_bug():\n    assert calculator is None\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a known failing test")
    return git(repo, "rev-parse", "HEAD").strip()


def _clone(repo: Path, dest: Path, git) -> Path:
    git(dest.parent, "clone", "-q", str(repo), str(dest))
    return dest


async def test_the_first_worker_records_it_and_the_others_read_it(
    calculator_repo: Path, git, tmp_path: Path
) -> None:
    base = _project(calculator_repo, git)
    values, sandbox = MemoryMissionValueStore(), CountingSandbox()
    baselines = MissionBaselines(values, sandbox, timeout_s=120)
    first = _clone(calculator_repo, tmp_path / "w1", git)
    recorded = await baselines.put("m1", first, base=base, head=base)
    assert recorded is not None and recorded.outcomes[KNOWN_BUG] == "failed"
    assert recorded.failing == {KNOWN_BUG}
    assert Baseline.from_json((first / BASELINE_PATH).read_text()) == recorded
    runs = sandbox.runs
    # Another worker's clone of the same mission: the same baseline, no second suite run.
    other = _clone(calculator_repo, tmp_path / "w2", git)
    assert await baselines.put("m1", other, base=base, head=base) == recorded
    assert (other / BASELINE_PATH).read_text() == (first / BASELINE_PATH).read_text()
    assert sandbox.runs == runs


async def test_a_branch_that_moved_on_is_recorded_at_the_base_commit(
    calculator_repo: Path, git, tmp_path: Path
) -> None:
    base = _project(calculator_repo, git)
    clone = _clone(calculator_repo, tmp_path / "w1", git)
    # An earlier task of the mission fixed the failing test before any baseline was kept.
    (clone / "tests" / "test_known_bug.py").write_text("def test_known_bug():\n    pass\n")
    git(clone, "commit", "-qam", "t2")
    head = git(clone, "rev-parse", "HEAD").strip()
    baselines = MissionBaselines(MemoryMissionValueStore(), CountingSandbox(), timeout_s=120)
    recorded = await baselines.put("m1", clone, base=base, head=head)
    assert recorded is not None and recorded.outcomes[KNOWN_BUG] == "failed"
    assert git(clone, "worktree", "list").count("\n") == 1  # the base's worktree is gone
    assert not (tmp_path / "w1.base").exists()
    assert git(clone, "rev-parse", "HEAD").strip() == head


async def test_a_project_without_tests_is_recorded_as_none_once(tmp_path: Path, git) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("X = 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    head = git(repo, "rev-parse", "HEAD").strip()
    values = MemoryMissionValueStore()
    baselines = MissionBaselines(values, CountingSandbox(), timeout_s=120)
    assert await baselines.put("m1", repo, base=head, head=head) is None
    assert await values.get_value(BASELINE, "m1") == ""
    assert not (repo / BASELINE_PATH).exists()


async def test_the_move_to_another_sandbox_backend_is_applied_on_every_clone(
    tmp_path: Path,
) -> None:
    values, sandbox = MemoryMissionValueStore(), CountingSandbox()
    moved = Baseline(outcomes={"t.py::test": "passed"}, backend="process", avoided="wasm")
    await values.put_value(BASELINE, "m1", moved.to_json())
    clone = tmp_path / "clone"
    clone.mkdir()
    assert (
        await MissionBaselines(values, sandbox, timeout_s=120).put("m1", clone, base="b", head="b")
        == moved
    )
    assert sandbox.avoided == [(clone, "wasm")] and sandbox.runs == 0


async def test_plugins_the_suite_could_not_run_with_are_left_out_on_every_clone(
    tmp_path: Path,
) -> None:
    values, sandbox = MemoryMissionValueStore(), CountingSandbox()
    recorded = Baseline(outcomes={"t.py::test": "passed"}, plugins_off=("pytest-broken",))
    await values.put_value(BASELINE, "m1", recorded.to_json())
    clone = tmp_path / "clone"
    info = clone / DEPS_DIR / "pytest_broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nbroken = pytest_broken\n")
    assert plugins(clone) == ("pytest-broken",)
    got = await MissionBaselines(values, sandbox, timeout_s=120).put(
        "m1", clone, base="b", head="b"
    )
    assert got == recorded and sandbox.runs == 0
    assert plugins(clone) == ()


async def test_an_unreadable_stored_baseline_is_not_used(tmp_path: Path) -> None:
    values = MemoryMissionValueStore()
    await values.put_value(BASELINE, "m1", "{not json")
    baselines = MissionBaselines(values, CountingSandbox(), timeout_s=120)
    assert await baselines.put("m1", tmp_path, base="b", head="b") is None
    assert not (tmp_path / BASELINE_PATH).exists()
