"""What one Python module defines and references, read with ``ast`` (pure, no I/O).

:func:`index_module` turns a module's source into a :class:`ModuleIndex`: its top-level
functions, classes and their methods and class attributes, module constants, ``__all__``, its
imports, and for every definition the names it references (the raw material of the reference
graph in :mod:`coditect.index.repo`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ModuleIndex",
    "Symbol",
    "SymbolKind",
    "docstring_node",
    "imported_from",
    "index_module",
    "module_name",
    "references",
]

_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_MAX_SIGNATURE_CHARS = 200


class SymbolKind(StrEnum):
    """What a symbol is."""

    FUNCTION = "function"
    CLASS = "class"
    METHOD = "method"
    CONSTANT = "constant"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True, slots=True)
class Symbol:
    """One definition in a module.

    Attributes:
        path: The module's path relative to the project root.
        name: The bare name (``parse``).
        qualname: ``Class.method`` for members, else the name.
        kind: Function, class, method, constant or class attribute.
        line: First line (1-based, decorators included).
        end_line: Last line.
        signature: ``def name(args) -> ret`` / ``class Name(bases)`` / ``NAME = ...``.
        doc: First line of the docstring, or "".
        refs: Names the definition's body references (calls, attributes, bare names).
        literals: The string constants in the definition (its docstring whole included);
            none for a class (its members hold them).
        attrs: The names among ``refs`` used as attributes (``y`` of ``x.y``): how a method
            is called, where a bare ``str(...)`` is not a call of some class's ``str`` method.
        decorators: The decorators of a function or class as written, without their
            arguments (``functools.lru_cache``, ``deprecated``).
    """

    path: str
    name: str
    qualname: str
    kind: SymbolKind
    line: int
    end_line: int
    signature: str
    doc: str = ""
    refs: frozenset[str] = field(default_factory=frozenset)
    literals: tuple[str, ...] = ()
    attrs: frozenset[str] = field(default_factory=frozenset)
    decorators: tuple[str, ...] = ()

    @property
    def parent(self) -> str:
        """The enclosing class of a member, else ""."""
        return self.qualname.rpartition(".")[0]

    @property
    def lines(self) -> int:
        """Number of lines the definition spans."""
        return self.end_line - self.line + 1


@dataclass(frozen=True, slots=True)
class ModuleIndex:
    """Everything the index knows about one module.

    Attributes:
        path: Relative POSIX path.
        sha256: Hash of the content the entry was built from.
        symbols: Definitions in source order (members right after their class).
        imports: Dotted names imported (``from a import b`` gives ``a`` and ``a.b``;
            relative imports are resolved against the module's package).
        imported_names: Local names bound by imports.
        exports: The literal ``__all__``, or None when the module has none.
        doc: First line of the module docstring.
        refs: Every name the module references anywhere.
        lines: Line count.
        error: Why the module does not parse, or "".
    """

    path: str
    sha256: str
    symbols: tuple[Symbol, ...] = ()
    imports: tuple[str, ...] = ()
    imported_names: tuple[str, ...] = ()
    exports: tuple[str, ...] | None = None
    doc: str = ""
    refs: frozenset[str] = field(default_factory=frozenset)
    lines: int = 0
    error: str = ""

    @property
    def module(self) -> str:
        """The dotted import name (``src/`` stripped, ``__init__`` folded into the package)."""
        return module_name(self.path)

    def find(self, qualname: str) -> Symbol | None:
        """The symbol called ``qualname`` in this module, or None."""
        return next((s for s in self.symbols if s.qualname == qualname), None)


def module_name(path: str) -> str:
    """Dotted import name of a module path (``src/pkg/mod.py`` -> ``pkg.mod``)."""
    rel = path.removesuffix(".py").removesuffix("/__init__")
    rel = rel.removeprefix("src/")
    return rel.replace("/", ".")


def _first_line(node: ast.AST) -> str:
    if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return ""
    doc = ast.get_docstring(node) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def _span(node: ast.stmt) -> tuple[int, int]:
    first = node.lineno
    decorators = getattr(node, "decorator_list", ())
    if decorators:
        first = min(first, *(d.lineno for d in decorators))
    return first, node.end_lineno or node.lineno


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SIGNATURE_CHARS else text[: _MAX_SIGNATURE_CHARS - 3] + "..."


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> tuple[str, ...]:
    """The decorators' expressions without call arguments: ``@a.b(x)`` gives ``a.b``."""
    return tuple(ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list)


def _signature(node: ast.stmt) -> str:
    if isinstance(node, _FUNCS):
        prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        ret = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
        return _clip(f"{prefix} {node.name}({ast.unparse(node.args)}){ret}")
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in (*node.bases, *node.keywords)]
        return _clip(f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}")
    return _clip(ast.unparse(node).splitlines()[0] if ast.unparse(node) else "")


def references(node: ast.AST) -> frozenset[str]:
    """The names ``node`` uses: variable names and attribute names (``x`` and ``y`` of ``x.y``)."""
    return _references(node)[0]


def _references(node: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """:func:`references`, and the attribute names among them."""
    names: set[str] = set()
    attrs: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            attrs.add(sub.attr)
    return frozenset(names | attrs), frozenset(attrs)


_MAX_LITERALS = 64
_MAX_LITERAL_CHARS = 2000


def string_literals(node: ast.AST) -> tuple[str, ...]:
    """The string constants in ``node`` (docstrings too), each cut to a bounded length."""
    out: dict[str, None] = {}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.strip():
            out[sub.value[:_MAX_LITERAL_CHARS]] = None
            if len(out) >= _MAX_LITERALS:
                break
    return tuple(out)


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _members(path: str, cls: ast.ClassDef) -> list[Symbol]:
    out: list[Symbol] = []
    for node in cls.body:
        first, last = _span(node)
        refs, attrs = _references(node)
        if isinstance(node, _FUNCS):
            out.append(
                Symbol(
                    path,
                    node.name,
                    f"{cls.name}.{node.name}",
                    SymbolKind.METHOD,
                    first,
                    last,
                    _signature(node),
                    _first_line(node),
                    refs,
                    string_literals(node),
                    attrs,
                    _decorators(node),
                )
            )
        else:
            for name in _assigned(node):
                out.append(
                    Symbol(
                        path,
                        name,
                        f"{cls.name}.{name}",
                        SymbolKind.ATTRIBUTE,
                        first,
                        last,
                        _signature(node),
                        refs=refs,
                        literals=string_literals(node),
                        attrs=attrs,
                    )
                )
    return out


def _exports(node: ast.stmt) -> tuple[str, ...] | None:
    if "__all__" not in _assigned(node):
        return None
    value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
    if isinstance(value, ast.List | ast.Tuple):
        return tuple(
            e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        )
    return None


def imported_from(path: str, node: ast.ImportFrom) -> str:
    """The dotted module a ``from ... import`` in the module at ``path`` imports from."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: str, tree: ast.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dotted: list[str] = []
    local: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted.extend(a.name for a in node.names)
            local.extend((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = imported_from(path, node)
            if mod:
                dotted.append(mod)
            for a in node.names:
                if a.name != "*":
                    dotted.append(f"{mod}.{a.name}" if mod else a.name)
                    local.append(a.asname or a.name)
    return tuple(dict.fromkeys(dotted)), tuple(dict.fromkeys(local))


def index_module(path: str, source: str, sha256: str = "") -> ModuleIndex:
    """Index one module's ``source``; a module that does not parse gets ``error`` set."""
    lines = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return ModuleIndex(path=path, sha256=sha256, lines=lines, error=str(exc))
    symbols: list[Symbol] = []
    exports: tuple[str, ...] | None = None
    for node in tree.body:
        first, last = _span(node)
        refs, attrs = _references(node)
        if isinstance(node, (*_FUNCS, ast.ClassDef)):
            kind = SymbolKind.CLASS if isinstance(node, ast.ClassDef) else SymbolKind.FUNCTION
            symbols.append(
                Symbol(
                    path,
                    node.name,
                    node.name,
                    kind,
                    first,
                    last,
                    _signature(node),
                    _first_line(node),
                    refs,
                    # A class's strings are its members' (each member keeps its own).
                    () if kind is SymbolKind.CLASS else string_literals(node),
                    attrs,
                    _decorators(node),
                )
            )
            if isinstance(node, ast.ClassDef):
                symbols.extend(_members(path, node))
            continue
        found = _exports(node)
        if found is not None:
            exports = found
            continue
        for name in _assigned(node):
            if name.startswith("__") and name.endswith("__"):
                continue
            symbols.append(
                Symbol(
                    path,
                    name,
                    name,
                    SymbolKind.CONSTANT,
                    first,
                    last,
                    _signature(node),
                    refs=refs,
                    literals=string_literals(node),
                    attrs=attrs,
                )
            )
    dotted, local = _imports(path, tree)
    return ModuleIndex(
        path=path,
        sha256=sha256,
        symbols=tuple(symbols),
        imports=dotted,
        imported_names=local,
        exports=exports,
        doc=_first_line(tree),
        refs=references(tree),
        lines=lines,
    )


def docstring_node(node: ast.stmt) -> ast.Expr | None:
    """The docstring statement of a function or class (None for other nodes, or without one)."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or not node.body:
        return None
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None
