"""How often an example extracted from a docstring holds on the real code; one JSON object.

The extractor (coditect.agents.doctests) turns docstring examples into checks that can veto a
candidate, so a wrong extraction would punish right code. This runs it on code it was never
written for (standard-library modules and whatever of a few third-party packages is installed)
and evaluates each extracted example against the real implementation.

With ``--humaneval`` it checks the examples extracted from the stubs of HumanEval problems 82-163
(the half bench/humaneval.py uses) against each problem's canonical solution instead. With
``--requests`` it checks the examples read from the requests of bench/realrepo.py's tasks
(coditect.agents.doctests.request_examples, for every top-level function of the project) against
the project with the task's reference solution applied.

Usage: python bench/doctest_extraction.py [MODULE ...] | --humaneval | --requests
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from coditect.agents.doctests import (
    EXAMPLES_TEST_SUFFIX,
    Example,
    Params,
    examples_of,
    examples_test_source,
    extract_examples,
    request_examples,
)

STDLIB = (
    "statistics fractions textwrap shlex heapq bisect colorsys string difflib functools operator "
    "base64 binascii calendar fnmatch glob posixpath ntpath html urllib.parse ipaddress json re "
    "math cmath itertools collections keyword random struct codecs locale datetime decimal "
    "numbers pprint reprlib typing enum dataclasses inspect ast tokenize zlib email.utils "
    "http.cookies mimetypes quopri"
).split()
THIRD_PARTY = (
    "numpy numpy.linalg jinja2.filters markupsafe packaging.version packaging.specifiers "
    "packaging.utils rich.text click.utils pygments.util sqlalchemy.util tqdm fire"
).split()


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout


def holds(example: Example, module: ModuleType, name: str) -> bool:
    """Whether ``example`` holds for the real ``module.name``, checked by the very test function
    a mission writes for it (``examples_test_source``)."""
    sys.modules.setdefault(module.__name__, module)
    namespace: dict[str, Any] = {}
    signal.alarm(2)
    try:
        exec(examples_test_source(module.__name__, name, (example,)), namespace)  # noqa: S102
        namespace[f"test_{name}{EXAMPLES_TEST_SUFFIX}"]()
        return True
    except BaseException:  # noqa: BLE001 - any error means the example does not hold
        return False
    finally:
        signal.alarm(0)


def params_of(obj: object) -> Params | None:
    """A function's positional parameters (name, has a default), as the extractor takes them."""
    if not inspect.isfunction(obj):
        return None
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out: list[tuple[str, bool]] = []
    for p in signature.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            out.append((p.name, p.default is not p.empty))
        elif p.kind is p.VAR_POSITIONAL or (p.kind is p.KEYWORD_ONLY and p.default is p.empty):
            return None
    return tuple(out)


def evaluate(names: list[str]) -> dict[str, Any]:
    """Extract and check the examples of every top-level function or class of ``names``."""
    total = held = 0
    by_origin: dict[str, list[int]] = {}
    failing: list[str] = []
    modules = 0
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed here: skipped
            continue
        modules += 1
        for attr, obj in vars(module).items():
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            for example in extract_examples(inspect.getdoc(obj) or "", attr, params_of(obj)):
                ok = holds(example, module, attr)
                total, held = total + 1, held + ok
                slot = by_origin.setdefault(example.origin, [0, 0])
                slot[0], slot[1] = slot[0] + 1, slot[1] + ok
                if not ok:
                    failing.append(f"{name}.{attr}: {example.call} -> {example.expected}")
    return {
        "modules": modules,
        "examples": total,
        "hold_on_real_code": held,
        "precision": round(held / total, 3) if total else None,
        "by_origin": {k: {"examples": v[0], "hold": v[1]} for k, v in by_origin.items()},
        "failing": failing[:20],
    }


def evaluate_humaneval() -> dict[str, Any]:
    """Examples from the stubs of HumanEval 82-163, checked against the canonical solutions."""
    sys.path.insert(0, str(Path(__file__).parent))
    from humaneval import load_problems, stub

    total = held = 0
    without: list[str] = []
    failing: list[str] = []
    problems = load_problems(82, None)
    for problem in problems:
        name = problem["entry_point"]
        examples = examples_of(stub(problem), (name,)).get(name, ())
        if not examples:
            without.append(problem["task_id"])
            continue
        module = ModuleType(f"humaneval_{problem['task_id'].split('/')[1]}")
        exec(problem["prompt"] + problem["canonical_solution"], vars(module))  # noqa: S102
        for example in examples:
            ok = holds(example, module, name)
            total, held = total + 1, held + ok
            if not ok:
                failing.append(f"{problem['task_id']}: {example.call} -> {example.expected}")
    return {
        "problems": len(problems),
        "problems_with_examples": len(problems) - len(without),
        "examples": total,
        "hold_on_canonical_solution": held,
        "precision": round(held / total, 3) if total else None,
        "without_examples": without,
        "failing": failing,
    }


def _functions(root: Path) -> dict[str, str]:
    """Top-level functions of a project's source modules: name -> dotted module."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p.startswith("test") for p in rel.parts) or rel.name.startswith("test"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        parts = [p for p in rel.with_suffix("").parts if p != "src"]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and parts:
                found.setdefault(node.name, ".".join(parts))
    return found


def evaluate_requests() -> dict[str, Any]:
    """Examples read from bench/realrepo.py's requests, checked with the reference solutions."""
    sys.path.insert(0, str(Path(__file__).parent))
    import realrepo

    total = held = 0
    tasks = realrepo.load_tasks()
    with_examples: list[str] = []
    failing: list[str] = []
    for task in tasks:
        with tempfile.TemporaryDirectory() as tmp:
            root = realrepo.prepared(task, Path(tmp))
            realrepo.apply_edits(root, task.solution)
            where = _functions(root)
            found = request_examples(task.request, sorted(where))
            if found:
                with_examples.append(task.id)
            for name, examples in found.items():
                for example in examples:
                    code = f"from {where[name]} import {name}\n{example.assertion()}\n"
                    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
                    run = subprocess.run(
                        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True
                    )
                    total, held = total + 1, held + (run.returncode == 0)
                    if run.returncode:
                        failing.append(f"{task.id}: {example.call} -> {example.expected}")
    return {
        "requests": len(tasks),
        "requests_with_examples": with_examples,
        "examples": total,
        "hold_with_reference_solution": held,
        "failing": failing,
    }


def main() -> None:
    warnings.simplefilter("ignore")
    signal.signal(signal.SIGALRM, _alarm)
    if sys.argv[1:] == ["--humaneval"]:
        result = {"humaneval": evaluate_humaneval()}
    elif sys.argv[1:] == ["--requests"]:
        result = {"requests": evaluate_requests()}
    elif sys.argv[1:]:
        result = {"given": evaluate(sys.argv[1:])}
    else:
        result = {"stdlib": evaluate(STDLIB), "third_party": evaluate(THIRD_PARTY)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
