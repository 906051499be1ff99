"""Localization benchmark: does the index find the definition a request is about, and do the
coder's prompts fit the model's window?

Usage::

    python bench/localize.py PROJECT_DIR TASKS.json [--tokenizer local]
    python bench/localize.py --realrepo [--tokenizer local]

TASKS.json holds ``{"tasks": {request: qualname}}``: for each request, the definition a maintainer
would change (``path:qualname`` where several modules define the name) (written from the project's documentation, before looking at any ranking; the
fetch command of each project is in the file). ``--realrepo`` measures every task of
bench/realrepo.py instead, on its project with the task's setup patch applied; there the
expected definitions are those the task's reference solution edits: the innermost definition
holding the first line an edit changes, or for a pure insertion the one holding both its
neighbours (the class a new method goes into); a task whose edits all add top-level code has
none and is left out. Prints one JSON object: modules, index_build_s, index_update_s (no
change: nothing re-parsed), tasks, file_correct (the module chosen for the write task is one
the change needs), symbol_top1 / symbol_top3 / symbol_top5 (an expected definition among the
best-ranked symbols), focus_shown (one is shown in full in the prompt), max_prompt_tokens,
context_window and misses (each task whose expected definition is not in the top 3, with the
rank it got; null: not ranked). With ``--tokenizer local`` tokens are counted by the embedded
model's tokenizer (loads the weights, no generation); else by the documented estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coditect.agents.prompts import CODE_SYSTEM, code_prompt  # noqa: E402
from coditect.index import RepoIndex, index_directory, localize  # noqa: E402
from coditect.index.context import file_context  # noqa: E402
from coditect.llm.base import Model, prompt_budget  # noqa: E402
from coditect.llm.testing import ScriptedModel  # noqa: E402
from coditect.taskqueue.targets import choose_module  # noqa: E402

_REPAIR_RESERVE = 500  # as in agents/coder.py


@dataclass(frozen=True)
class Case:
    """One request and the definitions (path, qualname) a maintainer would change for it."""

    name: str
    project: Path
    request: str
    want: frozenset[tuple[str, str]]
    files: frozenset[str]
    group: str = ""


class Meter:
    """Runs cases and adds up what they show."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.budget = prompt_budget(model, 400) - model.count_tokens(CODE_SYSTEM) - _REPAIR_RESERVE
        self.totals = {
            "tasks": 0,
            "file_correct": 0,
            "symbol_top1": 0,
            "symbol_top3": 0,
            "symbol_top5": 0,
            "focus_shown": 0,
        }
        self.max_tokens = 0
        self.misses: dict[str, int | None] = {}

    def run(self, case: Case, index: RepoIndex) -> None:
        loc = localize(index, case.request)
        choice = choose_module(case.request, index, loc=loc)
        ranked = [(r.symbol.path, r.symbol.qualname) for r in loc.symbols]
        rank = next((i + 1 for i, key in enumerate(ranked) if key in case.want), None)
        t = self.totals
        t["tasks"] += 1
        t["file_correct"] += choice.path in case.files
        for k in (1, 3, 5):
            t[f"symbol_top{k}"] += rank is not None and rank <= k
        if rank is None or rank > 3:
            self.misses[case.name] = rank
        source = (case.project / choice.path).read_text(encoding="utf-8", errors="replace")
        shell = self.model.count_tokens(
            code_prompt(request=case.request, description=case.request, path=choice.path, source="")
        )
        ctx = file_context(
            source,
            focus=choice.focus,
            budget_tokens=self.budget - shell,
            count=self.model.count_tokens,
        )
        wanted = {q for p, q in case.want if p == choice.path}
        t["focus_shown"] += bool(wanted & set(ctx.full)) or (ctx.whole and bool(wanted))
        prompt = code_prompt(
            request=case.request,
            description=case.request,
            path=choice.path,
            source=ctx.text,
            excerpt=not ctx.whole,
        )
        tokens = self.model.count_tokens(CODE_SYSTEM) + self.model.count_tokens(prompt)
        self.max_tokens = max(self.max_tokens, tokens)


def _expected(index: RepoIndex, path: str, text: str, old: str, new: str) -> tuple[str, str] | None:
    """The innermost definition an edit of ``old`` into ``new`` (in ``text``) changes.

    The lines both share at either end are context, not change. A pure insertion changes the
    definition that holds both of its neighbours (the class a new method goes into), none at
    the top level.
    """
    module = index.get(path)
    if module is None or old not in text:
        return None
    first = text.count("\n", 0, text.index(old)) + 1
    a, b = old.split("\n"), new.split("\n")
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    m = 0
    while m < min(len(a), len(b)) - k and a[-1 - m] == b[-1 - m]:
        m += 1
    lo, hi = (first + k - 1, first + k) if k + m >= len(a) else (first + k, first + k)
    holders = [s for s in module.symbols if s.line <= lo and hi <= s.end_line]
    best = min(holders, key=lambda s: s.lines, default=None)
    return (best.path, best.qualname) if best else None


def realrepo_cases(parent: Path) -> Iterable[tuple[Case, RepoIndex]]:
    """Every bench/realrepo.py task as a case, on a copy of its project with the setup applied."""
    import realrepo

    for task in realrepo.load_tasks():
        root = realrepo.prepared(task, parent)
        index = index_directory(root)
        want: set[tuple[str, str]] = set()
        for edit in task.solution:
            if edit.old is None:
                continue
            text = (root / edit.file).read_text(encoding="utf-8")
            found = _expected(index, edit.file, text, edit.old, edit.new)
            if found is not None:
                want.add(found)
        if want:
            files = frozenset(task.solution_files)
            yield Case(task.id, root, task.request, frozenset(want), files, task.project), index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path, nargs="?")
    parser.add_argument("tasks", type=Path, nargs="?")
    parser.add_argument("--realrepo", action="store_true", help="the bench/realrepo.py tasks")
    parser.add_argument("--tokenizer", choices=("estimate", "local"), default="estimate")
    args = parser.parse_args()
    if not args.realrepo and (args.project is None or args.tasks is None):
        parser.error("give PROJECT_DIR and TASKS.json, or --realrepo")
    model: Model = ScriptedModel([])
    if args.tokenizer == "local":
        from coditect.llm import LocalModel

        model = LocalModel(n_threads=2)
    meter = Meter(model)
    out: dict[str, object] = {}
    if args.realrepo:
        with tempfile.TemporaryDirectory(prefix="localize-") as tmp:
            projects: set[str] = set()
            for case, index in realrepo_cases(Path(tmp)):
                projects.add(case.group)
                meter.run(case, index)
        out["projects"] = len(projects)
    else:
        tasks: dict[str, str] = json.loads(args.tasks.read_text())["tasks"]
        started = time.perf_counter()
        index = index_directory(args.project)
        out["modules"] = len(index)
        out["index_build_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        index_directory(args.project, index=index)
        out["index_update_s"] = round(time.perf_counter() - started, 4)
        for request, want in tasks.items():
            # "path:qualname" names the module where several define the name.
            path, _, qualname = want.rpartition(":")
            defs = [d for d in index.definitions(qualname) if path in ("", d.path)]
            case = Case(
                qualname,
                args.project,
                request,
                frozenset((d.path, d.qualname) for d in defs),
                frozenset(d.path for d in defs[:1]),
            )
            meter.run(case, index)
    out.update(meter.totals)
    out["max_prompt_tokens"] = meter.max_tokens
    out["context_window"] = model.context_window
    out["tokenizer"] = args.tokenizer
    out["misses"] = meter.misses
    print(json.dumps(out))


if __name__ == "__main__":
    main()
