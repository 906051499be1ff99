"""Localization: which files, then which symbols, a request is about (pure, no I/O).

Evidence, all from the code (no word lists written for any project; the one list is Lucene's
standard English stop set):

- BM25 over each symbol's words: its name split on ``snake_case``/``CamelCase``, its parameters,
  the first line of its docstring, and its class and module names. Inverse document frequency
  weighs words every definition shares at nothing; English glue words ("the", "and") are
  dropped, as a small project has too few docstrings to weigh them down.
- Exact mentions: an identifier or path in the request that names a definition or a module;
  a call of a name nothing defines finds the handlers dispatched by a prefix convention
  (``avg()`` -> ``_func_avg``).
- Quoted text and command-line options: the definitions whose strings hold them; a new option
  goes where the other options are declared.
- Tests: a test function whose words match the request lends its score to what it exercises,
  with diminishing returns (the function 200 tests call is not 200 times as likely).
- The reference graph: the callers and callees of a strong match get part of its score.

A name defined several times (``@overload`` stubs) counts once. Code the project's tests never
import (setup.py, docs/ and tools/ scripts) and ``@deprecated`` definitions weigh half.

Files are ranked by their best symbols; the ranked outline (:func:`outline_lines`) is what the
planner and the model see when they are asked to choose.
"""

from __future__ import annotations

import builtins
import difflib
import functools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from coditect.domain.paths import is_test_path
from coditect.index.repo import RepoIndex
from coditect.index.symbols import ModuleIndex, Symbol, SymbolKind, module_name

__all__ = [
    "Localization",
    "Mention",
    "RankedFile",
    "RankedSymbol",
    "closest_names",
    "localize",
    "mentions",
    "narrow_focus",
    "outline_lines",
    "split_words",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Code in a request: in backticks, a call (no space before the parenthesis: "returns the default
# (None when not given)" is prose), or a file name.
_CODE_IDENT = re.compile(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_.]*)\(|([A-Za-z_]\w*\.py)\b")
_PATH = re.compile(r"(?<![\w/.-])((?:\./)?[\w][\w./-]*\.py)\b")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)\b")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_VOWEL = re.compile(r"[aeiouy]")
_K1, _B = 1.2, 0.75
# Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET), the words of three letters
# or more: glue in any English request, which a small project's one-line docstrings are too few
# to down-weight by frequency ("the" and "and" ranked ``_date_and_delta`` for a request about
# number suffixes).
_STOP_WORDS = frozenset(
    "and are but for into not such that the their then there these they this was will with".split()
)
# How much of a strong match's score flows to its graph neighbours and to tested symbols. A
# neighbour must not outrank the match itself, so well below 1.
_NEIGHBOUR_SHARE = 0.3
_TEST_SHARE = 0.5
_MEMBER_SHARE = 0.3
_TOPIC_SHARE = 0.1
# Score of a definition named exactly in the request: above what words alone reach.
_MENTION_SCORE = 12.0
_PLAIN_MENTION_SCORE = 4.0


def _stem(word: str) -> str:
    """A light stemmer: plural, -ing and -ed forms and a final e fold together.

    ``parse``, ``parses``, ``parsing``, ``parsed`` -> ``pars``; ``date``, ``dates`` -> ``dat``;
    ``string`` stays ``string``.
    """
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("es") and word[-3] in "sxz" or word.endswith(("ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        # Porter's condition: what is left must hold a vowel ("string" is no form of "str").
        if word.endswith(suffix) and len(stem) >= 3 and _VOWEL.search(stem):
            word = stem
            # Porter's step 1b: a doubled final consonant is undone ("dropping", "padded" ->
            # "drop", "pad"), except l, s and z ("falling", "passed"); not in a stem of three
            # letters ("added" stays "add", the verb's own stem).
            if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def split_words(text: str) -> list[str]:
    """Lower-case word stems of ``text``; identifiers split on ``_`` and case changes.

    ``parseHTTPDate`` and ``parse_http_date`` both give ``parse``, ``http``, ``date``.
    """
    return list(_split(text))


@functools.lru_cache(maxsize=16384)
def _split(text: str) -> tuple[str, ...]:
    """:func:`split_words`, remembered (the same names and docstrings are split at every plan)."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        for part in ident.split("_"):
            for w in _CAMEL.findall(part):
                w = w.lower()
                # Two-letter words are mostly English glue ("an", "to", "of") that a small
                # project's few docstrings cannot down-weight by frequency; so are the
                # standard English stop words.
                if len(w) > 2 and not w.isdigit() and w not in _STOP_WORDS:
                    out.append(_stem(w))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Mention:
    """A name in the request and whether it was written as code (backticks, a call, ``_``)."""

    name: str
    code_like: bool


def _code_like(ident: str) -> bool:
    """Whether ``ident`` can only be an identifier, not a word.

    snake_case, camelCase, or CamelCase that opens with an acronym (``MRUCache``,
    ``HTTPServer``: two capitals, then two lowercase letters, so that the plurals of acronyms,
    "URLs", "APIs", stay words).
    """
    return "_" in ident.strip("_") or bool(re.search(r"[a-z][A-Z]|[A-Z]{2}[a-z]{2}", ident))


def mentions(request: str) -> list[Mention]:
    """Identifiers in ``request``; code-like ones first-class evidence, plain words weak."""
    strong: dict[str, None] = {}
    for m in _CODE_IDENT.finditer(request):
        raw = m.group(1) or m.group(2) or m.group(3) or ""
        for ident in _IDENT.findall(raw.removesuffix(".py")):
            strong[ident] = None
    out = [Mention(n, True) for n in strong]
    for ident in dict.fromkeys(_IDENT.findall(request)):
        if ident in strong:
            continue
        out.append(Mention(ident, _code_like(ident)))
    return out


def closest_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` names in ``known`` most similar to ``name`` (difflib)."""
    return difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.6)


@dataclass(frozen=True, slots=True)
class RankedSymbol:
    """A symbol and its score, with the evidence that produced it."""

    symbol: Symbol
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RankedFile:
    """A source module and its score.

    Attributes:
        words: Distinct request words matched by the module's definitions.
    """

    path: str
    score: float
    reasons: tuple[str, ...] = ()
    words: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Localization:
    """Ranked files and symbols for one request.

    Attributes:
        files: Source modules, best first (only those with some evidence).
        symbols: Source symbols, best first (only those with some evidence).
        mentioned_paths: Source modules the request names by path or dotted name.
        mentioned: Definitions the request names exactly (code-like mentions).
        named: Definitions the request names, code-like or as plain words of 4+ letters.
        missing: Code-like names in the request that no module defines.
    """

    files: tuple[RankedFile, ...] = ()
    symbols: tuple[RankedSymbol, ...] = ()
    mentioned_paths: tuple[str, ...] = ()
    mentioned: tuple[Symbol, ...] = ()
    named: tuple[Symbol, ...] = ()
    missing: tuple[str, ...] = ()
    scores: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)

    @property
    def top_file(self) -> str | None:
        """The best-ranked module, or None without evidence."""
        return self.files[0].path if self.files else None

    def symbols_in(self, path: str, limit: int = 5) -> list[RankedSymbol]:
        """The best symbols of one module."""
        return [r for r in self.symbols if r.symbol.path == path][:limit]


# Per module (path, content hash): the word counts of each definition, as BM25 documents.
_MODULE_DOCS: dict[tuple[str, str], tuple[Counter[str], ...]] = {}
_MODULE_DOCS_MAX = 4096


def _module_docs(module: ModuleIndex) -> tuple[Counter[str], ...]:
    """The word counts of each of ``module``'s definitions (remembered by content hash)."""
    key = (module.path, module.sha256)
    docs = _MODULE_DOCS.get(key) if module.sha256 else None
    if docs is None:
        docs = tuple(Counter(_doc_words(s, module)) for s in module.symbols)
        if module.sha256:
            if len(_MODULE_DOCS) >= _MODULE_DOCS_MAX:
                _MODULE_DOCS.clear()
            _MODULE_DOCS[key] = docs
    return docs


def _doc_words(sym: Symbol, module: ModuleIndex) -> list[str]:
    name = split_words(sym.name)
    params = split_words(sym.signature.partition("(")[2]) if "(" in sym.signature else []
    owner = split_words(sym.parent)
    mod = split_words(module.path.rpartition("/")[2].removesuffix(".py"))
    # The name counts twice: it is the strongest statement of what the definition is about.
    return [*name, *name, *params, *split_words(sym.doc), *owner, *mod]


class _BM25:
    def __init__(self, tfs: Sequence[Counter[str]]) -> None:
        self.tfs = tfs
        self.lens = [sum(tf.values()) or 1 for tf in tfs]
        self.avg = sum(self.lens) / max(len(self.lens), 1)
        self.postings: defaultdict[str, list[int]] = defaultdict(list)  # word -> docs with it
        for i, tf in enumerate(self.tfs):
            for w in tf:
                self.postings[w].append(i)
        n = len(tfs)
        self.idf = {
            w: math.log(1 + (n - len(d) + 0.5) / (len(d) + 0.5)) for w, d in self.postings.items()
        }

    def matching(self, query: dict[str, float]) -> list[int]:
        """The documents that hold at least one word of ``query``, in order."""
        return sorted({i for w in query for i in self.postings.get(w, ())})

    def score(self, i: int, query: dict[str, float]) -> tuple[float, list[str]]:
        tf, total, hits = self.tfs[i], 0.0, []
        norm = _K1 * (1 - _B + _B * self.lens[i] / self.avg)
        for w, q in query.items():
            f = tf.get(w)
            if not f:
                continue
            total += self.idf.get(w, 0.0) * f * (_K1 + 1) / (f + norm) * min(q, 2)
            hits.append(w)
        return total, hits


def _mentioned_paths(request: str, modules: Sequence[str]) -> list[str]:
    found: dict[str, None] = {}
    for raw in _PATH.findall(request):
        rel = raw.removeprefix("./")
        if rel in modules:
            found[rel] = None
            continue
        for m in sorted((m for m in modules if m.endswith("/" + rel)), key=len)[:1]:
            found[m] = None
    for dotted in _DOTTED.findall(request):
        rel = dotted.replace(".", "/")
        for cand in (f"{rel}.py", f"src/{rel}.py", f"{rel}/__init__.py", f"src/{rel}/__init__.py"):
            if cand in modules:
                found[cand] = None
    return list(found)


def _query(request: str) -> dict[str, float]:
    """The request's words and their weights.

    A request is mostly imperative: its first word tends to say what to do ("add", "fix"), not
    where, so it counts half. Not a gerund: an imperative is a verb's base form, and a request
    that opens with an -ing form opens with its subject, the action the code performs
    ("Dropping a table by name leaves ...": ``drop_table``).
    """
    words = split_words(request)
    query: dict[str, float] = dict(Counter(words))
    first = _IDENT.match(request.strip())
    head = first.group(0) if first else ""
    # Only a word of its own: "The repr of a job" opens with none ("the" is glue).
    verb = split_words(head)
    if verb and "_" not in head and not _is_gerund(head) and query[verb[0]] == 1:
        query[verb[0]] = 0.5
    return query


def _is_gerund(word: str) -> bool:
    """Whether ``word`` is an -ing form: a vowel before the suffix ("Dropping", not "Bring")."""
    return word.lower().endswith("ing") and bool(_VOWEL.search(word[:-3].lower()))


class _Scores:
    """Scores, reasons and matched words, accumulated evidence by evidence."""

    def __init__(self) -> None:
        self.scores: dict[tuple[str, str], float] = defaultdict(float)
        self.reasons: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.symbols: dict[tuple[str, str], Symbol] = {}
        self.matched: dict[str, set[str]] = defaultdict(set)

    def add(self, sym: Symbol, score: float, reason: str = "") -> None:
        key = (sym.path, sym.qualname)
        self.symbols[key] = sym
        self.scores[key] += score
        if reason:
            self.reasons[key].append(reason)

    def ranked(self) -> list[RankedSymbol]:
        return sorted(
            (
                RankedSymbol(self.symbols[k], round(v, 4), tuple(self.reasons[k]))
                for k, v in self.scores.items()
            ),
            key=lambda r: (-r.score, r.symbol.path, r.symbol.line),
        )


# The BM25 corpus of a set of modules (by their paths and content hashes): the plans of one
# commit's tree share it.
_CORPORA: dict[tuple[tuple[str, str], ...], tuple[_BM25, list[tuple[Symbol, bool]]]] = {}
_CORPORA_MAX = 64


def _corpus(index: RepoIndex) -> tuple[_BM25, list[tuple[Symbol, bool]]]:
    """BM25 over every definition of ``index``, and each definition with "is it a test"."""
    key = tuple((m.path, m.sha256) for m in index.modules)
    hashed = all(sha for _, sha in key)
    found = _CORPORA.get(key) if hashed else None
    if found is None:
        docs: list[Counter[str]] = []
        keyed: list[tuple[Symbol, bool]] = []
        for m in index.modules:
            docs.extend(_module_docs(m))
            keyed.extend((s, is_test_path(m.path)) for s in m.symbols)
        found = (_BM25(docs), keyed)
        if hashed:
            if len(_CORPORA) >= _CORPORA_MAX:
                _CORPORA.clear()
            _CORPORA[key] = found
    return found


def _words_evidence(index: RepoIndex, query: dict[str, float], acc: _Scores) -> None:
    """BM25 over every definition; test functions lend their score to what they call."""
    bm25, keyed = _corpus(index)
    test_hits: list[tuple[Symbol, float]] = []
    best: dict[tuple[str, str], tuple[float, Symbol, list[str]]] = {}
    for i in bm25.matching(query):
        s, is_test = keyed[i]
        sc, hits = bm25.score(i, query)
        if sc <= 0:
            continue
        if is_test:
            test_hits.append((s, sc))
            continue
        # One name defined several times (``@overload`` stubs, a property's setter, a
        # fallback under ``if``) is one place: its best definition counts, not their sum.
        key = (s.path, s.qualname)
        if key not in best or sc > best[key][0]:
            best[key] = (sc, s, hits)
    for sc, s, hits in best.values():
        acc.add(s, sc, "words " + ",".join(sorted(set(hits))))
        # The half-weighted first word (often the request's verb) is no evidence of place.
        acc.matched[s.path].update(w for w in hits if query[w] >= 1)
    # A matching class says "somewhere in here": its methods inherit part of its score (code
    # is changed in methods, and a method's own words are few).
    for key, sc in list(acc.scores.items()):
        for member in _members(index, acc.symbols[key]):
            acc.add(member, _MEMBER_SHARE * sc)
    _test_evidence(index, test_hits, acc)


def _test_evidence(
    index: RepoIndex, test_hits: Sequence[tuple[Symbol, float]], acc: _Scores
) -> None:
    """Tests lend their score to what they exercise, most to what the test is named after."""
    lent: defaultdict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    targets: dict[tuple[str, str], Symbol] = {}
    for t, sc in test_hits:
        named_after = set(split_words(t.name))
        for d in _distinct(index.callees(t)):
            if d.kind is not SymbolKind.CONSTANT:
                share = _TEST_SHARE if set(split_words(d.name)) & named_after else _TEST_SHARE / 3
                key = (d.path, d.qualname)
                targets[key] = d
                lent[key].append((share * sc, t.name))
    for key, loans in lent.items():
        loans.sort(key=lambda x: -x[0])
        names = ", ".join(n for _, n in loans[:3])
        more = f" and {len(loans) - 3} more" if len(loans) > 3 else ""
        acc.add(targets[key], _diminishing([v for v, _ in loans]), f"tested by {names}{more}")


def _distinct(symbols: Iterable[Symbol]) -> list[Symbol]:
    """``symbols`` with one entry per (path, qualname): the last, as Python binds it."""
    return list({(s.path, s.qualname): s for s in symbols}.values())


def _diminishing(values: Sequence[float]) -> float:
    """The sum of ``values``, best first, the i-th divided by i (a harmonic series).

    Many weak pieces of evidence of the same kind must not outweigh a few strong ones: the
    entry point that 200 tests call, each matching the request on a common word, is not 200
    times as likely to be the place as the function a test is named after (tabulate's
    ``tabulate()`` outranked its CLI ``_main`` for a request about a command-line option).
    Such evidence is correlated, so n loans of v add up to about v * ln(n): with 1/sqrt(i),
    about 2v * sqrt(n), python-dateutil's ``rrule``, called by 204 tests, outranked
    ``easter()`` for a request about Easter dates.
    """
    ordered = sorted(values, reverse=True)
    return sum(v / (i + 1) for i, v in enumerate(ordered))


def _mention_evidence(
    index: RepoIndex, request: str, paths: Sequence[str], acc: _Scores
) -> tuple[list[Symbol], list[Symbol], list[str]]:
    """Definitions named in the request: (code-like, all, code-like names not defined)."""
    missing: list[str] = []
    mentioned: list[Symbol] = []
    named: list[Symbol] = []
    # Names the project uses from elsewhere (``json.loads``, ``ValueError``) are not missing.
    foreign = set(dir(builtins))
    for m in index.modules:
        foreign.update(m.imported_names)
        foreign.update(m.refs)  # attributes of other libraries the code uses (``json.load``)
        foreign.update(part for imp in m.imports for part in imp.split("."))
    words = set(split_words(request))
    for men in mentions(request):
        defs: Sequence[Symbol] = index.definitions(men.name)
        if not defs and men.code_like:
            defs = dispatched(index, men.name)
        if not defs:
            defs = special_methods(index, men, words)
        if not defs:
            if (
                men.code_like
                and men.name not in foreign
                and not men.name.endswith(".py")
                and not _is_module(men.name, paths)
            ):
                missing.append(men.name)
            continue
        if not men.code_like and len(men.name) < 4:
            continue
        bonus = _MENTION_SCORE if men.code_like else _PLAIN_MENTION_SCORE
        defs = _bare_call_targets(request, men.name, _distinct(defs))
        for d in defs:
            acc.add(d, bonus / len(defs), f"named {men.name}")
            named.append(d)
            if men.code_like:
                mentioned.append(d)
    return mentioned, named, missing


_PHRASE_WORDS = (2, 4)


def _phrase_evidence(index: RepoIndex, request: str, written: set[str], acc: _Scores) -> None:
    """Definitions whose name of several words the request writes out as words.

    "Discarding a value from a sorted set" names ``SortedSet``, "the progress bar" names
    ``ProgressBar``, "the sliding window function" ``sliding_window``: the whole name, word
    for word and in order, is as much a mention as a one-word name written plainly (a plain
    mention's score, shared by the definitions of that name). Each word alone matched many
    definitions ("sorted" every sorted container); the run of them matches one name.
    """
    words = split_words(request)
    lo, hi = _PHRASE_WORDS
    runs = {tuple(words[i : i + n]) for n in range(lo, hi + 1) for i in range(len(words) - n + 1)}
    if not runs:
        return
    for name in index.names():
        if "." in name or name in written:
            continue
        parts = _split(name)
        if not lo <= len(parts) <= hi or parts not in runs:
            continue
        defs = _distinct(index.definitions(name))
        for d in defs:
            score = _PLAIN_MENTION_SCORE / len(defs)
            if _is_exception(d):
                # "... is a lexer error" tells what goes wrong, not where: the code that
                # raises it is the place.
                raisers = _distinct(index.referrers(d.name))
                for r in raisers:
                    acc.add(r, score / len(raisers), f"raises {name}")
                continue
            acc.add(d, score, f"named {name} in words")
            for member in _members(index, d):
                acc.add(member, _MEMBER_SHARE * score)


_EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")


def _is_exception(sym: Symbol) -> bool:
    """A class named, or derived from a class named, as Python names exceptions."""
    if sym.kind is not SymbolKind.CLASS:
        return False
    bases = sym.signature.partition("(")[2]
    return sym.name.endswith(_EXCEPTION_SUFFIXES) or any(
        b.strip().rpartition(".")[2].endswith(_EXCEPTION_SUFFIXES) for b in bases.split(",")
    )


def _members(index: RepoIndex, cls: Symbol) -> list[Symbol]:
    """The methods of class ``cls`` (none for a function)."""
    entry = index.get(cls.path) if cls.kind is SymbolKind.CLASS else None
    return [
        m
        for m in (_distinct(entry.symbols) if entry is not None else ())
        if m.parent == cls.qualname and m.kind is SymbolKind.METHOD
    ]


# Python's data model: a builtin calls the special method of its argument's class (``str(x)``
# is ``type(x).__str__(x)``). Those whose names are no English word mean the builtin even as a
# plain word ("the repr of a job").
_SPECIAL_BUILTINS = frozenset(
    "abs bool bytes complex dir float format hash int iter len next repr reversed round str".split()
)
_NOT_ENGLISH = frozenset("abs bool int iter len repr str".split())


def special_methods(index: RepoIndex, men: Mention, words: set[str]) -> list[Symbol]:
    """The special methods a builtin named in the request calls: ``str()`` -> ``__str__``.

    Only those of classes the request speaks of (a word of the class's name among the
    request's ``words``): "str() of a parsed requirement" is ``Requirement.__str__``; a
    ``len(result)`` of no class the request names says nothing about which ``__len__``.
    """
    if men.name not in _SPECIAL_BUILTINS or not (men.code_like or men.name in _NOT_ENGLISH):
        return []
    return [
        s
        for s in _distinct(index.definitions(f"__{men.name}__"))
        if s.kind is SymbolKind.METHOD and set(split_words(s.parent)) & words
    ]


# How many definitions of one class or module must share a prefix for it to be a convention.
_DISPATCH_FAMILY = 3


def dispatched(index: RepoIndex, name: str) -> list[Symbol]:
    """Definitions that implement ``name`` under a dispatch prefix, where nothing is ``name``.

    Interpreters, command lines and visitors look their handlers up by a prefixed name
    (``getattr(self, "_func_" + name)``): the ``avg()`` a user of jmespath calls is
    ``Functions._func_avg``, a ``check`` subcommand ``cmd_check``. A prefix counts when at
    least three definitions of the same class or module carry it (a convention, not one
    name that happens to end the same way).
    """
    suffix = "_" + name
    found = [s for s in index.symbols() if s.name.endswith(suffix) and s.name != suffix]
    if not found:
        return []
    families = {(d.path, d.parent, d.name[: -len(name)]) for d in found}
    size: Counter[tuple[str, str, str]] = Counter(
        key
        for s in _distinct(index.symbols())
        for key in families
        if (s.path, s.parent) == key[:2] and s.name.startswith(key[2])
    )
    return _distinct(
        d for d in found if size[(d.path, d.parent, d.name[: -len(name)])] >= _DISPATCH_FAMILY
    )


def _bare_call_targets(request: str, name: str, defs: Sequence[Symbol]) -> Sequence[Symbol]:
    """The definitions a mention of ``name`` means: the top-level ones for a bare call.

    ``search()`` in a request is what its users call as ``search()``, the module's function,
    not a method ``Parser.search`` (written ``.search()`` or ``Parser.search``).
    """
    top = [d for d in defs if "." not in d.qualname]
    if not top or len(top) == len(defs):
        return defs
    bare = re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", request)
    dotted = re.search(rf"\.{re.escape(name)}\b", request)
    return top if bare and not dotted else defs


# Text the request quotes ('...', "...", `...`) or a command-line option it names (--help).
_QUOTED = re.compile(
    r"'([^'\n]{3,80})'|\"([^\"\n]{3,80})\"|`([^`\n]{3,80})`|(?<![\w-])(--[A-Za-z][\w-]{2,})"
)


def request_literals(request: str) -> list[str]:
    """Exact text the request quotes or options it names: what a maintainer would grep for."""
    found = (next(g for g in m.groups() if g) for m in _QUOTED.finditer(request))
    return list(dict.fromkeys(t for t in found if not _IDENT.fullmatch(t)))


_OPTION = re.compile(r"(?<![\w-])--[A-Za-z][\w-]+")


def _literal_evidence(index: RepoIndex, request: str, acc: _Scores) -> None:
    """Definitions whose string constants hold text the request quotes, as named ones score.

    A command-line option the request names that no definition holds yet (a new ``--limit``)
    goes where the program's options are declared: the definitions holding other options.
    """
    new_options: list[str] = []
    for text in request_literals(request):
        holders = [s for s in index.symbols() if any(text in lit for lit in s.literals)]
        for s in holders:
            acc.add(s, _MENTION_SCORE / len(holders), f"holds {text!r}")
        if not holders and _OPTION.fullmatch(text):
            new_options.append(text)
    if new_options:
        declaring = [s for s in index.symbols() if any(_OPTION.search(lit) for lit in s.literals)]
        for s in declaring:
            acc.add(s, _MENTION_SCORE / len(declaring), f"declares options like {new_options[0]}")


def _graph_evidence(index: RepoIndex, acc: _Scores) -> None:
    """The callers and callees of the strongest matches get part of their score."""
    strongest = sorted(acc.scores.items(), key=lambda kv: -kv[1])[:5]
    for key, sc in strongest:
        sym = acc.symbols[key]
        near = _distinct(
            [*index.callees(sym), *index.referrers(sym.name, attribute=bool(sym.parent))]
        )
        for d in near:
            if (d.path, d.qualname) != key and d.kind is not SymbolKind.CONSTANT:
                share = _NEIGHBOUR_SHARE * sc / max(len(near), 1) ** 0.5
                acc.add(d, share, f"near {sym.qualname}")


# The weight of code the project's tests never import (setup.py, docs/ examples, tools/
# scripts, a vendored versioneer.py) against the package they test, and of deprecated code.
_DEMOTED_SHARE = 0.5


def _demote_unimported(index: RepoIndex, acc: _Scores) -> None:
    """Scale down the definitions of source modules outside every package the tests import.

    A project's docs and tools often copy its API (python-slugify's
    ``tools/legacy_reference.py``, semver's ``docs/advanced/*.py``) and match a request as
    well as the package does; the change belongs in the package. Without tests that import
    a source module, nothing is scaled.
    """
    imported = {imp.split(".")[0] for m in index.test_modules() for imp in m.imports if imp}
    tops = {m.path: module_name(m.path).split(".")[0] for m in index.source_modules()}
    if not imported & set(tops.values()):
        return
    for key in list(acc.scores):
        if tops.get(key[0], "") not in imported:
            acc.scores[key] *= _DEMOTED_SHARE


def _demote_deprecated(acc: _Scores) -> None:
    """Scale down definitions marked ``@deprecated``: they forward to what replaced them.

    semver's ``_deprecated.match`` matched a request about matching versions as well as
    ``Version.match``, which it calls and which is where the behaviour lives.
    """
    for key, sym in acc.symbols.items():
        if any(d.rpartition(".")[2].lower() == "deprecated" for d in sym.decorators):
            acc.scores[key] *= _DEMOTED_SHARE


def localize(index: RepoIndex, request: str, *, limit: int = 30) -> Localization:
    """Rank the source modules and symbols of ``index`` for ``request``."""
    sources = index.source_modules()
    paths = [m.path for m in sources]
    query = _query(request)
    acc = _Scores()
    _words_evidence(index, query, acc)
    mentioned, named, missing = _mention_evidence(index, request, paths, acc)
    _phrase_evidence(index, request, {m.name for m in mentions(request)}, acc)
    _literal_evidence(index, request, acc)
    _graph_evidence(index, acc)
    _demote_unimported(index, acc)
    _demote_deprecated(acc)
    ranked = acc.ranked()
    mentioned_paths = _mentioned_paths(request, paths)
    files = _rank_files(ranked, mentioned_paths, sources, bm25_query=query, matched=acc.matched)
    names = index.names()
    return Localization(
        files=tuple(files),
        symbols=tuple(ranked[:limit]),
        mentioned_paths=tuple(mentioned_paths),
        mentioned=tuple(dict.fromkeys(mentioned)),
        named=tuple(dict.fromkeys(named)),
        missing=tuple(n for n in dict.fromkeys(missing) if n not in names),
        scores=dict(acc.scores),
    )


def _is_module(name: str, paths: Sequence[str]) -> bool:
    return any(p.rpartition("/")[2].removesuffix(".py") == name for p in paths) or any(
        f"/{name}/" in f"/{p}" for p in paths
    )


def _rank_files(
    ranked: Sequence[RankedSymbol],
    mentioned_paths: Sequence[str],
    sources: Sequence[ModuleIndex],
    *,
    bm25_query: dict[str, float],
    matched: dict[str, set[str]],
) -> list[RankedFile]:
    per_file: dict[str, list[float]] = defaultdict(list)
    why: dict[str, list[str]] = defaultdict(list)
    for r in ranked:
        per_file[r.symbol.path].append(r.score)
        if len(why[r.symbol.path]) < 2:
            why[r.symbol.path].append(r.symbol.qualname)
    # Module docstrings and names are evidence too (a module with no definitions yet).
    for m in sources:
        own = set(split_words(m.doc)) | set(split_words(m.path.removesuffix(".py")))
        overlap = own & set(bm25_query)
        if overlap:
            per_file[m.path].append(0.5 * len(overlap))
            why[m.path].append("module " + ",".join(sorted(overlap)))
            matched[m.path].update(overlap)
    for p in mentioned_paths:
        per_file[p].append(2 * _MENTION_SCORE)
        why[p].insert(0, "path named")
    out = []
    for path, vals in per_file.items():
        vals.sort(reverse=True)
        # The best symbol decides (a change lands in a definition); a few more good ones add a
        # little (a module about the topic), not so much that a large module wins by size.
        score = vals[0] + _TOPIC_SHARE * sum(vals[1:4])
        words = frozenset(matched.get(path, ()))
        out.append(RankedFile(path, round(score, 4), tuple(why[path]), words))
    out.sort(key=lambda f: (-f.score, f.path))
    return out


def narrow_focus(qualnames: Sequence[str], limit: int) -> tuple[str, ...]:
    """The first ``limit`` distinct qualnames, a class left out when one of its members is in."""
    names = list(dict.fromkeys(qualnames))
    parents = {q.rpartition(".")[0] for q in names if "." in q}
    return tuple(q for q in names if q not in parents)[:limit]


def outline_lines(
    index: RepoIndex, loc: Localization | None = None, *, max_files: int = 12, max_names: int = 8
) -> list[str]:
    """A compact outline, best files first: ``path: name, Class.method, ...``.

    Without a localization, files are listed by path. Each file lists its best-ranked symbols
    first, then the remaining top-level names, up to ``max_names``.
    """
    ranked = [f.path for f in loc.files] if loc is not None else []
    rest = [m.path for m in index.modules if m.path not in ranked]
    lines: list[str] = []
    for path in [*ranked, *rest][: max(max_files, len(ranked[:max_files]))]:
        m = index.get(path)
        if m is None:
            continue
        best = [r.symbol.qualname for r in loc.symbols_in(path, max_names)] if loc else []
        tops = [s.name for s in m.symbols if s.kind in (SymbolKind.FUNCTION, SymbolKind.CLASS)]
        names = list(dict.fromkeys([*best, *tops]))
        if len(names) > max_names:
            names = [*names[:max_names], "..."]
        lines.append(f"{path}: {', '.join(names)}" if names else path)
    hidden = len(index) - len(lines)
    if hidden > 0:
        lines.append(f"... and {hidden} more modules")
    return lines
