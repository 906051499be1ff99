"""The Coder agent: asks the model for new or changed definitions and merges them into one file.

One generation = one model call; its answer is extracted, merged into the target file and checked
statically (compiles, imports resolve, names are bound, a test file has tests). An answer that
fails is sent back with the reason, up to ``max_generations`` calls; then the task fails with an
:class:`~coditect.errors.AgentError` that says what was wrong with the model's output.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from coditect.agents.base import Agent, AgentContext, RetryPolicy
from coditect.agents.candidates import (
    CandidateSettings,
    CheckCode,
    checks_for,
    run_checks,
    selection_note,
    test_files_of,
)
from coditect.agents.codejob import CodeJob, build_job, sha256_text, write_atomic
from coditect.agents.codemerge import (
    MergeError,
    MergeResult,
    identical_definitions,
    merge_source,
)
from coditect.agents.doctests import keep_docstrings, with_examples_tests
from coditect.agents.extract import cap_asserts, extract_code, salvage_truncated
from coditect.agents.fixups import auto_import, drop_foreign_tests, unshadow_imports
from coditect.agents.prompts import (
    CODE_SYSTEM,
    TESTS_SYSTEM,
    code_prompt,
    rejected_prompt,
    tests_prompt,
)
from coditect.agents.selection import Selection, select
from coditect.agents.validation import ProjectView, check_source, module_name
from coditect.domain.events import AgentAct, AgentLearn, AgentThink
from coditect.domain.results import CodeChange, FileEdit
from coditect.domain.tasks import Intent
from coditect.errors import AgentError, CoditectError
from coditect.llm.base import Message, ModelResponse, ModelSettings

__all__ = ["MAX_ASSERTS_PER_TEST", "MAX_TESTS_PER_ANSWER", "CoderAgent"]

#: Asserts kept per generated test function (see :func:`~coditect.agents.extract.cap_asserts`).
MAX_ASSERTS_PER_TEST = 5
#: Test functions kept from one answer (the first ones; later ones are the least reliable).
MAX_TESTS_PER_ANSWER = 5
_MAX_ECHO_CHARS = 1200
_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Rejected(Exception):
    """An answer that cannot be used; the message goes back to the model."""


class _Unchanged(_Rejected):
    """An answer identical to the current code."""


class CoderAgent(Agent):
    """Writes code (intent ``write_code``) or tests (``write_tests``) into one file with the model.

    Args:
        max_generations: Model calls per task, the first one included.
        max_tokens: Output limit per call for code (the answer holds only new or changed
            definitions).
        max_test_tokens: Output limit per call for tests (a runaway list of asserts is cut
            there and salvaged).
        retry: Backoff for retryable errors (a model that is briefly unavailable).
        candidates: How many code candidates to sample when the first answer does not pass
            the evidence (docstring examples, earlier tests); see
            :mod:`coditect.agents.candidates`. ``CandidateSettings(n=1)`` never samples.
    """

    name = "coder"
    capabilities = frozenset({"code"})

    def __init__(
        self,
        *,
        max_generations: int = 3,
        max_tokens: int = 400,
        max_test_tokens: int = 200,
        retry: RetryPolicy | None = None,
        candidates: CandidateSettings | None = None,
    ) -> None:
        super().__init__(retry=retry)
        self.candidates = candidates or CandidateSettings()
        self.max_generations = max_generations
        self.max_tokens = max_tokens
        self.max_test_tokens = max_test_tokens

    async def execute(self, ctx: AgentContext) -> CodeChange:
        """Generate, merge, check and write; returns the :class:`CodeChange`.

        Raises:
            AgentError: Not a coding task, no target file, or no usable answer after
                ``max_generations`` calls (not retryable).
            ModelError: The model call failed (retried by :meth:`run` when retryable).
        """
        if ctx.task.intent not in (Intent.WRITE_CODE, Intent.WRITE_TESTS):
            raise AgentError(f"the coder cannot do a {ctx.task.intent.value} task")
        job = build_job(ctx)
        messages = [
            Message(role="system", content=TESTS_SYSTEM if job.is_tests else CODE_SYSTEM),
            Message(role="user", content=_user_prompt(ctx, job)),
        ]
        errors: list[str] = []
        rejected: set[str] = set()
        for generation in range(1, self.max_generations + 1):
            await self._think(ctx, job, generation, messages)
            response = await self._ask(ctx, messages)
            try:
                merged = self._merge(ctx, job, response)
            except _Rejected as exc:
                if isinstance(exc, _Unchanged) and job.failures:
                    # The model defends the current code (or tests) against the failures:
                    # evidence, not a failure. Code is weighed with other candidates; tests
                    # are kept, and the mission's outcome reports the disagreement.
                    await self._generated(ctx, response, "unchanged: kept as it is", ok=True)
                    if job.is_tests:
                        return CodeChange(
                            generations=generation,
                            summary=f"{job.path}: the model keeps these tests as they are",
                        )
                    return await self._pick(ctx, job, messages, None, generation)
                errors.append(str(exc))
                await self._generated(ctx, response, f"rejected: {exc}", ok=False)
                reason = str(exc)
                if response.text.strip() in rejected:
                    # At temperature 0 the same conversation gives the same answer: change it.
                    reason += " You gave this same answer before; take a different approach."
                rejected.add(response.text.strip())
                messages = [
                    *messages[:2],
                    Message(role="assistant", content=_clip(response.text)),
                    Message(role="user", content=rejected_prompt(reason)),
                ]
                continue
            await self._generated(ctx, response, f"usable: {_changes(merged)}", ok=True)
            if errors:
                await ctx.emit(
                    AgentLearn(
                        mission_id=ctx.mission_id,
                        task_id=ctx.task.id,
                        agent=self.name,
                        lesson=f"answer for {job.path} fixed after: {errors[-1]}",
                    )
                )
            if not job.is_tests:
                return await self._pick(ctx, job, messages, merged, generation)
            return await self._write(ctx, job, merged, generation)
        raise AgentError(
            f"the model gave no usable code for {job.path} in {self.max_generations} generation(s): "
            + "; ".join(f"#{i + 1}: {e}" for i, e in enumerate(errors)),
            retryable=False,
        )

    async def _think(
        self, ctx: AgentContext, job: CodeJob, generation: int, messages: list[Message]
    ) -> None:
        what = "tests for " + ", ".join(job.subject_names) if job.is_tests else "code"
        chars = sum(len(m.content) for m in messages)
        await ctx.emit(
            AgentThink(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                text=f"generation {generation}: asking {ctx.model.name} for {what} in {job.path} "
                f"({chars} prompt chars{', with failing tests' if job.failures else ''})",
            )
        )

    async def _generated(
        self, ctx: AgentContext, response: ModelResponse, detail: str, *, ok: bool
    ) -> None:
        await ctx.emit(
            AgentAct(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                action="generate",
                ok=ok,
                detail=detail,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                duration_s=response.latency_s,
            )
        )

    async def _ask(self, ctx: AgentContext, messages: list[Message]) -> ModelResponse:
        tests = ctx.task.intent is Intent.WRITE_TESTS
        settings = ModelSettings(
            max_tokens=self.max_test_tokens if tests else self.max_tokens,
            temperature=0.0,
            purpose="tests" if tests else "code",
        )
        return await ctx.model.request(messages, settings)

    def _merge(self, ctx: AgentContext, job: CodeJob, response: ModelResponse) -> MergeResult:
        try:
            code = extract_code(response.text)
            if job.is_tests and response.finish_reason == "length":
                code = salvage_truncated(code)
            elif response.finish_reason == "length":
                raise MergeError(
                    "the answer was cut off (too long): write only the new or changed code"
                )
            code = (
                cap_asserts(
                    code,
                    MAX_ASSERTS_PER_TEST,
                    max_tests=MAX_TESTS_PER_ANSWER,
                    unchanged=identical_definitions(job.original, code),
                )
                if job.is_tests
                else drop_foreign_tests(code)
            )
            code = unshadow_imports(code)
            merged = merge_source(job.original, code, self_module=job.self_module)
            if not job.is_tests and merged.replaced:
                kept = keep_docstrings(job.original, merged.source, merged.replaced)
                merged = replace(merged, source=kept)
            merged = auto_import(merged, job, ctx.workspace)
            if job.is_tests and job.subject_path:
                subject = ctx.workspace / job.subject_path
                merged = with_examples_tests(
                    merged,
                    subject_source=subject.read_text("utf-8") if subject.is_file() else "",
                    subject_module=module_name(job.subject_path),
                    names=tuple(n for n in job.subject_names if n not in _added_by_mission(ctx)),
                    self_module=job.self_module,
                )
        except MergeError as exc:
            raise _Rejected(str(exc)) from exc
        if not (merged.added or merged.replaced):
            same = ", ".join(merged.unchanged) or "the file"
            raise _Unchanged(
                f"your code is the same as the current {same}, nothing changed. "
                f"Change it to do this: {ctx.request.strip()}"
            )
        if job.is_tests and not any(
            n.startswith("test") for n in (*merged.added, *merged.replaced)
        ):
            raise _Rejected(f"the answer defines no test function (def test_...) for {job.path}")
        view = ProjectView(ctx.workspace, {job.path: merged.source})
        problems = check_source(merged.source, path=job.path, view=view, require_tests=job.is_tests)
        if problems:
            raise _Rejected("; ".join(problems))
        return merged

    async def _pick(
        self,
        ctx: AgentContext,
        job: CodeJob,
        messages: list[Message],
        first: MergeResult | None,
        generation: int,
    ) -> CodeChange:
        """Check the answer against the evidence; sample more candidates when it falls short.

        ``first`` None means the model answered with the current code unchanged (a repair
        round); the current code is then a candidate like any other.
        """
        pool: list[MergeResult | None] = []
        if job.failures and job.original is not None:
            pool.append(None)  # the current code, first: it wins ties
        if first is not None:
            pool.append(first)
        selection = await self._select(ctx, job, pool)
        extra = self.candidates.n - 1
        if extra > 0 and selection is not None and not selection.verified:
            pool.extend(await self._sample(ctx, job, messages, extra))
            selection = await self._select(ctx, job, pool) or selection
        chosen = pool[selection.index] if selection is not None else first
        note = selection_note(selection, len(pool))
        if note:
            await ctx.emit(
                AgentThink(
                    mission_id=ctx.mission_id, task_id=ctx.task.id, agent=self.name, text=note
                )
            )
        if chosen is None:
            return CodeChange(
                generations=generation, summary=f"{job.path}: the current code is kept; {note}"
            )
        change = await self._write(ctx, job, chosen, generation)
        if not note:
            return change
        return change.model_copy(update={"summary": f"{change.summary}; {note}"})

    async def _select(
        self, ctx: AgentContext, job: CodeJob, pool: list[MergeResult | None]
    ) -> Selection | None:
        checks = self._checks(ctx, job, pool)
        if not checks or not pool:
            return None
        sources = [m.source if m is not None else job.original or "" for m in pool]
        started = time.monotonic()
        try:
            results = await run_checks(
                ctx.sandbox,
                ctx.workspace,
                module=job.self_module,
                path=job.path,
                candidates=sources,
                checks=checks,
                check_timeout_s=self.candidates.check_timeout_s,
            )
        except CoditectError:
            results = None
        await ctx.emit(
            AgentAct(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                action="check_candidates",
                ok=results is not None,
                detail=f"{len(sources)} candidate(s) x {len(checks)} check(s) in one sandbox run"
                + ("" if results is not None else ": the run gave no result"),
                duration_s=time.monotonic() - started,
            )
        )
        if results is None:
            return None  # the sandbox could not run the checks: no evidence either way
        return select(results, [c.check for c in checks])

    @staticmethod
    def _checks(ctx: AgentContext, job: CodeJob, pool: list[MergeResult | None]) -> list[CheckCode]:
        names = {n for m in pool if m is not None for n in (*m.added, *m.replaced)}
        names |= set(_WORDS.findall(f"{ctx.request} {ctx.task.description}"))
        names -= _added_by_mission(ctx)  # their docstrings are the model's, not the user's
        test_files = []
        if job.failures:
            for rel in test_files_of(ctx.upstream.tests, ctx.workspace):
                test_files.append((rel, (ctx.workspace / rel).read_text("utf-8", "replace")))
        return checks_for(
            module=job.self_module,
            source=job.original or "",
            names=sorted(names),
            test_files=test_files,
        )

    async def _sample(
        self, ctx: AgentContext, job: CodeJob, messages: list[Message], count: int
    ) -> list[MergeResult | None]:
        """``count`` more answers to the same messages (same prompt: llama.cpp reuses it)."""
        out: list[MergeResult | None] = []
        for i in range(count):
            settings = ModelSettings(
                max_tokens=self.max_tokens,
                temperature=self.candidates.temperature,
                purpose="code",
                seed=1000 * ctx.attempt + i + 1,
            )
            response = await ctx.model.request(messages, settings)
            try:
                out.append(self._merge(ctx, job, response))
            except _Unchanged:
                if job.failures:
                    out.append(None)  # one more vote for the current code
            except _Rejected as exc:
                await self._generated(ctx, response, f"candidate rejected: {exc}", ok=False)
                continue
            await self._generated(ctx, response, f"candidate {i + 2}", ok=True)
        return out

    async def _write(
        self, ctx: AgentContext, job: CodeJob, merged: MergeResult, generation: int
    ) -> CodeChange:
        started = time.monotonic()
        write_atomic(ctx.workspace / job.path, merged.source)
        edit = FileEdit(
            path=job.path,
            before_sha256=sha256_text(job.original),
            after_sha256=sha256_text(merged.source),
            added_symbols=merged.added,
            replaced_symbols=merged.replaced,
        )
        summary = f"{job.path}: {_changes(merged)} ({generation} generation(s))"
        await ctx.emit(
            AgentAct(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                action="write_file",
                detail=summary,
                duration_s=time.monotonic() - started,
            )
        )
        return CodeChange(edits=(edit,), generations=generation, summary=summary)


def _user_prompt(ctx: AgentContext, job: CodeJob) -> str:
    if job.is_tests:
        return tests_prompt(
            request=ctx.request,
            description=ctx.task.description,
            path=job.path,
            source=job.original or "",
            subject=job.subject_text,
            import_line=job.import_line,
            names=job.subject_names,
            failures=job.failures,
        )
    return code_prompt(
        request=ctx.request,
        description=ctx.task.description,
        path=job.path,
        source=job.original or "",
        failures=job.failures,
        notes=job.notes,
    )


def _added_by_mission(ctx: AgentContext) -> set[str]:
    """Definitions an earlier task of this mission created (docstrings a model wrote)."""
    return {n for c in ctx.upstream.code for e in c.edits for n in e.added_symbols}


def _changes(merged: MergeResult) -> str:
    parts = [
        f"added {', '.join(merged.added)}" if merged.added else "",
        f"replaced {', '.join(merged.replaced)}" if merged.replaced else "",
    ]
    return "; ".join(p for p in parts if p)


def _clip(answer: str) -> str:
    """An earlier answer as echoed back in a repair round (a runaway answer is cut short)."""
    return answer if len(answer) <= _MAX_ECHO_CHARS else answer[:_MAX_ECHO_CHARS] + "\n[...]"
