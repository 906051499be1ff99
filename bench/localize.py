"""Localization benchmark: does the index find the definition a request is about, and do the
coder's prompts fit the model's window?

Usage: python bench/localize.py PROJECT_DIR TASKS.json [--tokenizer local]

TASKS.json holds ``{"tasks": {request: qualname}}``: for each request, the definition a maintainer
would change (written from the project's documentation). Prints one JSON object: modules,
index_build_s, index_update_s (no change: nothing re-parsed), tasks, file_correct (the module
chosen for the write task defines the expected name), symbol_top1 / symbol_top3 (the expected
qualname among the best-ranked symbols), focus_shown (it is shown in full in the prompt),
max_prompt_tokens and context_window. With ``--tokenizer local`` tokens are counted by the
embedded model's tokenizer (loads the weights, no generation); else by the documented estimate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coditect.agents.prompts import CODE_SYSTEM, code_prompt
from coditect.index import index_directory, localize
from coditect.index.context import file_context
from coditect.llm.base import Model, prompt_budget
from coditect.llm.testing import ScriptedModel
from coditect.taskqueue.targets import choose_module

_REPAIR_RESERVE = 500  # as in agents/coder.py


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("tasks", type=Path)
    parser.add_argument("--tokenizer", choices=("estimate", "local"), default="estimate")
    args = parser.parse_args()
    tasks: dict[str, str] = json.loads(args.tasks.read_text())["tasks"]
    model: Model = ScriptedModel([])
    if args.tokenizer == "local":
        from coditect.llm import LocalModel

        model = LocalModel(n_threads=2)
    started = time.perf_counter()
    index = index_directory(args.project)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    index_directory(args.project, index=index)
    update_s = time.perf_counter() - started
    totals = {"file_correct": 0, "symbol_top1": 0, "symbol_top3": 0, "focus_shown": 0}
    max_tokens = 0
    budget = prompt_budget(model, 400) - model.count_tokens(CODE_SYSTEM) - _REPAIR_RESERVE
    for request, want in tasks.items():
        loc = localize(index, request)
        choice = choose_module(request, index, loc=loc)
        top = [r.symbol.qualname for r in loc.symbols[:3]]
        defs = index.definitions(want)
        totals["file_correct"] += bool(defs) and choice.path == defs[0].path
        totals["symbol_top1"] += top[:1] == [want]
        totals["symbol_top3"] += want in top
        source = (args.project / choice.path).read_text(encoding="utf-8", errors="replace")
        shell = model.count_tokens(
            code_prompt(request=request, description=request, path=choice.path, source="")
        )
        ctx = file_context(
            source, focus=choice.focus, budget_tokens=budget - shell, count=model.count_tokens
        )
        totals["focus_shown"] += want in ctx.full or ctx.whole
        prompt = code_prompt(
            request=request,
            description=request,
            path=choice.path,
            source=ctx.text,
            excerpt=not ctx.whole,
        )
        tokens = model.count_tokens(CODE_SYSTEM) + model.count_tokens(prompt)
        max_tokens = max(max_tokens, tokens)
    print(
        json.dumps(
            {
                "modules": len(index),
                "index_build_s": round(build_s, 3),
                "index_update_s": round(update_s, 4),
                "tasks": len(tasks),
                **totals,
                "max_prompt_tokens": max_tokens,
                "context_window": model.context_window,
                "tokenizer": args.tokenizer,
            }
        )
    )


if __name__ == "__main__":
    main()
