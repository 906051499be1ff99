"""The Analyzer agent: reads the project's Python files with ``ast`` (no LLM, nothing executed).

For each module: functions, classes, imports, whether it is a test, line count. For the project:
the test files, the test command, and pattern-detected issues (see :mod:`coditect.agents.patterns`).
A file that does not parse becomes a ``syntax_error`` finding instead of failing the task.
"""

from __future__ import annotations

import ast
import configparser
import time
from collections import Counter
from pathlib import Path

from coditect.agents.base import Agent, AgentContext, RetryPolicy
from coditect.agents.codejob import is_test_path
from coditect.agents.patterns import find_issues
from coditect.domain.events import AgentAct
from coditect.domain.results import AnalysisReport, Finding, ModuleInfo
from coditect.index import python_files

__all__ = ["PYTEST_COMMAND", "AnalyzerAgent", "analyze_project", "discover_python_files"]

PYTEST_COMMAND: tuple[str, ...] = ("python", "-m", "pytest")


def discover_python_files(workspace: Path) -> tuple[str, ...]:
    """Relative paths of the project's ``.py`` files (hidden and virtualenv folders skipped)."""
    return tuple(python_files(workspace))


def _imports(tree: ast.Module) -> tuple[str, ...]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return tuple(dict.fromkeys(names))


def _module(workspace: Path, rel: str) -> tuple[ModuleInfo, list[Finding]]:
    source = (workspace / rel).read_text(encoding="utf-8", errors="replace")
    is_test = is_test_path(rel)
    lines = len(source.splitlines())
    try:
        tree = ast.parse(source, filename=rel)
    except SyntaxError as exc:
        finding = Finding(
            path=rel,
            line=exc.lineno or 0,
            kind="syntax_error",
            message=f"{exc.msg} (the file does not parse)",
        )
        return ModuleInfo(path=rel, is_test=is_test, lines=lines), [finding]
    funcs = tuple(
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    classes = tuple(n.name for n in tree.body if isinstance(n, ast.ClassDef))
    info = ModuleInfo(
        path=rel,
        functions=funcs,
        classes=classes,
        imports=_imports(tree),
        is_test=is_test,
        lines=lines,
    )
    return info, find_issues(tree, rel, is_test=is_test)


def _has_pytest_config(workspace: Path) -> bool:
    dedicated = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "conftest.py")
    if any((workspace / name).is_file() for name in dedicated):
        return True
    pyproject = workspace / "pyproject.toml"
    if pyproject.is_file() and "[tool.pytest" in pyproject.read_text(errors="replace"):
        return True
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        if (workspace / name).is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(workspace / name)
            except configparser.Error:
                continue
            if parser.has_section(section):
                return True
    return False


def _summary(
    modules: list[ModuleInfo],
    tests: tuple[str, ...],
    command: tuple[str, ...],
    findings: list[Finding],
) -> str:
    source = [m for m in modules if not m.is_test]
    funcs = sum(len(m.functions) for m in source)
    parts = [f"{len(modules)} modules ({len(source)} source, {len(tests)} test), {funcs} functions"]
    parts.append(f"tests: {' '.join(command)}" if command else "no tests found")
    if findings:
        counts = Counter(f.kind for f in findings)
        parts.append("findings: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
        bugs = [f for f in findings if f.kind in ("duplicate_branch", "syntax_error")]
        parts.extend(f"{f.path}:{f.line}: {f.message}" for f in bugs[:3])
    return "; ".join(parts)


def analyze_project(workspace: Path, files: tuple[str, ...] = ()) -> AnalysisReport:
    """Analyse ``files`` (relative ``.py`` paths; all of the project's when empty)."""
    rels = [f for f in files if f.endswith(".py") and (workspace / f).is_file()] or list(
        discover_python_files(workspace)
    )
    modules: list[ModuleInfo] = []
    findings: list[Finding] = []
    for rel in sorted(dict.fromkeys(rels)):
        info, found = _module(workspace, rel)
        modules.append(info)
        findings.extend(found)
    tests = tuple(m.path for m in modules if m.is_test and Path(m.path).name != "conftest.py")
    command = PYTEST_COMMAND if tests or _has_pytest_config(workspace) else ()
    return AnalysisReport(
        modules=tuple(modules),
        test_files=tests,
        test_command=command,
        findings=tuple(findings),
        summary=_summary(modules, tests, command, findings),
    )


class AnalyzerAgent(Agent):
    """Inspects the repository (capability ``analyze``); uses no model."""

    name = "analyzer"
    capabilities = frozenset({"analyze"})

    def __init__(self, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry=retry)

    async def execute(self, ctx: AgentContext) -> AnalysisReport:
        """Analyse ``ctx.action.read_files`` (or the whole workspace) and return the report."""
        started = time.monotonic()
        report = analyze_project(ctx.workspace, ctx.action.read_files)
        await ctx.emit(
            AgentAct(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                action="analyze",
                detail=report.summary,
                duration_s=time.monotonic() - started,
            )
        )
        return report
