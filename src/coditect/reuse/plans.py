"""Plan reuse: requests that mean the same thing get the same plan and one canonical request.

A request is matched to an earlier successful one first by its normal form
(:func:`~coditect.reuse.normalize.normalize_request`), then, if the ``semantic`` extra is
installed, by the cosine similarity of sentence embeddings (at least ``threshold``). A hit gives the
earlier plan and the earlier request's wording, which the mission then uses as its canonical request
so that the task keys downstream match too. A reused plan is validated against the current world
model; an invalid one is ignored and the mission plans afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from coditect.domain.graph import TaskGraph
from coditect.domain.tasks import Intent, TaskSpec
from coditect.errors import PlanError
from coditect.reuse.keys import digest
from coditect.reuse.normalize import normalize_request
from coditect.reuse.semantic import Embedder, cosine
from coditect.reuse.store import ReuseStore
from coditect.taskqueue.world_model import WorldModel

__all__ = ["DEFAULT_THRESHOLD", "PlanHit", "PlanReuse", "StoredPlan", "check_plan"]

#: Cosine similarity above which two requests are taken to mean the same thing (tuned on
#: examples/paraphrases.txt against examples/requests.txt, see docs/reuse.md).
DEFAULT_THRESHOLD = 0.87


class StoredPlan(BaseModel):
    """A plan that led to a successful mission."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request: str
    normalized: str
    tasks: list[TaskSpec]
    embedding: list[float] | None = None
    source: str = ""


@dataclass(frozen=True)
class PlanHit:
    """A reusable plan found for a request.

    Attributes:
        request: The canonical request (the wording of the mission that made the plan).
        match: ``"normalized"`` or ``"semantic"``.
        score: 1.0 for a normalised match, else the cosine similarity.
    """

    request: str
    graph: TaskGraph
    match: str
    score: float


def _key(normalized: str) -> str:
    return "plan:" + digest(normalized)


def check_plan(graph: TaskGraph, world: WorldModel) -> str:
    """Why ``graph`` cannot run on ``world`` ("" when it can)."""
    for task in graph:
        for path in task.target_files:
            if path in world:
                continue
            if task.intent is Intent.WRITE_CODE:
                return f"{task.id} targets {path}, which does not exist any more"
            parent = path.rpartition("/")[0]
            if parent and not any(p.startswith(parent + "/") for p in world.files()):
                return f"{task.id} targets {path}, whose folder does not exist"
    return ""


class PlanReuse:
    """Finds and remembers plans.

    The embedder is only loaded when a request has no normalised match but other plans exist,
    so a process that never needs a semantic match never imports torch.

    Args:
        store: Where plans live.
        embedder: A sentence embedder, or a function that loads one (None: normalised only).
        threshold: Smallest cosine similarity of a semantic match.
        validate: Checks a stored plan before it is reused (the planner's own validation, given
            by the composition root; the default checks only that it is a DAG).
    """

    def __init__(
        self,
        store: ReuseStore,
        *,
        embedder: Embedder | Callable[[], Embedder | None] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        validate: Callable[[Sequence[TaskSpec]], TaskGraph] = TaskGraph,
    ) -> None:
        self.store = store
        self.validate = validate
        self._embedder = embedder
        self.threshold = threshold
        self._vectors: dict[str, list[float]] = {}

    @property
    def embedder(self) -> Embedder | None:
        """The sentence embedder, loaded on first use."""
        if callable(self._embedder) and not hasattr(self._embedder, "embed"):
            self._embedder = self._embedder()
        return self._embedder

    def _vector(self, text: str, embedder: Embedder) -> list[float]:
        if text not in self._vectors:
            self._vectors[text] = embedder.embed([text])[0]
        return self._vectors[text]

    async def lookup(self, request: str, world: WorldModel) -> PlanHit | None:
        """A valid earlier plan for ``request``, or None."""
        normalized = normalize_request(request)
        text = await self.store.get(_key(normalized))
        candidates: list[tuple[StoredPlan, str, float]] = []
        if text is not None:
            candidates.append((StoredPlan.model_validate_json(text), "normalized", 1.0))
        others = []
        if not candidates and self._embedder is not None:
            others = [StoredPlan.model_validate_json(v) for _, v in await self.store.items("plan:")]
            others = [p for p in others if p.normalized != normalized]
        embedder = self.embedder if others else None
        if embedder is not None:
            vector = self._vector(request, embedder)
            scored = []
            for plan in others:
                theirs = plan.embedding or self._vector(plan.request, embedder)
                scored.append((plan, "semantic", cosine(vector, theirs)))
            scored.sort(key=lambda c: -c[2])
            candidates += [c for c in scored if c[2] >= self.threshold]
        for plan, match, score in candidates:
            try:
                graph = self.validate(plan.tasks)
            except PlanError:
                continue
            if check_plan(graph, world):
                continue
            return PlanHit(request=plan.request, graph=graph, match=match, score=round(score, 4))
        return None

    async def remember(self, request: str, graph: TaskGraph, *, source: str = "") -> None:
        """Store the plan of a successful mission under ``request``'s normal form."""
        normalized = normalize_request(request)
        embedding = self._vectors.get(request)
        plan = StoredPlan(
            request=request,
            normalized=normalized,
            tasks=list(graph),
            embedding=embedding,
            source=source,
        )
        await self.store.put(_key(normalized), plan.model_dump_json())
