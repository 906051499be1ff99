"""The repository index: symbols, references and localization of requests (pure, ``ast``-based).

- :mod:`~coditect.index.symbols`: one module's definitions, imports, ``__all__`` and references.
- :mod:`~coditect.index.repo`: every module, updated incrementally from file hashes.
- :mod:`~coditect.index.rank`: ranking files and symbols for a request, and the ranked outline.
- :mod:`~coditect.index.context`: prompt context at the level of symbols, within a token budget.
"""

from __future__ import annotations

from coditect.index.rank import (
    Localization,
    RankedFile,
    RankedSymbol,
    closest_names,
    localize,
    outline_lines,
    split_words,
)
from coditect.index.repo import RepoIndex, UnsupportedProjectError, index_directory, python_files
from coditect.index.symbols import ModuleIndex, Symbol, SymbolKind, index_module, module_name

__all__ = [
    "Localization",
    "ModuleIndex",
    "RankedFile",
    "RankedSymbol",
    "RepoIndex",
    "Symbol",
    "SymbolKind",
    "UnsupportedProjectError",
    "closest_names",
    "index_directory",
    "index_module",
    "localize",
    "module_name",
    "outline_lines",
    "python_files",
    "split_words",
]
