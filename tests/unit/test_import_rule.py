"""The composition rule: only ``coditect.runtime`` imports concrete backends (issue 11).

Everything else receives its backends through constructors and sees the interfaces in the
``*/base.py`` modules, so a test swaps in a fake (``bus.memory``, ``state.memory``,
``llm.testing``) by passing it. Checked with ``ast`` over the source tree: every import
counts, at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: The modules that talk to one concrete backend (a server, an SDK, a database).
CONCRETE = frozenset(
    {
        "coditect.bus.jetstream",
        "coditect.bus.workqueue",
        "coditect.llm.anthropic",
        "coditect.llm.local",
        "coditect.llm.openai_compat",
        "coditect.reuse.redis_store",
        "coditect.sandbox.bwrap",
        "coditect.sandbox.docker",
        "coditect.sandbox.subprocess",
        "coditect.sandbox.wasm",
        "coditect.state.redis_counts",
        "coditect.state.redis_locks",
        "coditect.state.redis_world",
        "coditect.state.sql",
    }
)

#: Importers outside ``coditect.runtime`` that may name a concrete backend, and why.
ALLOWED = {
    # Registries: a name or URL in the settings picks the class; runtime calls them.
    ("coditect.llm.registry", "coditect.llm.anthropic"): "the model registry (by name/URL)",
    ("coditect.llm.registry", "coditect.llm.local"): "the model registry (by name/URL)",
    ("coditect.llm.registry", "coditect.llm.openai_compat"): "the model registry (by name/URL)",
    # Public API packages re-export backend classes lazily (PEP 562): importing them loads none.
    ("coditect.llm", "coditect.llm.local"): "lazy re-export of LocalModel",
    ("coditect.sandbox", "coditect.sandbox.subprocess"): "lazy re-export of SubprocessSandbox",
    # CLI commands that are the composition root of their own command.
    ("coditect.cli.main", "coditect.llm.local"): "`coditect model` downloads the model file",
    ("coditect.cli.archive_cmd", "coditect.bus.jetstream"): "`coditect replay --nats` reader",
    ("coditect.cli.ui_cmd", "coditect.bus.jetstream"): "`coditect ui --nats` live events",
    # The archive's JetStream source is itself an adapter: it reads the event stream.
    ("coditect.archive.sources", "coditect.bus.jetstream"): "the archive's NATS source adapter",
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _violations() -> set[tuple[str, str]]:
    found = set()
    for path in SRC.joinpath("coditect").rglob("*.py"):
        importer = _module(path)
        if importer == "coditect.runtime" or importer.startswith("coditect.runtime."):
            continue
        for name in _imports(ast.parse(path.read_text(), filename=str(path))):
            # A backend may build on another (workqueue on jetstream, docker on bwrap).
            if name in CONCRETE and importer not in CONCRETE:
                found.add((importer, name))
    return found


def test_only_the_composition_roots_import_concrete_backends() -> None:
    unexpected = sorted(_violations() - ALLOWED.keys())
    assert not unexpected, (
        "concrete backends imported outside coditect.runtime (take the interface from "
        "*/base.py and let runtime pass the backend in, or add an entry with a reason to "
        f"ALLOWED): {unexpected}"
    )


def test_every_allowed_exception_is_still_needed() -> None:
    stale = sorted(ALLOWED.keys() - _violations())
    assert not stale, f"remove these entries from ALLOWED, nothing imports so any more: {stale}"


def test_the_distributed_services_see_only_interfaces() -> None:
    for name in ("worker", "taskqueue", "orchestrator", "port", "settings"):
        path = SRC / "coditect" / "distributed" / f"{name}.py"
        imported = set(_imports(ast.parse(path.read_text())))
        assert not imported & CONCRETE, (name, sorted(imported & CONCRETE))
        assert not any(n == "redis" or n.startswith(("redis.", "nats")) for n in imported), name
