"""Build a Model from an ``--llm`` spec, route calls by purpose, and stack the wrappers.

Spec syntax (see docs/providers.md)::

    local                                   the embedded model (default)
    local:/path/to/model.gguf               another GGUF file, in-process
    anthropic:claude-sonnet-4-5             Claude (ANTHROPIC_API_KEY)
    openai:gpt-4o-mini                      the OpenAI API (OPENAI_API_KEY)
    openai:qwen2.5-coder@http://localhost:11434/v1   any OpenAI-compatible server
    ollama:qwen2.5-coder  vllm:<model>  lmstudio:<model>  llamacpp:<model>   (default local URLs)
    anthropic:claude-sonnet-4-5,plan=anthropic:claude-haiku-4-5   route by settings.purpose
    scripted:fibonacci                      a scripted demo model (no LLM; coditect.llm.demo)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from coditect.errors import ConfigError
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings
from coditect.llm.budget import Budget, BudgetModel
from coditect.llm.cache import CacheStore, CachingModel
from coditect.llm.ledger import CallContext, Ledger, LedgerModel

__all__ = [
    "COMPAT_API_KEY_ENV",
    "RoutedModel",
    "instrument",
    "model_from_spec",
    "parse_routes",
]

COMPAT_API_KEY_ENV = "CODITECT_LLM_API_KEY"
"""Bearer key sent to ``openai:<model>@<url>`` servers that need one (local ones do not)."""

SPEC_HELP = (
    "expected local, local:<file.gguf>, anthropic:<model>, openai:<model>, "
    "openai:<model>@<base url>, ollama:<model>, vllm:<model>, lmstudio:<model> or "
    "llamacpp:<model>, optionally followed by ,<purpose>=<spec> routes"
)

_LOCAL_SERVERS = {
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "lmstudio": "http://localhost:1234/v1",
    "llamacpp": "http://localhost:8080/v1",
}


class RoutedModel(Model):
    """Sends each call to the model registered for its ``settings.purpose``, else to ``default``.

    Args:
        default: Answers every purpose without a route.
        routes: Purpose (e.g. ``"plan"``) to model.
    """

    def __init__(self, default: Model, routes: Mapping[str, Model]) -> None:
        self.default = default
        self.routes = dict(routes)

    @property
    def name(self) -> str:
        """``routed(<default>;<purpose>=<model>...)``, or the default's name without routes."""
        if not self.routes:
            return self.default.name
        parts = [f"{p}={m.name}" for p, m in sorted(self.routes.items())]
        return f"routed({self.default.name};{';'.join(parts)})"

    @property
    def context_window(self) -> int:
        """The smallest window of the routed models (a prompt may go to any of them)."""
        return min(m.context_window for m in (self.default, *self.routes.values()))

    def count_tokens(self, text: str) -> int:
        """The largest count of the routed models' tokenizers."""
        return max(m.count_tokens(text) for m in (self.default, *self.routes.values()))

    def route(self, settings: ModelSettings | None) -> Model:
        """The model that answers a call with these settings."""
        purpose = settings.purpose if settings is not None else ""
        return self.routes.get(purpose, self.default)

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> ModelResponse:
        """Forward to the routed model (its name is on the response)."""
        return await self.route(settings).request(messages, settings)

    async def aclose(self) -> None:
        """Close each distinct model once."""
        seen: set[int] = set()
        for model in (self.default, *self.routes.values()):
            if id(model) not in seen:
                seen.add(id(model))
                await model.aclose()


def parse_routes(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"default,plan=spec2,review=spec3"`` into the default spec and the routes.

    Raises:
        ConfigError: A route is not ``<purpose>=<spec>`` or a purpose repeats.
    """
    default, *rest = [part.strip() for part in spec.split(",")]
    routes: dict[str, str] = {}
    for part in rest:
        purpose, eq, target = part.partition("=")
        purpose, target = purpose.strip(), target.strip()
        if not eq or not purpose or not target or "=" in target:
            raise ConfigError(f"malformed route {part!r} in --llm {spec!r}", hint=SPEC_HELP)
        if purpose in routes:
            raise ConfigError(f"purpose {purpose!r} routed twice in --llm {spec!r}")
        routes[purpose] = target
    return default, routes


def model_from_spec(spec: str = "local", *, env: Mapping[str, str] | None = None) -> Model:
    """The model an ``--llm`` value names.

    Args:
        spec: See the module docstring; leading/trailing spaces are ignored.
        env: Where API keys are read (defaults to ``os.environ``).

    Raises:
        ConfigError: The spec is malformed, names an unknown provider, or its API key is
            missing (the message names the environment variable).
        ModelUnavailableError: The provider's SDK is not installed.
    """
    env = os.environ if env is None else env
    default_spec, route_specs = parse_routes(spec.strip())
    default = _single(default_spec, env)
    if not route_specs:
        return default
    cache: dict[str, Model] = {default_spec: default}
    routes = {}
    for purpose, target in route_specs.items():
        if target not in cache:
            cache[target] = _single(target, env)
        routes[purpose] = cache[target]
    return RoutedModel(default, routes)


def _single(spec: str, env: Mapping[str, str]) -> Model:
    provider, colon, rest = spec.partition(":")
    builder = _BUILDERS.get(provider.strip().lower())
    if builder is None:
        raise ConfigError(f"unknown LLM provider in --llm {spec!r}", hint=SPEC_HELP)
    if colon and not rest.strip():
        raise ConfigError(f"--llm {spec!r} names no model after {provider!r}", hint=SPEC_HELP)
    if not colon and provider != "local":
        raise ConfigError(f"--llm {spec!r} names no model", hint=SPEC_HELP)
    return builder(rest.strip(), env)


def _local(rest: str, _env: Mapping[str, str]) -> Model:
    from coditect.llm.local import LocalModel

    if not rest:
        return LocalModel()
    path = Path(rest).expanduser()
    if path.suffix != ".gguf":
        raise ConfigError(f"local model {rest!r} is not a .gguf file", hint=SPEC_HELP)
    return LocalModel(model_path=path)


def _anthropic(rest: str, env: Mapping[str, str]) -> Model:
    from coditect.llm.anthropic import API_KEY_ENV, AnthropicModel

    if "@" in rest:
        raise ConfigError(f"anthropic:{rest} takes no @<url>", hint=SPEC_HELP)
    key = env.get(API_KEY_ENV, "")
    if not key:
        raise ConfigError(
            f"--llm anthropic:{rest} needs {API_KEY_ENV}",
            hint=f"export {API_KEY_ENV}=sk-ant-... or use --llm local",
        )
    return AnthropicModel(rest, api_key=key)


def _split_url(rest: str) -> tuple[str, str | None]:
    model, at, url = rest.partition("@")
    if not at:
        return model, None
    if not model or not url.startswith(("http://", "https://")):
        raise ConfigError(f"malformed <model>@<url> {rest!r}", hint=SPEC_HELP)
    return model, url.rstrip("/")


def _openai(rest: str, env: Mapping[str, str]) -> Model:
    from coditect.llm.openai_compat import OPENAI_API_KEY_ENV, OpenAICompatModel, Provider

    model, url = _split_url(rest)
    if url is None:
        key = env.get(OPENAI_API_KEY_ENV, "")
        if not key:
            raise ConfigError(
                f"--llm openai:{model} needs {OPENAI_API_KEY_ENV}",
                hint="or name a local server: openai:<model>@http://localhost:11434/v1",
            )
        return OpenAICompatModel(model, provider=Provider.openai(key))
    provider = Provider(
        base_url=url, api_key=env.get(COMPAT_API_KEY_ENV) or None, key_env=COMPAT_API_KEY_ENV
    )
    return OpenAICompatModel(model, provider=provider)


def _local_server(kind: str) -> Callable[[str, Mapping[str, str]], Model]:
    def build(rest: str, env: Mapping[str, str]) -> Model:
        model, url = _split_url(rest)
        return _openai(f"{model}@{url or _LOCAL_SERVERS[kind]}", env)

    return build


def _scripted(rest: str, _env: Mapping[str, str]) -> Model:
    from coditect.llm.demo import DEMO_MODELS

    make = DEMO_MODELS.get(rest)
    if make is None:
        raise ConfigError(
            f"unknown scripted model {rest!r}", hint=f"scripted models: {', '.join(DEMO_MODELS)}"
        )
    return make()


_BUILDERS: dict[str, Callable[[str, Mapping[str, str]], Model]] = {
    "local": _local,
    "scripted": _scripted,
    "anthropic": _anthropic,
    "openai": _openai,
    **{kind: _local_server(kind) for kind in _LOCAL_SERVERS},
}


def instrument(
    model: Model,
    *,
    ledger: Ledger | None = None,
    context: CallContext | None = None,
    budget: Budget | None = None,
    cache: CacheStore | None = None,
) -> Model:
    """Stack the cross-cutting wrappers in the order that makes them agree.

    ``LedgerModel(CachingModel(BudgetModel(model)))``: the ledger sees every call, cache hits
    included (``reused=True``, zero tokens); a cache hit never touches the budget; the budget
    guards only calls that reach the provider. Each wrapper is skipped when its argument is None.
    """
    if budget is not None:
        model = BudgetModel(model, budget)
    if cache is not None:
        model = CachingModel(model, cache)
    if ledger is not None:
        model = LedgerModel(model, ledger, context=context or CallContext())
    return model
