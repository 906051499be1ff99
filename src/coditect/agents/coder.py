"""The Coder agent: asks the model for new or changed definitions and merges them in place.

One generation = one model call; its answer is extracted, merged into the target file and checked
statically (compiles, imports resolve, names are bound, a test file has tests). An answer that
fails is sent back with the reason, up to ``max_generations`` calls; then the task fails with an
:class:`~coditect.errors.AgentError` that says what was wrong with the model's output.

Every prompt is built against the model's context window and the answer's token limit: a file
too large to show whole is shown as an excerpt around the definitions the request is about
(:func:`~coditect.index.context.file_context`), and a repair round that would not fit drops the
echo of the earlier answer. A prompt that cannot be made to fit is never sent: the task fails.
When the task may also write the package ``__init__.py`` that re-exports from the module, new
public names are exported there (no model call).
"""

from __future__ import annotations

import ast
import hashlib
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from coditect.agents.base import Agent, AgentContext, RetryPolicy
from coditect.agents.baseline import BASELINE_PATH, Baseline, Reproduction
from coditect.agents.candidates import (
    CandidateSettings,
    CheckCode,
    callers_of,
    checks_for,
    existing_test_checks,
    run_checks,
    selection_note,
    test_files_of,
)
from coditect.agents.codejob import (
    CodeJob,
    build_job,
    code_paths,
    read_text_file,
    workspace_index,
    write_atomic,
)
from coditect.agents.codemerge import (
    MergeError,
    MergeResult,
    NothingToMergeError,
    identical_definitions,
    merge_source,
)
from coditect.agents.doctests import keep_docstrings, with_examples_tests
from coditect.agents.extract import (
    cap_asserts,
    drop_cut_definition,
    drop_redefinitions,
    drop_unchecked_last_test,
    extract_code,
    join_spaced_names,
    mid_answer_error,
    salvage_truncated,
)
from coditect.agents.fixups import (
    adopt_methods,
    auto_import,
    drop_foreign_tests,
    drop_stand_ins,
    unshadow_imports,
)
from coditect.agents.importmerge import declare_public, export_names
from coditect.agents.prompts import (
    CODE_SYSTEM,
    TESTS_SYSTEM,
    asks_removal,
    code_prompt,
    examples_failed_block,
    not_reproduced_prompt,
    rejected_prompt,
    tests_prompt,
)
from coditect.agents.recombine import joined_answers
from coditect.agents.reproduce import (
    broke_existing,
    judge_report,
    misfires,
    passing_before,
    reproduce,
    run_reproduction,
)
from coditect.agents.retire import (
    defined,
    follow_removal,
    orphaned_imports,
    package_inits,
    retired_tests,
    users_of,
    without_in_all,
)
from coditect.agents.selection import Selection, select
from coditect.agents.validation import ProjectView, check_source, module_name
from coditect.domain.events import ANSWER_CHARS, AgentAct, AgentLearn, AgentThink
from coditect.domain.paths import is_test_path
from coditect.domain.results import Alternative, CodeChange, FileEdit, TestReport
from coditect.domain.tasks import Intent, is_reproduction
from coditect.errors import AgentError, CoditectError
from coditect.index.context import ContextOverflowError, definitions, file_context
from coditect.index.rank import mentions
from coditect.llm.base import Message, Model, ModelResponse, ModelSettings, prompt_budget

__all__ = ["MAX_ASSERTS_PER_TEST", "MAX_TESTS_PER_ANSWER", "CoderAgent"]

#: Asserts kept per generated test function (see :func:`~coditect.agents.extract.cap_asserts`).
MAX_ASSERTS_PER_TEST = 5
#: Test functions kept from one answer (the first ones; later ones are the least reliable).
MAX_TESTS_PER_ANSWER = 5
_MAX_ECHO_CHARS = 1200
_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REPEATS = 2  # answers in a row that repeat a candidate before sampling stops
# Candidates a code change keeps for later repair rounds (each costs a check run there).
_MAX_ALTERNATIVES = 8
_DEF_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# A project whose whole suite ran in at most this long before the mission: candidates are
# checked against every related test, not only those of the two most related test files.
_FAST_SUITE_S = 10.0


def _first_message(report: TestReport, test_id: str) -> str:
    return next((f.message[:160] for f in report.failures if f.test_id == test_id), "")


class _Rejected(Exception):
    """An answer that cannot be used; the message goes back to the model."""


class _Unchanged(_Rejected):
    """An answer identical to the current code."""


class _EchoCut(_Rejected):
    """A cut-off answer whose complete part repeats the current code (no room is added)."""


class _StillUsed(_Rejected):
    """An answer deletes a definition that other definitions of the file still use."""

    def __init__(self, message: str, users: tuple[str, ...], name: str) -> None:
        super().__init__(message)
        self.users = users
        self.name = name


class _Breaks(_Rejected):
    """The best candidate breaks tests of the project that pass on the unchanged code."""


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
        paths: list[str | None] = [None]
        if ctx.task.intent is Intent.WRITE_CODE:
            paths = list(code_paths(ctx))
        # A bug fix: the tests written before it run first, on the unchanged code.
        ctx, reproduced = await reproduce(ctx, agent=self.name)
        changes: list[CodeChange] = []
        for i, path in enumerate(paths):
            if any(e.path == path for c in changes for e in c.edits):
                continue  # changed already with an earlier file (a removal done there)
            done = "; ".join(c.summary for c in changes)
            job = build_job(ctx, path=path, done=done)
            change = await self._one_file(ctx, job, optional=i > 0)
            if change is not None:
                changes.append(change)
        summary = "; ".join(filter(None, (reproduced, *(c.summary for c in changes))))
        return CodeChange(
            edits=tuple(e for c in changes for e in c.edits),
            generations=sum(c.generations for c in changes),
            summary=summary,
            alternatives=tuple(a for c in changes for a in c.alternatives),
        )

    async def _one_file(
        self, ctx: AgentContext, job: CodeJob, *, optional: bool
    ) -> CodeChange | None:
        """Generate, merge, check and write one file; None when an optional file needs no change.

        Raises:
            AgentError: No usable answer after ``max_generations`` calls, or the prompt cannot
                be made to fit the model's context window (not retryable).
        """
        limit = self._limit(ctx, job)
        budget = prompt_budget(ctx.model, limit)
        system = TESTS_SYSTEM if job.is_tests else CODE_SYSTEM
        try:
            user, editable = _user_prompt(
                ctx, job, budget - ctx.model.count_tokens(system) - _REPAIR_RESERVE
            )
        except ContextOverflowError as exc:
            raise AgentError(f"{job.path}: {exc}", retryable=False) from exc
        job = replace(job, editable=editable)
        messages = [Message(role="system", content=system), Message(role="user", content=user)]
        errors: list[str] = []
        rejected: set[str] = set()
        # A bug's reproduction test must fail on the unchanged code: checked once written.
        check_reproduction = job.is_tests and is_reproduction(ctx.task) and bool(ctx.action.command)
        kept: MergeResult | None = None
        misfired = False
        asked = 0
        for generation in self._generations(ctx, errors):
            asked = generation
            messages = _fit(ctx.model, messages, budget)
            await self._think(ctx, job, generation, messages)
            response = await self._ask(ctx, messages, limit, generation)
            try:
                merged = self._merge(ctx, job, response, optional=optional)
            except _Rejected as exc:
                if isinstance(exc, _Unchanged) and _defensible(ctx, job):
                    return await self._defended(ctx, job, messages, response, generation, limit)
                errors.append(str(exc))
                await self._generated(ctx, response, f"rejected: {exc}", ok=False)
                job, messages, limit = self._retry(
                    ctx, job, (messages, response, exc), rejected, limit
                )
                budget = prompt_budget(ctx.model, limit)
                continue
            if merged is None:
                await self._generated(ctx, response, f"{job.path} needs no change", ok=True)
                return None
            await self._generated(ctx, response, f"usable: {_changes(merged)}", ok=True)
            if errors:
                await self._learned(ctx, job, errors[-1])
            if not job.is_tests:
                picked = await self._picked(ctx, job, messages, merged, generation, limit)
                if isinstance(picked, CodeChange):
                    return picked
                errors.append(picked)  # written, it could only fail the test run: ask again
                messages = _rejected(messages, response, picked, rejected)
                continue
            if not check_reproduction or generation == self.max_generations:
                return await self._last_tests(ctx, job, merged, generation, recheck=misfired)
            change, why, misfired = await self._write_reproduction(ctx, job, merged, generation)
            if why is None:
                return change
            check_reproduction = False  # asked again once; the next answer is kept as it is
            # Written back if no later answer is usable; never tests of code that is not there.
            kept = None if misfired else merged
            messages = [
                *messages[:2],
                Message(role="assistant", content=_clip(response.text)),
                Message(role="user", content=not_reproduced_prompt(why)),
            ]
        if kept is not None or misfired:  # no later answer was usable
            return await self._kept_tests(ctx, job, kept, asked)
        raise AgentError(
            f"the model gave no usable code for {job.path} in {asked} generation(s): "
            + "; ".join(f"#{i + 1}: {e}" for i, e in enumerate(errors)),
            retryable=False,
        )

    def _generations(self, ctx: AgentContext, errors: list[str]) -> Iterator[int]:
        """1 .. ``max_generations``, while the task has time for one more (else says so)."""
        for generation in range(1, self.max_generations + 1):
            if generation > 1 and not ctx.clock.has_room():
                errors.append(_out_of_time(ctx, f"generation {generation}"))
                return
            yield generation

    async def _defended(
        self,
        ctx: AgentContext,
        job: CodeJob,
        messages: list[Message],
        response: ModelResponse,
        generation: int,
        limit: int,
    ) -> CodeChange:
        """The model defends the current code (or tests) against the failures.

        Evidence, not a failure: code is weighed with other candidates; tests are kept, and
        the mission's outcome reports the disagreement.
        """
        await self._generated(ctx, response, "unchanged: kept as it is", ok=True)
        if job.is_tests:
            return CodeChange(
                generations=generation,
                summary=f"{job.path}: the model keeps these tests as they are",
            )
        return await self._pick(ctx, job, messages, None, generation, limit)

    async def _picked(
        self,
        ctx: AgentContext,
        job: CodeJob,
        messages: list[Message],
        merged: MergeResult,
        generation: int,
        limit: int,
    ) -> CodeChange | str:
        """:meth:`_pick` for a usable code answer, or why it must be asked for again."""
        final = generation == self.max_generations
        try:
            return await self._pick(ctx, job, messages, merged, generation, limit, final=final)
        except _Breaks as exc:
            return str(exc)

    async def _learned(self, ctx: AgentContext, job: CodeJob, error: str) -> None:
        await ctx.emit(
            AgentLearn(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                lesson=f"answer for {job.path} fixed after: {error}",
            )
        )

    async def _think(
        self, ctx: AgentContext, job: CodeJob, generation: int, messages: list[Message]
    ) -> None:
        what = "tests for " + ", ".join(job.subject_names) if job.is_tests else "code"
        chars = sum(len(m.content) for m in messages)
        await self._say(
            ctx,
            f"generation {generation}: asking {ctx.model.name} for {what} in {job.path} "
            f"({chars} prompt chars{', with failing tests' if job.failures else ''})",
        )

    async def _say(self, ctx: AgentContext, text: str) -> None:
        """Emit an agent.think event of this task."""
        await ctx.emit(
            AgentThink(mission_id=ctx.mission_id, task_id=ctx.task.id, agent=self.name, text=text)
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
                answer=response.text[:ANSWER_CHARS],
            )
        )

    def _retry(
        self,
        ctx: AgentContext,
        job: CodeJob,
        rejection: tuple[list[Message], ModelResponse, _Rejected],
        rejected: set[str],
        limit: int,
    ) -> tuple[CodeJob, list[Message], int]:
        """The job, conversation and answer limit for the generation after a rejected answer."""
        messages, response, exc = rejection
        wider = _widened(ctx, job, messages[0].content, exc, lambda j: self._limit(ctx, j))
        if wider is not None:  # the model chose code it saw by signature: show it in full
            return wider
        messages = _rejected(messages, response, str(exc), rejected)
        echoed = isinstance(exc, _EchoCut)
        return job, messages, _next_limit(ctx.model, messages, response, job, limit, echoed=echoed)

    def _limit(self, ctx: AgentContext, job: CodeJob) -> int:
        """The output limit of one answer for ``job``.

        An answer rewrites the definitions it changes whole, so the limit for code grows with
        the longest definition in focus (a 150-line function cannot be answered in 400 tokens),
        as far as a third of the model's context window allows.
        """
        if job.is_tests:
            return self.max_test_tokens
        cap = ctx.model.context_window // 3
        needs = (
            int(ctx.model.count_tokens(d) * _ANSWER_SLACK) + _ANSWER_EXTRA
            for d in definitions(job.original or "", job.focus)
        )
        # A definition too long to be rewritten within the cap does not raise the limit: it
        # would only shrink the prompt for nothing.
        return max([self.max_tokens, *(n for n in needs if n <= cap)])

    async def _ask(
        self, ctx: AgentContext, messages: list[Message], limit: int, generation: int = 1
    ) -> ModelResponse:
        """One answer: greedy the first time; a retry after an unusable answer is sampled.

        A small model asked again at temperature 0 tends to give the rejected answer again,
        word for word, whatever the follow-up says; sampling (at the candidates' temperature)
        gives the retry a chance to differ.
        """
        tests = ctx.task.intent is Intent.WRITE_TESTS
        retry = generation > 1
        settings = ModelSettings(
            max_tokens=limit,
            temperature=self.candidates.temperature if retry else 0.0,
            purpose="tests" if tests else "code",
            seed=_seed_base(ctx) + generation if retry else None,
        )
        response = await ctx.model.request(messages, settings)
        ctx.clock.answered(response.latency_s)
        return response

    def _merge(
        self, ctx: AgentContext, job: CodeJob, response: ModelResponse, *, optional: bool = False
    ) -> MergeResult | None:
        if optional and not response.text.strip():
            return None
        try:
            code = _answer_code(job, response)
        except MergeError as exc:
            raise _Rejected(str(exc)) from exc
        except SyntaxError as exc:
            raise _Rejected(_not_python(exc)) from exc
        return self._merge_code(ctx, job, code, response, optional=optional)

    def _merge_code(
        self,
        ctx: AgentContext,
        job: CodeJob,
        code: str,
        response: ModelResponse | None,
        *,
        optional: bool = False,
    ) -> MergeResult | None:
        """Merge answer ``code`` into ``job``'s file and check it statically.

        ``response`` is the answer it came from (None for a joined candidate, whose code
        comes from answers already merged).
        """
        try:
            if job.is_tests:
                code = _new_tests_only(ctx, job, code)
            else:
                code = _seen_only(job, code)
            merged = _merged(ctx, job, code)
            if not job.is_tests and merged.replaced:
                merged = _docstrings_kept(job, merged)
            if not job.is_tests and merged.added:
                declared, _ = declare_public(merged.source, _public(merged))
                merged = replace(merged, source=declared)
            merged = auto_import(merged, job, ctx.workspace)
            if job.is_tests and job.subject_path:
                subject = ctx.workspace / job.subject_path
                subject_source = subject.read_text("utf-8") if subject.is_file() else ""
                merged = with_examples_tests(
                    merged,
                    subject_source=subject_source,
                    subject_module=module_name(job.subject_path),
                    names=tuple(n for n in job.subject_names if n not in _added_by_mission(ctx)),
                    self_module=job.self_module,
                    request=ctx.request,
                    request_names=_functions_of(subject_source, job.subject_names),
                )
        except MergeError as exc:
            raise _Rejected(str(exc)) from exc
        except SyntaxError as exc:  # an answer that is not Python is rejected, never a crash
            raise _Rejected(_not_python(exc)) from exc
        if merged.deleted:
            merged = _removal(ctx, job, merged)
        if not (merged.added or merged.replaced or merged.deleted):
            if response is None:
                raise _Unchanged("the joined code changes nothing")
            _no_change(ctx, job, merged, response, optional=optional)
            return None  # a further file of the task that this change does not need
        if job.is_tests and not _adds_tests(merged):
            raise _Rejected(f"the answer defines no test function (def test_...) for {job.path}")
        _new_names_written(job, merged)
        view = ProjectView(ctx.workspace, {job.path: merged.source})
        problems = check_source(
            merged.source,
            path=job.path,
            view=view,
            require_tests=job.is_tests,
            before=job.original,
        )
        if problems:
            raise _Rejected("; ".join(problems))
        return replace(merged, code=code)

    async def _pick(
        self,
        ctx: AgentContext,
        job: CodeJob,
        messages: list[Message],
        first: MergeResult | None,
        generation: int,
        limit: int,
        *,
        final: bool = True,
    ) -> CodeChange:
        """Check the answer against the evidence; sample more candidates when it falls short.

        ``first`` None means the model answered with the current code unchanged (a repair
        round); the current code is then a candidate like any other. It is one only when this
        mission wrote it (:func:`_defensible`): the project's code as it was is what the task
        is to change, and keeping it would be no change at all.

        Raises:
            _Breaks: Not ``final``, the file is as the project had it, and every candidate
                breaks tests of the project that pass on it.
        """
        pool: list[MergeResult | None] = []
        if _defensible(ctx, job):
            pool.append(None)  # the current code, first: it wins ties
        if first is not None:
            pool.append(first)
        start = len(pool)
        pool.extend(self._earlier(ctx, job))
        earlier = range(start, len(pool))  # kept by the earlier tasks' changes already
        selection = await self._select(ctx, job, pool)
        extra = self.candidates.n - 1
        if extra > 0 and selection is not None and not selection.verified:
            more = await self._sample(ctx, job, messages, extra, pool, limit)
            if more:  # nothing new: the checks of the pool have run already
                pool.extend(more)
                selection = await self._select(ctx, job, pool) or selection
            selection = await self._joined(ctx, job, pool, selection)
            selection = await self._told(ctx, job, messages[:2], pool, selection, limit)
        chosen = pool[selection.index] if selection is not None else first
        if not final and selection is not None and selection.broken_tests and _untouched(ctx, job):
            raise _Breaks(
                "the change breaks tests of the project that passed before: "
                + ", ".join(selection.broken_tests[:3])
                + ". Change only what the request needs and keep what these tests check working."
            )
        note = selection_note(selection, len(pool))
        if note:
            await self._say(ctx, note)
        others = tuple(
            Alternative(path=job.path, code=m.code)
            for i, m in enumerate(pool)
            if m is not None and m.code and i not in earlier and m is not chosen
        )[-_MAX_ALTERNATIVES:]
        if chosen is None:
            return CodeChange(
                generations=generation,
                summary=f"{job.path}: the current code is kept; {note}",
                alternatives=others,
            )
        change = await self._write(ctx, job, chosen, generation)
        summary = f"{change.summary}; {note}" if note else change.summary
        return change.model_copy(update={"summary": summary, "alternatives": others})

    def _earlier(self, ctx: AgentContext, job: CodeJob) -> list[MergeResult | None]:
        """The candidates earlier tasks of the mission checked for ``job.path`` but did not write.

        Each is merged onto the file as it is now; one that comes out as the current code is
        one more vote for it (when the current code is a candidate). The tests the mission
        wrote since then are checks now, so the choice among every sample of the mission is
        CodeT's dual agreement, at no model cost; the answers of a repair round, which shows
        the current code, mostly repeat it. Not when the task has no time for a check run.
        """
        codes = [a.code for c in ctx.upstream.code for a in c.alternatives if a.path == job.path]
        if not codes or job.is_tests or not ctx.clock.has_room(answers=0):
            return []
        out: list[MergeResult | None] = []
        for code in codes[-_MAX_ALTERNATIVES:]:
            try:
                merged = self._merge_code(ctx, job, code, None)
            except _Unchanged:
                merged = None
            except _Rejected:
                continue  # e.g. it no longer fits the file as it is now
            if merged is not None or _defensible(ctx, job):
                out.append(merged)
        return out

    async def _joined(
        self,
        ctx: AgentContext,
        job: CodeJob,
        pool: list[MergeResult | None],
        selection: Selection,
    ) -> Selection:
        """Add candidates that join two answers' changes to different definitions; choose again.

        Only when no candidate passes every check and the task has time for one more check
        run (:mod:`.recombine`).
        """
        if selection.verified or not ctx.clock.has_room(answers=0):
            return selection
        sources = {m.source for m in pool if m is not None}
        made = []
        for joined in joined_answers(
            job.original, pool, first=selection.index, limit=self.candidates.n
        ):
            try:
                merged = self._merge_code(ctx, job, joined.code, None)
            except _Rejected:
                continue  # e.g. the joined definitions clash: not a candidate
            if merged is None or merged.source in sources:
                continue
            sources.add(merged.source)
            pool.append(merged)
            made.append(
                f"candidate {len(pool)}: candidate {joined.base + 1} with "
                f"{', '.join(joined.taken)} from candidate {joined.other + 1}"
            )
        if not made:
            return selection
        await self._say(ctx, "joined candidates: " + "; ".join(made))
        return await self._select(ctx, job, pool) or selection

    async def _told(
        self,
        ctx: AgentContext,
        job: CodeJob,
        task: list[Message],
        pool: list[MergeResult | None],
        selection: Selection,
        limit: int,
    ) -> Selection:
        """More answers, told what the chosen candidate did on the user's examples it fails.

        Only when no candidate passes every example of the user's (docstring or request), the
        task has time, and the file is as the project has it: the first prompt of the task
        (``task``) with the failing examples and what the chosen candidate gave on them,
        without the candidate itself (shown its own answer, a small model repeats it). The
        examples are the user's, so this feedback is right, unlike a generated test's
        (Olausson et al., 2023: repair helps as much as its feedback is right). Not in a
        repair round: its prompt shows the mission's code and the failing tests already.
        """
        if not (selection.failed_examples and _untouched(ctx, job) and ctx.clock.has_room()):
            return selection
        why = dict(selection.why)
        block = examples_failed_block([(e, why.get(e, "")) for e in selection.failed_examples])
        told = [task[0], Message(role="user", content=f"{task[-1].content}\n{block}")]
        if sum(ctx.model.count_tokens(m.content) for m in told) > prompt_budget(ctx.model, limit):
            return selection
        await self._say(ctx, "sampling again, told which examples fail: " + block)
        more = await self._sample(ctx, job, told, self.candidates.n - 1, pool, limit, told=True)
        if not more:
            return selection
        pool.extend(more)
        return await self._select(ctx, job, pool) or selection

    async def _select(
        self, ctx: AgentContext, job: CodeJob, pool: list[MergeResult | None]
    ) -> Selection | None:
        checks = self._checks(ctx, job, pool)
        if not checks or not pool:
            return None
        # Samples that gave the same code are votes for one candidate: it is checked once.
        keys = [m.source if m is not None else job.original or "" for m in pool]
        sources = list(dict.fromkeys(keys))
        rows = [sources.index(k) for k in keys]
        # The project's tests that already fail on the code as the project has it say nothing
        # about a candidate: the unchanged code runs too, and such tests are left out.
        reference = (
            bool(job.original) and _untouched(ctx, job) and any(c.check.existing for c in checks)
        )
        if reference:
            sources.append(job.original or "")
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
                reference=reference,
            )
        except CoditectError:
            results = None
        ctx.clock.checked(time.monotonic() - started)
        await ctx.emit(
            AgentAct(
                mission_id=ctx.mission_id,
                task_id=ctx.task.id,
                agent=self.name,
                action="check_candidates",
                ok=results is not None,
                detail=f"{len(pool)} candidate(s)"
                + (f" ({len(set(rows))} distinct)" if len(set(rows)) < len(pool) else "")
                + (" and the unchanged code" if reference else "")
                + f" x {len(checks)} check(s) in one sandbox run"
                + ("" if results is not None else ": the run gave no result"),
                duration_s=time.monotonic() - started,
            )
        )
        if results is None:
            return None  # the sandbox could not run the checks: no evidence either way
        if reference:
            before = results.pop()
            keep = [i for i, c in enumerate(checks) if before[i] is True or not c.check.existing]
            checks = [checks[i] for i in keep]
            results = [[row[i] for i in keep] for row in results]
            if not checks:
                return None
        return select([results[k] for k in rows], [c.check for c in checks])

    @staticmethod
    def _checks(ctx: AgentContext, job: CodeJob, pool: list[MergeResult | None]) -> list[CheckCode]:
        answered = {n for m in pool if m is not None for n in (*m.added, *m.replaced)}
        names = answered | set(_WORDS.findall(f"{ctx.request} {ctx.task.description}"))
        # The request's examples hold for new functions too, but only for functions of this
        # module (an import of another module's function would fail every candidate alike).
        request_names = sorted(
            {n for n in answered if "." not in n}
            | set(_functions_of(job.original or "", sorted(names)))
        )
        names -= _added_by_mission(ctx)  # their docstrings are the model's, not the user's
        test_files = []
        if job.failures:
            for rel in test_files_of(ctx.upstream.tests, ctx.workspace):
                test_files.append((rel, (ctx.workspace / rel).read_text("utf-8", "replace")))
        checks = checks_for(
            module=job.self_module,
            source=job.original or "",
            names=sorted(names),
            test_files=test_files,
            request=ctx.request,
            request_names=request_names,
        )
        return checks + _project_test_checks(ctx, job, pool)

    async def _sample(
        self,
        ctx: AgentContext,
        job: CodeJob,
        messages: list[Message],
        count: int,
        pool: list[MergeResult | None],
        limit: int,
        *,
        told: bool = False,
    ) -> list[MergeResult | None]:
        """Up to ``count`` more answers to the same messages (same prompt: llama.cpp reuses it).

        ``told``: the round of :meth:`_told` (its own seeds).

        Sampling stops early when two answers in a row repeat a candidate already in ``pool``
        (or sampled here): a model that keeps giving the same answer (greedy sampling, or one it
        is sure of) adds no new candidate, only cost. It stops too when one more answer and the
        check run of the candidates would likely not end before the task's deadline: the
        candidates so far are then chosen from.
        """
        out: list[MergeResult | None] = []
        seen = {m.source if m is not None else None for m in pool}
        repeats = 0
        for i in range(count):
            why = (
                _out_of_time(ctx, "another answer")
                if not ctx.clock.has_room()
                else f"the last {repeats} repeated earlier candidates"
                if repeats >= _MAX_REPEATS
                else ""
            )
            if why:
                await self._say(ctx, f"sampling stopped after {i} of {count} more answers: {why}")
                break
            settings = ModelSettings(
                max_tokens=limit,
                temperature=self.candidates.temperature,
                purpose="code",
                seed=_seed_base(ctx) + 1000 * ctx.attempt + 100 * told + i + 1,
            )
            response = await ctx.model.request(messages, settings)
            ctx.clock.answered(response.latency_s)
            try:
                merged: MergeResult | None = self._merge(ctx, job, response)
            except _Unchanged:
                merged = None  # with failures to repair: one more vote for the current code
            except _Rejected as exc:
                await self._generated(ctx, response, f"candidate rejected: {exc}", ok=False)
                continue
            await self._generated(ctx, response, f"candidate {len(pool) + len(out) + 1}", ok=True)
            key = merged.source if merged is not None else None
            repeats = repeats + 1 if key in seen else 0
            seen.add(key)
            if merged is not None or _defensible(ctx, job):
                out.append(merged)
        return out

    async def _last_tests(
        self,
        ctx: AgentContext,
        job: CodeJob,
        merged: MergeResult,
        generation: int,
        *,
        recheck: bool,
    ) -> CodeChange | None:
        """Write the last answer's tests.

        After tests that called code that does not exist (``recheck``), only when these do not.
        """
        if not recheck:
            return await self._write(ctx, job, merged, generation)
        change, why, again = await self._write_reproduction(ctx, job, merged, generation)
        if why is None:
            return change
        if not again:  # no reproduction, but tests of the code as it is: kept as they are
            return await self._write(ctx, job, merged, generation)
        await self._no_reproduction(ctx)
        return None

    async def _kept_tests(
        self, ctx: AgentContext, job: CodeJob, kept: MergeResult | None, generation: int
    ) -> CodeChange | None:
        """The first reproduction tests, when no later answer was usable; none if they misfired."""
        if kept is not None:
            return await self._write(ctx, job, kept, generation)
        await self._no_reproduction(ctx)
        return None

    async def _no_reproduction(self, ctx: AgentContext) -> None:
        """No reproduction test is written: the answers called code that does not exist."""
        await self._say(
            ctx, "no reproduction test kept: the answers called code that does not exist"
        )

    async def _write_reproduction(
        self, ctx: AgentContext, job: CodeJob, merged: MergeResult, generation: int
    ) -> tuple[CodeChange, str | None, bool]:
        """Write reproduction tests and run them on the unchanged code.

        Returns the change; when the tests do not reproduce the report (they pass, do not load,
        or only call code that does not exist), why; and whether it was the last. The file is
        then put back as it was, so that the next answer replaces them.
        """
        target = ctx.workspace / job.path
        original = target.read_bytes() if target.is_file() else None
        change = await self._write(ctx, job, merged, generation)
        try:
            report = await run_reproduction(ctx, agent=self.name)
        except CoditectError:
            return change, None, False  # no sandbox run: the code task will say so
        passed = passing_before(ctx)
        verdict = judge_report(report, passed, ctx.request)
        broken = broke_existing(report, passed)
        misfired = misfires(report, ctx.request)
        if verdict is Reproduction.NOT_REPRODUCED:
            why = "These tests pass on the current code"
        elif verdict is Reproduction.BROKEN and misfired and not broken:
            why = (
                "These tests fail only because they call code that does not exist "
                f"({misfired[0].message[:200]})"
            )
        elif broken:
            why = (
                f"These tests break the file's existing tests ({len(broken)} fail, e.g. "
                f"{broken[0]}: {_first_message(report, broken[0])})"
            )
        elif verdict is Reproduction.BROKEN:
            message = report.failures[0].message[:200] if report.failures else "timed out"
            why = f"These tests do not run on the current code ({message})"
        else:
            return change, None, False
        await self._say(ctx, f"{why}: they do not reproduce the report")
        if original is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(original)
        return change, why, bool(misfired) and verdict is Reproduction.BROKEN and not broken

    async def _write(
        self, ctx: AgentContext, job: CodeJob, merged: MergeResult, generation: int
    ) -> CodeChange:
        started = time.monotonic()
        target = ctx.workspace / job.path
        before = _file_sha(target)
        write_atomic(target, merged.source, newline=job.newline, encoding=job.encoding)
        edit = FileEdit(
            path=job.path,
            before_sha256=before,
            after_sha256=_file_sha(target),
            added_symbols=merged.added,
            replaced_symbols=merged.replaced,
            deleted_symbols=merged.deleted,
        )
        exported = _export(ctx, job, merged)
        followed = _follow_removal(ctx, job, merged)
        edits = [edit, *exported, *followed]
        summary = f"{job.path}: {_changes(merged)} ({generation} generation(s))"
        if exported:
            summary += f"; exported {', '.join(exported[0].added_symbols)} from {exported[0].path}"
        for follow in followed:
            summary += f"; removed {', '.join(follow.deleted_symbols)} from {follow.path}"
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
        return CodeChange(edits=tuple(edits), generations=generation, summary=summary)


# An answer's limit for code: the longest definition in focus times this, plus a margin (a
# changed definition is usually a little longer than the one it replaces).
_ANSWER_SLACK = 1.3
_ANSWER_EXTRA = 60

# Tokens kept free in the first prompt for a repair round (the clipped echo of an answer and
# the rejection): about _MAX_ECHO_CHARS / 3 + 100.
_REPAIR_RESERVE = 500


def _public(merged: MergeResult) -> tuple[str, ...]:
    """The new public top-level names of a merge (not methods, not ``_private``)."""
    return tuple(n for n in merged.added if "." not in n and not n.startswith("_"))


def _defensible(ctx: AgentContext, job: CodeJob) -> bool:
    """Whether the current content of ``job.path`` may be kept against failing tests.

    Only in a repair round, and only when this mission changed the file earlier (its own code
    or tests, now under test): then a model that answers with it unchanged is defending it. A
    file as the project had it is what the task is to change (a bug's reproduction test fails
    on it, by design).
    """
    return (
        bool(job.failures)
        and job.original is not None
        and any(e.path == job.path for change in ctx.upstream.code for e in change.edits)
    )


_CUT_OFF = "the answer was cut off (too long): write only the new or changed code"
_ECHO_CUT_OFF = (
    "the answer repeated the current code until it was cut off (too long): write only the "
    "definitions you change, not the rest of the file"
)


def _not_python(exc: SyntaxError) -> str:
    where = f" (line {exc.lineno}: {(exc.text or '').strip()})" if exc.lineno else ""
    return f"the answer is not valid Python: {exc.msg}{where}"


def _answer_code(job: CodeJob, response: ModelResponse) -> str:
    """The code of an answer with the mechanical fixes applied (see :mod:`.fixups`).

    Raises:
        MergeError: No usable code (none, cut off, or not Python where it was cut off).
    """
    code = join_spaced_names(extract_code(response.text))
    if job.is_tests and response.finish_reason == "length":
        mistake = mid_answer_error(code)
        try:
            code = drop_unchecked_last_test(salvage_truncated(code))
        except MergeError:
            if mistake:  # what to fix is the mistake, not the length
                raise MergeError(f"the answer is not valid Python: {mistake}") from None
            raise
        if mistake and not _defines_tests(code):
            raise MergeError(f"the answer is not valid Python: {mistake}")
    elif response.finish_reason == "length":
        # The complete definitions before the cut are kept (a small model rewrites a whole
        # class to change one method); the one that was cut is dropped.
        try:
            code = drop_cut_definition(salvage_truncated(code))
        except MergeError:
            raise MergeError(_CUT_OFF) from None
    if job.is_tests:
        code = cap_asserts(
            code,
            MAX_ASSERTS_PER_TEST,
            max_tests=MAX_TESTS_PER_ANSWER,
            unchanged=identical_definitions(job.original, code),
        )
        code = drop_stand_ins(code)
    else:
        code = adopt_methods(drop_foreign_tests(code), job.original, job.focus)
    return unshadow_imports(code)


def _defines_tests(code: str) -> bool:
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
        for n in ast.walk(ast.parse(code))
    )


def _rejected(
    messages: list[Message], response: ModelResponse, reason: str, seen: set[str]
) -> list[Message]:
    """The conversation for the next generation after an unusable answer (``seen`` is updated).

    The answer and why it was rejected go back to the model. An answer given before is not
    shown again: a small model with its own answer in view copies it, word for word, however
    it is told to change it (seen at temperature 0.8 too), so the next generation starts
    afresh from the task with only the reason added. So does the generation after an answer
    cut off at the output limit: shown its cut answer, the model continues it (the next answer
    began in the middle of the cut method, and did not parse).
    """
    first = messages[1]
    if response.text.strip() in seen:
        note = f"\n\nA previous answer was rejected twice: {reason} Write it differently."
        return [messages[0], Message(role=first.role, content=first.content + note)]
    if response.finish_reason == "length":
        note = f"\n\nA previous answer was rejected: {reason}"
        return [messages[0], Message(role=first.role, content=first.content + note)]
    seen.add(response.text.strip())
    return [
        *messages[:2],
        Message(role="assistant", content=_clip(response.text)),
        Message(role="user", content=rejected_prompt(reason)),
    ]


def _out_of_time(ctx: AgentContext, what: str) -> str:
    clock = ctx.clock
    return (
        f"no time for {what}: {max(clock.left_s(), 0.0):.0f}s left of the task, an answer takes "
        f"up to {clock.answer_s:.0f}s and a check run {clock.check_s:.0f}s"
    )


def _file_sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _export(ctx: AgentContext, job: CodeJob, merged: MergeResult) -> list[FileEdit]:
    """Export the module's new public top-level names from the package that re-exports it."""
    public = _public(merged)
    if not (job.exports_to and public and not job.is_tests):
        return []
    init = ctx.workspace / job.exports_to
    found = read_text_file(init)
    if found is None:
        return []
    source, exported = export_names(found.text, job.self_module, public)
    if not exported:
        return []
    before = _file_sha(init)
    write_atomic(init, source, newline=found.newline, encoding=found.encoding)
    return [
        FileEdit(
            path=job.exports_to,
            before_sha256=before,
            after_sha256=_file_sha(init),
            added_symbols=exported,
        )
    ]


def _removal(ctx: AgentContext, job: CodeJob, merged: MergeResult) -> MergeResult:
    """An answer that deletes definitions, checked and tidied.

    Deleting is how a request to remove something is done, never how a bug is fixed or a
    test made to pass (a deleted function takes its failing tests with it: see
    :mod:`coditect.agents.retire`). A removed top-level name leaves the module's own
    ``__all__``, and imports that only the removed code used go too.

    Raises:
        _Rejected: See :func:`_removal_problem`.
    """
    problem = _removal_problem(ctx, job, merged)
    if problem:
        raise _Rejected(problem)
    using = users_of(merged.source, defined(job.original or "", merged.deleted))
    if using:  # said plainly: "undefined name" reads to a small model as "define it"
        name, users = next(iter(using.items()))
        raise _StillUsed(
            f"{', '.join(users[:4])} still use{'s' if len(users) == 1 else ''} {name}, which "
            f"the answer deletes: change {'them' if len(users) > 1 else 'it'} in the same "
            f"answer so that nothing uses {name}, or keep {name}",
            tuple(users),
            name,
        )
    source, _ = without_in_all(merged.source, [n for n in merged.deleted if "." not in n])
    orphans = orphaned_imports(job.original or "", source)
    if not orphans:
        return replace(merged, source=source)
    tidied = merge_source(source, "\n".join(f"del {n}" for n in orphans))
    return replace(merged, source=tidied.source, deleted=merged.deleted + tidied.deleted)


def _removal_problem(ctx: AgentContext, job: CodeJob, merged: MergeResult) -> str:
    """Why the deletions of an answer cannot stand, or "".

    A test answer may not delete (the project's tests are the specification); the request must
    ask for a removal; when it names definitions of the file, the answer deletes one of them
    and no other; and an import it deletes may not be one that the file still uses
    (more-itertools' ``zip_equal`` calls ``_zip_equal``, whose import an answer deleted, and
    the automatic import put it back: the "change" was a rewritten import line). Definitions
    that still use a deleted definition are :class:`_StillUsed`, raised by :func:`_removal`.
    """
    gone = ", ".join(merged.deleted)
    if job.is_tests:
        return (
            f"the answer deletes {gone}: the project's tests are kept as they are; write only "
            "new test functions"
        )
    if not _removal_asked(ctx):
        return (
            f"the answer deletes {gone}, but the request does not ask to remove anything: "
            "keep them and change what the request asks for"
        )
    top = [n for n in merged.deleted if "." not in n]
    removed = defined(job.original or "", top)
    # What the request names: its identifiers (max_ver, MRUCache) when it has any, else its
    # words ("the dasherize function"); semver's "Remove ... max_ver ...; Version.compare
    # replaces it" does not ask for the module's compare() to go.
    said = mentions(ctx.request)
    original = job.original or ""
    named = defined(original, [m.name for m in said if m.code_like]) or defined(
        original, [m.name for m in said]
    )
    unasked = [n for n in removed if named and n not in named]
    if unasked:  # semver: asked to remove max_ver, the model deleted min_ver too
        return (
            f"the request asks to remove {', '.join(named)}, not {', '.join(unasked)}: "
            f"keep {', '.join(unasked)}"
        )
    if named and not removed:
        return f"the request asks to remove {', '.join(named)}: write `del {named[0]}`"
    still = users_of(merged.source, [n for n in top if n not in removed])  # imports
    if still:
        name, users = next(iter(still.items()))
        verb = "uses" if len(users) == 1 else "use"
        return f"{', '.join(users[:4])} still {verb} {name}: keep its import"
    return ""


def _merged(ctx: AgentContext, job: CodeJob, code: str) -> MergeResult:
    """``code`` merged into ``job``'s file.

    For a removal, an answer that defines and deletes nothing is told how to delete.

    Raises:
        MergeError: The answer cannot be merged.
    """
    try:
        return merge_source(job.original, code, self_module=job.self_module)
    except NothingToMergeError as exc:
        if job.is_tests or not _removal_asked(ctx):
            raise
        raise MergeError(f"{exc}: to remove one, write `del NAME`") from exc


def _removal_asked(ctx: AgentContext) -> bool:
    return asks_removal(ctx.request) or asks_removal(ctx.task.description)


def _follow_removal(ctx: AgentContext, job: CodeJob, merged: MergeResult) -> list[FileEdit]:
    """What a removal takes with it, in the files the task declared.

    Only those: the consistency check holds the task to them. The removed top-level
    definitions leave the package exports and take their tests (see
    :mod:`coditect.agents.retire`). A ``del NAME`` of the answer that this file does not
    define, but another source file of the task does, is done there (asked first for the
    package ``__init__.py``, the model named ``del MRUCache`` and ``del mru_cache`` at once;
    asked for ``func.py`` next, it rewrote the import line instead).
    """
    if job.is_tests:
        return []
    allowed = set(ctx.action.write_files)
    edits: list[FileEdit] = []
    removed = [(job.path, defined(job.original or "", [n for n in merged.deleted if "." not in n]))]
    carried = [n for n in merged.absent if "." not in n]
    for path in sorted(allowed - {job.path}) if carried else []:
        if path.endswith(".py") and not is_test_path(path):
            edit = _carried_deletion(ctx, path, carried)
            if edit is not None:
                edits.append(edit)
                removed.append((path, list(edit.deleted_symbols)))
    tests = {m.path for m in workspace_index(ctx.workspace).test_modules()} & allowed
    for module, names in removed:
        sources: dict[str, str] = {}
        for path in (*package_inits(module), *sorted(tests)):
            found = read_text_file(ctx.workspace / path) if path in allowed else None
            if found is not None:
                sources[path] = found.text
        for follow in follow_removal(module, names, sources, tests) if names else []:
            edits.append(_rewrite(ctx, follow.path, follow.source, follow.deleted))
    return edits


def _carried_deletion(ctx: AgentContext, path: str, names: list[str]) -> FileEdit | None:
    """Delete those of ``names`` that the source file ``path`` defines.

    None when it defines none, or when the file would not hold together without them (the
    model is asked for it then).
    """
    found = read_text_file(ctx.workspace / path)
    here = defined(found.text, names) if found is not None else []
    if found is None or not here:
        return None
    try:
        source = merge_source(found.text, "\n".join(f"del {n}" for n in here)).source
        source, _ = without_in_all(source, here)
        orphans = orphaned_imports(found.text, source)
        if orphans:
            source = merge_source(source, "\n".join(f"del {n}" for n in orphans)).source
    except MergeError:
        return None
    view = ProjectView(ctx.workspace, {path: source})
    if check_source(source, path=path, view=view, before=found.text):
        return None
    return _rewrite(ctx, path, source, (*here, *orphans))


def _rewrite(ctx: AgentContext, path: str, source: str, deleted: tuple[str, ...]) -> FileEdit:
    """Write ``source`` to ``path`` (its line endings and encoding kept); the edit."""
    target = ctx.workspace / path
    found = read_text_file(target)
    assert found is not None  # only files that exist are rewritten
    before = _file_sha(target)
    write_atomic(target, source, newline=found.newline, encoding=found.encoding)
    return FileEdit(
        path=path, before_sha256=before, after_sha256=_file_sha(target), deleted_symbols=deleted
    )


def _next_limit(
    model: Model,
    messages: list[Message],
    response: ModelResponse,
    job: CodeJob,
    limit: int,
    *,
    echoed: bool = False,
) -> int:
    """The output limit for the answer after ``response`` (rejected; it was given ``limit``).

    A code answer cut off at the limit (in new or changed code: see :class:`_EchoCut`) shows
    that the model needed more tokens for the code it meant to write (a stub's short body and
    docstring say little about its implementation's length): the next answer may have twice
    as many, as far as the first prompt leaves room in the context window (the repair messages
    after it are narrowed by :func:`_fit` as usual).
    """
    if job.is_tests or response.finish_reason != "length" or echoed:
        return limit
    first = sum(model.count_tokens(m.content) for m in messages[:2])
    room = prompt_budget(model, 0) - first - _REPAIR_RESERVE
    return max(limit, min(2 * limit, room))


def _fit(model: Model, messages: list[Message], budget: int) -> list[Message]:
    """``messages`` narrowed to ``budget`` tokens: a repair round drops the echoed answer.

    Raises:
        AgentError: Not even the first prompt fits (never sent).
    """

    def size(msgs: list[Message]) -> int:
        return sum(model.count_tokens(m.content) for m in msgs)

    if size(messages) <= budget:
        return messages
    if len(messages) > 2:
        narrowed = [*messages[:2], messages[-1]]
        if size(narrowed) <= budget:
            return narrowed
    raise AgentError(
        f"the prompt does not fit the model's context window ({size(messages[:2])} tokens, "
        f"budget {budget})",
        retryable=False,
    )


def _user_prompt(
    ctx: AgentContext, job: CodeJob, budget: int
) -> tuple[str, tuple[str, ...] | None]:
    """The first user prompt; the file is narrowed to an excerpt when the whole does not fit.

    Returns:
        The prompt, and the definitions of an excerpt shown in full (None: the whole file, or
        an outline only).

    Raises:
        ContextOverflowError: Not even the definitions to change fit.
    """
    count = ctx.model.count_tokens
    if job.is_tests and count(job.subject_text) > budget // 3:
        # The code under test is shown by signatures and docstrings; a giant docstring (a
        # function documented with pages of examples) is cut to its first lines.
        job = replace(job, subject_text=_first_lines(job.subject_text, budget // 3, count))

    def render(source: str, excerpt: bool) -> str:
        if job.is_tests:
            return tests_prompt(
                request=ctx.request,
                description=ctx.task.description,
                path=job.path,
                source=source,
                subject=job.subject_text,
                import_line=job.import_line,
                names=job.subject_names,
                failures=job.failures,
            )
        return code_prompt(
            request=ctx.request,
            description=ctx.task.description,
            path=job.path,
            source=source,
            failures=job.failures,
            notes=job.notes,
            excerpt=excerpt,
            new_names=job.new_names,
        )

    original = job.original or ""
    shell = count(render("", True))
    context = file_context(
        original,
        focus=job.focus,
        budget_tokens=budget - shell,
        count=count,
        priority=dict(job.priority),
    )
    editable = context.full if context.full and not job.is_tests else None
    return render(context.text, not context.whole), editable


def _first_lines(text: str, budget: int, count: Callable[[str], int]) -> str:
    """The first lines of ``text`` that fit in ``budget`` tokens, with a ``...`` line after them."""
    kept: list[str] = []
    used = count("    ...")
    for line in text.splitlines():
        used += count(line) + 1
        if used > budget:
            break
        kept.append(line)
    return "\n".join([*kept, "    ..."])


def _untouched(ctx: AgentContext, job: CodeJob) -> bool:
    """Whether ``job.path`` is as the project had it (no earlier task of the mission wrote it)."""
    return not any(e.path == job.path for c in ctx.upstream.code for e in c.edits)


def _seed_base(ctx: AgentContext) -> int:
    """Where a task's sampling seeds start: distinct per task, stable across runs.

    Two repair rounds with the same failures send the same prompt; with the same seeds they
    would sample the very same candidates again.
    """
    return zlib.crc32(ctx.task.id.encode()) % 100_000 * 10_000


def _no_change(
    ctx: AgentContext, job: CodeJob, merged: MergeResult, response: ModelResponse, *, optional: bool
) -> None:
    """An answer that changes nothing: fine for an optional file, else rejected (saying why).

    Raises:
        _EchoCut: What was left of a cut-off answer changes nothing (it repeats the file).
        _Unchanged: The answer repeats the current code.
    """
    if response.finish_reason == "length" and not job.is_tests:
        # A model that rewrites the whole file would only repeat more of it with more room.
        raise _EchoCut(_ECHO_CUT_OFF)
    if optional:
        return
    kept_as_is = ", ".join(merged.unchanged) or "code"
    todo = f"Write the new {', '.join(job.new_names)}" if job.new_names else "Change it"
    raise _Unchanged(
        f"your code is the same as the current {kept_as_is}, nothing changed. "
        f"{todo} to do this: {ctx.request.strip()}"
    )


def _new_names_written(job: CodeJob, merged: MergeResult) -> None:
    """Reject an answer that writes none of the new definitions the request asks for.

    A small model asked for ``tlru_cache(...)`` next to ``ttl_cache`` tends to change
    ``ttl_cache``'s helpers instead; such a change cannot do what the request asks.

    Raises:
        _Rejected: ``job.new_names`` is not empty and the answer adds none of them.
    """
    if not job.new_names:
        return
    added = {q.rpartition(".")[2] for q in merged.added}
    if added & set(job.new_names):
        return
    names = ", ".join(job.new_names)
    raise _Rejected(
        f"the answer does not define {names}, which the request asks for: write {names} "
        f"as new code in {job.path}"
    )


def _docstrings_kept(job: CodeJob, merged: MergeResult) -> MergeResult:
    """``merged`` with the original docstrings of the definitions it replaced.

    An answer that differed only in its copy of the docstring changes nothing: such
    definitions count as unchanged.
    """
    kept = keep_docstrings(job.original, merged.source, merged.replaced)
    same = identical_definitions(job.original, kept)
    return replace(
        merged,
        source=kept,
        replaced=tuple(n for n in merged.replaced if n.split(".")[0] not in same),
        unchanged=merged.unchanged + tuple(n for n in merged.replaced if n.split(".")[0] in same),
    )


def _adds_tests(merged: MergeResult) -> bool:
    """Whether the merged answer adds or replaces a test.

    A test is a ``test*`` function or method, or a class with ``test*`` methods (a unittest
    ``TestCase`` or a pytest ``Test*`` class).
    """
    names = (*merged.added, *merged.replaced)
    if any(n.rpartition(".")[2].startswith("test") for n in names):
        return True
    classes = {n for n in names if "." not in n}
    try:
        tree = ast.parse(merged.source)
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.ClassDef)
        and node.name in classes
        and any(
            isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef) and m.name.startswith("test")
            for m in node.body
        )
        for node in tree.body
    )


def _functions_of(source: str, names: Sequence[str]) -> tuple[str, ...]:
    """Those of ``names`` that are top-level functions of ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return tuple(n for n in names if n in defined)


def _project_test_checks(
    ctx: AgentContext, job: CodeJob, pool: list[MergeResult | None]
) -> list[CheckCode]:
    """The project's own tests of the definitions the candidates change, as checks.

    Definitions an earlier task of the mission replaced in the file count too: in a repair
    round, a candidate that keeps the mission's change as it is changes nothing itself, yet
    the project's tests of that change are what it must pass.
    """
    earlier = {
        n
        for c in ctx.upstream.code
        for e in c.edits
        if e.path == job.path
        for n in e.replaced_symbols
    }
    gone = set(defined(job.original or "", [n for m in pool if m is not None for n in m.deleted]))
    changed = sorted(earlier | gone | {n for m in pool if m is not None for n in m.replaced})
    if job.is_tests or not changed or not ctx.action.project_tests:
        return []
    created = {e.path for c in ctx.upstream.code for e in c.edits if not e.before_sha256}
    baseline = _baseline(ctx.workspace)
    tests = [p for p in ctx.action.project_tests if p not in created]
    return existing_test_checks(
        ctx.workspace,
        tests,
        changed,
        module=job.self_module,
        # The tests of a removed name go with it (see _follow_removal): they judge nothing.
        skip=_added_by_mission(ctx) | _retired(ctx, job, tests, gone),
        options=ctx.action.test_options,
        callers=callers_of(job.original or "", changed),
        failing=baseline.failing,
        # A suite that runs in seconds: every related test checks every candidate, so that a
        # candidate breaking tests of a third file is not chosen and only found out after.
        every_file=0 < baseline.duration_s <= _FAST_SUITE_S,
    )


def _retired(ctx: AgentContext, job: CodeJob, tests: list[str], gone: set[str]) -> set[str]:
    """The project's tests that removing ``gone`` from ``job``'s module retires."""
    out: set[str] = set()
    for rel in tests if gone else []:
        found = read_text_file(ctx.workspace / rel)
        if found is not None:
            retired = retired_tests(found.text, rel, job.self_module, gone)
            out.update(retired.tests + retired.members + retired.trimmed)
    return out


def _baseline(workspace: Path) -> Baseline:
    """The project's tests before the mission changed anything (empty when not recorded)."""
    try:
        return Baseline.from_json((workspace / BASELINE_PATH).read_text("utf-8"))
    except (OSError, ValueError):
        return Baseline()


class _BlindRewrite(MergeError):
    """An answer that only rewrites existing definitions it was shown by signature."""

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names


def _widened(
    ctx: AgentContext,
    job: CodeJob,
    system: str,
    exc: _Rejected,
    limit_of: Callable[[CodeJob], int],
) -> tuple[CodeJob, list[Message], int] | None:
    """The job and a fresh conversation showing in full what a rejected answer rewrote blind.

    An answer that rewrites a definition it saw only by signature is a guess at code it never
    saw, but also the model's choice of where the change goes, as a ranked outline is offered
    for (tabulate: for "nan" no longer counted as a number, the excerpt showed two alignment
    helpers in full and the model rewrote ``_isnumber``, outlined, where the bug was). Once per
    definition, when those definitions then fit in the prompt, they are put first in the focus
    and the model is asked afresh (with the answer limit they need); else None, and the
    rejection goes back as it is. The same for the definitions that still use one an answer
    deletes (more-itertools' ``sort_together`` uses ``zip_equal``): they are shown in full to be
    changed with the deletion.
    """
    blind = exc.__cause__.names if isinstance(exc.__cause__, _BlindRewrite) else ()
    if isinstance(exc, _StillUsed):  # what still uses a deleted definition, to be changed
        blind = exc.users
    if not blind or job.focus[: len(blind)] == blind or job.editable is None:
        return None  # nothing rewritten blind, shown first already, or the whole file shown
    focus = (*blind, *(q for q in job.focus if q not in blind))
    wider = replace(job, focus=focus, editable=None)
    count = ctx.model.count_tokens
    limit = limit_of(wider)
    budget = prompt_budget(ctx.model, limit)
    try:
        user, editable = _user_prompt(ctx, wider, budget - count(system) - _REPAIR_RESERVE)
    except ContextOverflowError:
        return None
    if editable is None or not set(blind) <= set(editable):
        return None
    note = (
        f"\n\nYour previous answer rewrote {', '.join(blind)}, which you saw only by its "
        "signature; it is now shown in full above. Change it if the request needs it."
    )
    if isinstance(exc, _StillUsed):
        note = (
            f"\n\nYour previous answer deleted {exc.name}, but {', '.join(blind)} still "
            f"use{'s' if len(blind) == 1 else ''} it; now shown in full above. Write `del "
            f"{exc.name}` and {', '.join(blind)} changed so that nothing uses {exc.name}."
        )
    messages = [Message(role="system", content=system), Message(role="user", content=user + note)]
    return replace(wider, editable=editable), messages, limit


def _seen_only(job: CodeJob, code: str) -> str:
    """An answer without its rewrites of existing definitions the prompt did not show in full.

    Shown a signature and a docstring line, a small model writes a body of its own for it
    (tabulate: five helpers of the table formats, rewritten while adding a format; parse: the
    module's ``search`` and ``findall``, rewritten while adding a method to ``Result``). It
    cannot know what it replaces: such a rewrite is a guess that breaks what it does not
    concern, so it is dropped and the definition stays as it is.

    Raises:
        MergeError: Nothing but such rewrites is left (the answer changes only code it did
            not see).
    """
    if job.editable is None:
        return code
    kept, blind = drop_redefinitions(code, job.original, keep=job.editable)
    if not blind:
        return code
    if not any(isinstance(n, _DEF_NODES) for n in ast.parse(kept).body):
        raise _BlindRewrite(
            f"you rewrote {', '.join(blind)}, shown to you only by signature or not at all: "
            f"change only the definitions shown in full ({', '.join(job.editable)}), or write "
            "new ones",
            tuple(blind),
        )
    return kept


def _new_tests_only(ctx: AgentContext, job: CodeJob, code: str) -> str:
    """A test answer without its rewrites of the project's existing tests.

    Raises:
        MergeError: The answer only rewrote existing tests.
    """
    edits = [e for c in ctx.upstream.code for e in c.edits if e.path == job.path]
    if any(not e.before_sha256 for e in edits):
        return code  # this mission created the file: every test in it is its own
    ours = {n for e in edits for n in e.added_symbols}
    kept, dropped = drop_redefinitions(code, job.original, keep=ours)
    if dropped and not any(isinstance(n, _DEF_NODES) for n in ast.parse(kept).body):
        raise MergeError(
            f"the answer only rewrites tests the project already has ({', '.join(dropped)}); "
            "leave them as they are and add new test functions with new names"
        )
    return kept


def _added_by_mission(ctx: AgentContext) -> set[str]:
    """Definitions an earlier task of this mission created (docstrings a model wrote)."""
    return {n for c in ctx.upstream.code for e in c.edits for n in e.added_symbols}


def _changes(merged: MergeResult) -> str:
    parts = [
        f"added {', '.join(merged.added)}" if merged.added else "",
        f"replaced {', '.join(merged.replaced)}" if merged.replaced else "",
        f"deleted {', '.join(merged.deleted)}" if merged.deleted else "",
    ]
    return "; ".join(p for p in parts if p)


def _clip(answer: str) -> str:
    """An earlier answer as echoed back in a repair round (a runaway answer is cut short)."""
    return answer if len(answer) <= _MAX_ECHO_CHARS else answer[:_MAX_ECHO_CHARS] + "\n[...]"
