"""What the coder works on: the target file, and for tests the code under test (pure lookups).

:func:`build_job` turns an :class:`~coditect.agents.base.AgentContext` into a :class:`CodeJob`:
which file to write, its current source, whether it is a test file, which definitions in it
the request is about (from the repository index, :mod:`coditect.index`) and, for tests, which
functions they should exercise (their signatures and docstrings and the import line to use).

Files are read and written byte-faithfully: the text is decoded as UTF-8 (else Latin-1),
Windows (CRLF) line endings are turned into LF for the merge and back on writing, and a
rewritten file keeps its permission bits.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coditect.agents.base import AgentContext
from coditect.agents.prompts import failures_block
from coditect.agents.validation import module_name
from coditect.domain.paths import is_test_path
from coditect.domain.results import TestFailure
from coditect.domain.tasks import Intent
from coditect.errors import AgentError
from coditect.index import RepoIndex, index_directory, localize
from coditect.index.rank import narrow_focus
from coditect.index.symbols import ModuleIndex, SymbolKind

__all__ = [
    "CodeJob",
    "TextFile",
    "build_job",
    "code_paths",
    "read_text_file",
    "failing_line",
    "is_test_path",
    "sha256_text",
    "signature_and_doc",
    "write_atomic",
]

_MAX_SUBJECTS = 4
# A short function is shown whole to the test writer: with only a signature (and maybe no
# docstring) a small model guesses what the function does, and guesses wrong.
_WHOLE_SUBJECT_LINES = 15
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CodeJob:
    """One file for the coder to change.

    Attributes:
        path: Target file, relative to the workspace.
        original: Its current source, None when it does not exist yet.
        subject_path: For tests: the module under test (relative path), else "".
        subject_names: For tests: the functions or classes to test.
        subject_text: For tests: their signatures and docstrings.
        failures: The failing tests to fix (a prompt block), or "".
        notes: Analyzer findings about the functions the request names, one per line, or "".
        focus: Qualnames in the file the request is most likely about, best first (shown in
            full when the file is too large to show whole).
        priority: Qualname -> localization score of the file's other definitions.
        exports_to: A package ``__init__.py`` that re-exports from the file and may be updated
            with the file's new public names, or "".
        new_names: Functions or classes the request calls by name (``tlru_cache(maxsize=...)``)
            that the project does not define yet: the answer is asked to write them (only for
            the task's main file).
        newline: The file's line ending (LF or CRLF).
        encoding: The file's encoding (``utf-8`` or ``latin-1``).
        editable: The existing definitions the prompt showed in full when it showed an
            excerpt of the file; None when it showed the whole file (or no definition in full).
    """

    path: str
    is_tests: bool
    original: str | None
    subject_path: str = ""
    subject_names: tuple[str, ...] = ()
    subject_text: str = ""
    failures: str = ""
    notes: str = ""
    focus: tuple[str, ...] = ()
    priority: tuple[tuple[str, float], ...] = ()
    exports_to: str = ""
    new_names: tuple[str, ...] = ()
    newline: str = "\n"
    encoding: str = "utf-8"
    editable: tuple[str, ...] | None = None

    @property
    def self_module(self) -> str:
        """Dotted module name of the target file."""
        return module_name(self.path)

    @property
    def import_line(self) -> str:
        """``from pkg.mod import a, B`` for the code under test, or "".

        A method under test (``B.peek``) is reached through its class: the class is imported.
        """
        if not (self.subject_path and self.subject_names):
            return ""
        names = dict.fromkeys(n.split(".")[0] for n in self.subject_names)
        return f"from {module_name(self.subject_path)} import {', '.join(names)}"


@dataclass(frozen=True, slots=True)
class TextFile:
    """A file's text with LF line endings, and how to write it back as it was."""

    text: str
    newline: str = "\n"
    encoding: str = "utf-8"


def read_text_file(path: Path) -> TextFile | None:
    """Read ``path`` for editing (None when it does not exist)."""
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "latin-1"
    newline = "\r\n" if "\r\n" in text and text.count("\r\n") == text.count("\n") else "\n"
    if newline == "\r\n":
        text = text.replace("\r\n", "\n")
    return TextFile(text, newline, encoding)


def _read(workspace: Path, rel: str) -> str | None:
    found = read_text_file(workspace / rel)
    return found.text if found is not None else None


# One index per workspace, updated from file hashes: repair rounds re-parse only what changed.
_INDEXES: dict[Path, RepoIndex] = {}
_MAX_INDEXES = 16


def workspace_index(workspace: Path) -> RepoIndex:
    """The repository index of ``workspace``, brought up to date."""
    index = _INDEXES.get(workspace)
    if index is None:
        if len(_INDEXES) >= _MAX_INDEXES:
            _INDEXES.pop(next(iter(_INDEXES)))
        index = _INDEXES[workspace] = RepoIndex()
    return index_directory(workspace, index=index)


def _defs(source: str | None) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    if not source:
        return {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {n.name: n for n in tree.body if isinstance(n, kinds)}


def signature_and_doc(source: str, name: str, *, whole_up_to: int = 0) -> str:
    """The ``def`` line(s) and docstring of top-level ``name`` in ``source`` ("" if absent).

    Args:
        source: A module's source.
        name: A top-level function or class in it.
        whole_up_to: Give the whole definition instead when it has at most this many lines.
    """
    node = _defs(source).get(name)
    if node is None:
        return ""
    lines = source.splitlines()
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    last = node.end_lineno or node.lineno
    if last - first + 1 <= whole_up_to:
        return "\n".join(lines[first - 1 : last])
    body0 = node.body[0]
    head = lines[first - 1 : body0.lineno - 1]
    doc = ast.get_docstring(node, clean=False)
    if doc is not None:
        head += lines[body0.lineno - 1 : body0.end_lineno]
    indent = " " * (body0.col_offset or 4)
    return "\n".join([*head, f"{indent}..."])


def _candidates(ctx: AgentContext) -> list[str]:
    paths = [*ctx.action.read_files, *ctx.action.write_files, *ctx.task.target_files]
    if ctx.upstream.analysis is not None:
        paths += [m.path for m in ctx.upstream.analysis.source_modules]
    return [p for p in dict.fromkeys(paths) if p.endswith(".py")]


def _mentioned(ctx: AgentContext) -> set[str]:
    return set(_WORD.findall(f"{ctx.request} {ctx.task.description} {ctx.task.feedback}"))


def _code_target(ctx: AgentContext) -> str:
    explicit = [p for p in (*ctx.action.write_files, *ctx.task.target_files) if p.endswith(".py")]
    for path in explicit:
        if not is_test_path(path):
            return path
    sources = [p for p in _candidates(ctx) if not is_test_path(p)]
    text = f"{ctx.request} {ctx.task.description}"
    words = _mentioned(ctx)
    for path in sources:  # a path named in the request
        if path in text:
            return path
    for path in sources:  # the module defining a function the request names
        if words & set(_defs(_read(ctx.workspace, path))):
            return path
    plain = [p for p in sources if Path(p).name != "__init__.py"]
    if plain:
        return sorted(plain)[0]
    raise AgentError(f"task {ctx.task.id}: no source file to write (action.write_files is empty)")


def _subjects(ctx: AgentContext) -> tuple[str, tuple[str, ...]]:
    for change in reversed(ctx.upstream.code):
        for edit in change.edits:
            names = (*edit.added_symbols, *edit.replaced_symbols)
            if names and not is_test_path(edit.path):
                return edit.path, tuple(names[:_MAX_SUBJECTS])
    words = _mentioned(ctx)
    for path in _candidates(ctx):
        if is_test_path(path):
            continue
        found = [n for n in _defs(_read(ctx.workspace, path)) if n in words]
        if found:
            return path, tuple(found[:_MAX_SUBJECTS])
    return "", ()


def _tests_target(ctx: AgentContext, subject_path: str) -> str:
    for path in (*ctx.action.write_files, *ctx.task.target_files):
        if path.endswith(".py") and is_test_path(path):
            return path
    if subject_path:
        return f"tests/test_{Path(subject_path).stem}.py"
    raise AgentError(f"task {ctx.task.id}: no test file to write and no code under test found")


def failing_line(detail: str) -> str:
    """The test's own failing source line in a pytest trace (the first ``>`` line), or ""."""
    for line in detail.splitlines():
        if line.startswith(">"):
            return line[1:].strip()
    return ""


def _failures(ctx: AgentContext) -> str:
    tests = ctx.upstream.tests
    pairs = []
    for f in tests.failures if tests else ():
        where = failing_line(f.detail)
        message = f.message or f.detail
        pairs.append((f.test_id, f"`{where}` -> {message}" if where else message))
    return failures_block(pairs, ctx.task.feedback)


def _notes(ctx: AgentContext, path: str) -> str:
    analysis = ctx.upstream.analysis
    if analysis is None:
        return ""
    words = _mentioned(ctx)
    lines = [
        f"Note: {f.path}:{f.line}: {f.message}"
        for f in analysis.findings
        if f.path == path and any(f"{w}()" in f.message for w in words)
    ]
    return "".join(line + "\n" for line in lines[:3])


def _focus(
    ctx: AgentContext, path: str
) -> tuple[tuple[str, ...], tuple[tuple[str, float], ...], tuple[str, ...]]:
    """What the prompt for ``path`` centres on.

    Returns:
        The definitions the request (and failing tests) are about, the other definitions'
        scores, and the new definitions the request asks for (:func:`_new_names`).
    """
    index = workspace_index(ctx.workspace)
    text = " ".join(filter(None, (ctx.request, ctx.task.description, ctx.task.feedback)))
    tests = ctx.upstream.tests
    failures = tests.failures if tests else ()
    failing = " ".join(f"{f.message} {f.detail}" for f in failures)
    loc = localize(index, f"{text}\n{failing}")
    entry = index.get(path)
    # Named by the request itself: a failure's text names whatever its test called or printed
    # (``Result.__init__()`` of a test that builds a Result wrongly), which is no evidence.
    asked = localize(index, text).named if failing else loc.named
    named = [s.qualname for s in asked if s.path == path]
    ranked = [r.symbol.qualname for r in loc.symbols_in(path, 5)]
    raising = raising_definitions(entry, failures) if entry is not None else []
    focus = narrow_focus([*raising, *named, *ranked], 3)
    priority = tuple((r.symbol.qualname, r.score) for r in loc.symbols if r.symbol.path == path)
    return focus, priority, _new_names(ctx.request, loc.missing)


# A traceback entry's location in pytest's output: ``src/pkg/mod.py:123: in f`` (short),
# ``src/pkg/mod.py:123: ValueError`` or ``src/pkg/mod.py:123:`` (long), relative to the project.
_FRAME = re.compile(r"^(?P<path>[^\s:]+\.py):(?P<line>\d+):", re.M)
_MAX_RAISING = 2


def raising_definitions(entry: ModuleIndex, failures: Sequence[TestFailure]) -> list[str]:
    """The functions and methods of ``entry`` that the failures' tracebacks pass through.

    Deepest frame first (where the exception came from), at most two: the code an exception
    leaves through is where a fix most likely goes, whatever words the request uses. A failed
    assertion on a value has no frame in the project's code and gives nothing.
    """
    kinds = (SymbolKind.FUNCTION, SymbolKind.METHOD)
    out: list[str] = []
    for failure in failures:
        frames = [(m["path"], int(m["line"])) for m in _FRAME.finditer(failure.detail)]
        for where, line in reversed(frames):
            if where != entry.path and not where.endswith("/" + entry.path):
                continue
            inside = [s for s in entry.symbols if s.kind in kinds and s.line <= line <= s.end_line]
            if inside:
                out.append(max(inside, key=lambda s: s.line).qualname)
    return list(dict.fromkeys(out))[:_MAX_RAISING]


def _new_names(request: str, missing: tuple[str, ...]) -> tuple[str, ...]:
    """The names of ``missing`` (code-like, defined nowhere) that ``request`` calls: ``f(...)``.

    A request that gives a new function's signature asks for that function; a small model
    shown a module and asked for "the new or changed code" tends to echo the module's first
    definition instead, unless the prompt names what is new. Names of one or two letters are
    an example's placeholders (``f(a=1, b=2)``), not a definition asked for.
    """
    return tuple(
        n for n in missing if len(n) > 2 and re.search(rf"(?<![\w.]){re.escape(n)}\s*\(", request)
    )


def _export_target(ctx: AgentContext, path: str) -> str:
    """The package ``__init__.py`` of ``path`` when the task may write it (for exports), or ""."""
    init = f"{path.rpartition('/')[0]}/__init__.py".lstrip("/")
    return init if init != path and init in ctx.action.write_files else ""


def code_paths(ctx: AgentContext) -> tuple[str, ...]:
    """The source files a code task changes, main one first (its export ``__init__`` excluded).

    Raises:
        AgentError: No file to write can be determined.
    """
    first = _code_target(ctx)
    export = _export_target(ctx, first)
    rest = [
        p
        for p in ctx.action.write_files
        if p.endswith(".py") and not is_test_path(p) and p not in (first, export)
    ]
    return (first, *rest)


def build_job(ctx: AgentContext, *, path: str | None = None, done: str = "") -> CodeJob:
    """Work out the coder's target file and prompt material for ``ctx``.

    Args:
        ctx: The task's context.
        path: The source file to change (a code task may change several); by default the
            task's main one.
        done: What earlier files of the same task already changed (a prompt note), or "".

    Raises:
        AgentError: No file to write can be determined.
    """
    if ctx.task.intent is not Intent.WRITE_TESTS:
        path = path or _code_target(ctx)
        found = read_text_file(ctx.workspace / path)
        focus, priority, new_names = _focus(ctx, path)
        notes = _notes(ctx, path)
        if done:
            notes += f"Already changed for this request: {done}\n"
        return CodeJob(
            path=path,
            is_tests=False,
            original=found.text if found else None,
            failures=_failures(ctx),
            notes=notes,
            focus=focus,
            priority=priority,
            exports_to=_export_target(ctx, path),
            new_names=new_names if path == _code_target(ctx) else (),
            newline=found.newline if found else "\n",
            encoding=found.encoding if found else "utf-8",
        )
    subject_path, names = _subjects(ctx)
    path = _tests_target(ctx, subject_path)
    if not names:
        subject_path = _subject_for_test_file(ctx, path)
        public = [n for n in _defs(_read(ctx.workspace, subject_path)) if not n.startswith("_")]
        names = tuple(public[:_MAX_SUBJECTS])
    source = (_read(ctx.workspace, subject_path) or "") if subject_path else ""
    found = read_text_file(ctx.workspace / path)
    text = "\n\n".join(
        filter(
            None, (signature_and_doc(source, n, whole_up_to=_WHOLE_SUBJECT_LINES) for n in names)
        )
    )
    return CodeJob(
        path=path,
        is_tests=True,
        original=found.text if found else None,
        subject_path=subject_path,
        subject_names=names,
        subject_text=text,
        failures=_failures(ctx),
        newline=found.newline if found else "\n",
        encoding=found.encoding if found else "utf-8",
    )


def _subject_for_test_file(ctx: AgentContext, test_path: str) -> str:
    stem = Path(test_path).stem.removeprefix("test_").removesuffix("_test")
    for path in _candidates(ctx):
        if not is_test_path(path) and Path(path).stem == stem:
            return path
    return ""


def sha256_text(text: str | None) -> str:
    """Hex SHA-256 of ``text`` as UTF-8; "" for None (a file that does not exist)."""
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # the portable way: set, then put it back at once
    os.umask(umask)
    return umask


def write_atomic(path: Path, text: str, *, newline: str = "\n", encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    ``text`` has LF line endings; they are written as ``newline``. The file keeps its mode (an
    executable stays executable); a new file gets the mode an ordinary ``open`` would give it
    (0666 less the umask), not ``mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        data = text.replace("\n", newline) if newline != "\n" else text
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode(encoding))
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
