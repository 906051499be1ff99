"""Localization on three project shapes (flat module, package with code in __init__, src/)."""

from __future__ import annotations

import pytest

from coditect.index import (
    RepoIndex,
    UnsupportedProjectError,
    index_module,
    localize,
    outline_lines,
    split_words,
)
from coditect.index.rank import Mention, _diminishing, _is_gerund, special_methods
from coditect.taskqueue.targets import choose_module

# Request -> (shape, expected file, expected best symbol). No request shares a word with a
# module name; most describe a symptom without naming the code.
CASES = [
    (
        "Withdrawing more money than the account holds should raise an error",
        "flat",
        "wimble.py",
        "Ledger.withdraw",
    ),
    ("Titles with accents give an empty URL slug", "flat", "wimble.py", "slugify_title"),
    (
        "Spans like 1h30m are read wrong: the minutes are ignored",
        "package",
        "korvo/__init__.py",
        "parse_duration",
    ),
    (
        "The cheapest route between two nodes is not found when there is a detour",
        "src",
        "src/plinth/_alpha.py",
        "Graph.shortest_path",
    ),
    (
        "Nested settings dictionaries should be combined deeply",
        "src",
        "src/plinth/_beta.py",
        "merge_dicts",
    ),
]


@pytest.mark.parametrize(("request_text", "name", "path", "symbol"), CASES)
def test_symptoms_find_the_file_and_the_symbol(index_of, request_text, name, path, symbol):
    index = index_of(name)
    loc = localize(index, request_text)
    assert loc.top_file == path
    # Best ranked, or second after its own class (the focus shows the member, not the class).
    best = [r.symbol.qualname for r in loc.symbols[:2]]
    assert best[0] == symbol or best == [symbol.partition(".")[0], symbol]
    choice = choose_module(request_text, index)
    assert choice.path == path and choice.focus[0] == symbol


def test_exact_names_and_paths_win(index_of):
    index = index_of("src")
    assert choose_module("Make `load_settings` accept a Path", index).rule == "symbol"
    choice = choose_module("Give plinth/cli.py a --verbose option", index)
    assert (choice.path, choice.rule) == ("src/plinth/cli.py", "path")
    assert choose_module("Tidy plinth._beta", index).path == "src/plinth/_beta.py"


def test_the_planner_pick_decides_without_clear_evidence(index_of):
    index = index_of("src")
    choice = choose_module("Add a progress bar", index, targets=("src/plinth/cli.py",))
    assert (choice.path, choice.rule) == ("src/plinth/cli.py", "target")
    new = choose_module("Add a progress bar", index, targets=("src/plinth/bars.py",))
    assert (new.path, new.rule) == ("src/plinth/bars.py", "new")
    # A new file outside every package is not a place for code.
    assert choose_module("Add a progress bar", index, targets=("elsewhere/x.py",)).rule != "new"


def test_the_planner_picks_among_the_modules_the_evidence_does_not_rule_out():
    index = RepoIndex()
    for path, source in {
        "pkg/keys.py": "def make_key(*args, **kwargs):\n"
        '    """The cache key for a call\'s arguments."""\n    return args\n',
        "pkg/store.py": "class Store:\n    def lookup(self, key, args):\n"
        '        """The cached value of a call, by key and arguments."""\n        return key\n',
        "pkg/wrappers.py": 'def memoize(func):\n    """Wrap a function."""\n    return func\n',
    }.items():
        index.put(index_module(path, source))
    request = (
        "A function called with the same keyword arguments in another order gets a second cache key"
    )
    # store.py is close behind keys.py: the planner's pick between them stands.
    picked = choose_module(request, index, targets=("pkg/store.py", "pkg/wrappers.py"))
    assert (picked.path, picked.rule, picked.also) == ("pkg/store.py", "target", ())
    # Next to keys.py, wrappers.py has hardly any evidence: the pick is overruled.
    overruled = choose_module(request, index, targets=("pkg/wrappers.py",))
    assert (overruled.path, overruled.rule) == ("pkg/keys.py", "ranked")


def test_without_evidence_the_code_goes_where_the_code_is(index_of):
    # All of this package's code is in __init__.py: never invent a core.py.
    choice = choose_module("Add zzz", index_of("package"))
    assert (choice.path, choice.rule) == ("korvo/__init__.py", "package")
    assert choose_module("Add zzz", index_of("flat")).path == "wimble.py"


def test_missing_names_are_reported(index_of):
    loc = localize(index_of("flat"), "Fix `withdrew_all()` so that it empties the Ledger")
    assert loc.missing == ("withdrew_all",)
    assert [s.qualname for s in loc.mentioned] == []
    assert "Ledger" in [s.qualname for s in loc.named]


def test_a_project_without_python_is_unsupported():
    with pytest.raises(UnsupportedProjectError, match="unsupported project"):
        choose_module("Add a thing", RepoIndex())


def test_tests_and_the_reference_graph_are_evidence(index_of):
    index = index_of("flat")
    loc = localize(index, "reduces the balance")
    reasons = {r.symbol.qualname: r.reasons for r in loc.symbols}
    assert any("tested by" in why for why in reasons["Ledger.withdraw"])
    src = index_of("src")
    loc = localize(src, "`load_settings` breaks")
    near = {r.symbol.qualname for r in loc.symbols}
    assert {"merge_dicts", "main"} <= near  # its callee and its caller


def test_outline_is_ranked_and_compact(index_of):
    index = index_of("src")
    lines = outline_lines(index, localize(index, "combine two settings dictionaries"))
    assert lines[0].startswith("src/plinth/_beta.py: merge_dicts")
    assert outline_lines(index)[0].startswith("src/plinth/__init__.py")


def test_split_words():
    assert split_words("parseHTTPDate parse_http_dates") == ["pars", "http", "dat"] * 2
    assert split_words("parsing parsed classes boxes an of") == ["pars", "pars", "class", "box"]
    # English stop words are no evidence of place, even in a name (``_date_and_delta``).
    assert split_words("The date and the delta, for this") == ["dat", "delta"]
    # Porter's condition: a suffix goes only where a vowel is left ("string" is not "str").
    assert split_words("strings string __str__ spring") == ["string", "string", "str", "spring"]
    # Porter's step 1b undoes a doubled consonant, but not l, s, z or a three-letter stem.
    assert split_words("dropping padded falling passed added") == [
        "drop",
        "pad",
        "fall",
        "pass",
        "add",
    ]


def test_module_entry_has_signatures_docs_spans_and_exports(sources):
    m = index_module("korvo/__init__.py", sources["package"]["korvo/__init__.py"])
    timer = m.find("Timer.elapsed")
    assert timer is not None and timer.signature == "def elapsed(self)"
    assert timer.doc == "Seconds since start." and timer.parent == "Timer"
    assert m.exports == ("Timer", "format_duration", "parse_duration")
    assert m.module == "korvo" and "re" in m.imports
    bad = index_module("x.py", "def (:\n")
    assert bad.error and not bad.symbols
    rel = index_module("src/p/q/m.py", "from ..r import s\nfrom . import t\n")
    assert rel.imports == ("p.r", "p.r.s", "p.q", "p.q.t")


def test_a_change_in_two_places_declares_both_modules(index_of):
    index = index_of("src")
    choice = choose_module("Thread a `strict` flag from `main` through `load_settings`", index)
    assert {choice.path, *choice.also} == {"src/plinth/cli.py", "src/plinth/_beta.py"}
    listed = choose_module(
        "Add a --graph option", index, targets=("src/plinth/cli.py", "src/plinth/_alpha.py")
    )
    assert (listed.path, listed.also) == ("src/plinth/cli.py", ("src/plinth/_alpha.py",))


def test_library_and_builtin_names_are_not_missing(index_of):
    loc = localize(
        index_of("src"), "Fix `json.load` errors: raise `ValueError` from `load_settings`"
    )
    assert loc.missing == ()


def _one_module(path: str, source: str) -> RepoIndex:
    index = RepoIndex()
    index.put(index_module(path, source))
    return index


def test_a_bare_call_names_the_module_function_not_a_method_of_that_name():
    source = (
        "class Parser:\n"
        "    def search(self, text):\n        return text\n\n"
        "    def findall(self, text):\n        return [text]\n\n\n"
        "def search(fmt, text):\n    return Parser().search(text)\n\n\n"
        "def findall(fmt, text):\n    return Parser().findall(text)\n"
    )
    index = _one_module("pkg.py", source)
    loc = localize(index, "search() and findall() ignore the flag")
    assert [s.qualname for s in loc.named] == ["search", "findall"]
    # Written as a method, the mention keeps both.
    loc = localize(index, "Parser.search() and .findall() ignore the flag")
    assert {"Parser.findall", "findall"} <= {s.qualname for s in loc.named}


def test_text_the_request_quotes_finds_the_definition_holding_it():
    source = (
        "def main(argv):\n"
        '    """Usage: tool [options] FILE\n\n    -h, --help   show this message\n    """\n'
        '    opts = ["help", "header"]\n    return opts\n\n\n'
        "def render(rows):\n"
        '    """Render rows as text."""\n'
        '    raise ValueError("cannot render an empty table")\n'
    )
    index = _one_module("tool.py", source)
    loc = localize(index, "Add an option --width N, and describe it in the --help text")
    assert loc.symbols[0].symbol.qualname == "main"
    assert "holds '--help'" in loc.symbols[0].reasons
    loc = localize(index, "It fails with 'cannot render an empty table' on no rows")
    assert loc.symbols[0].symbol.qualname == "render"


def test_many_weak_tests_of_an_entry_point_do_not_bury_the_place_to_change():
    # Forty tests call the main function, each matching the request on a common word; the
    # command-line handler that holds the option is where the change goes.
    source = (
        "def render(rows, width=None):\n"
        '    """Render rows as a text grid."""\n    return str(rows)\n\n\n'
        "def _main(argv):\n"
        '    """Usage: grid [options] FILE\n\n    --width N   wrap at N columns\n    """\n'
        '    opts = ["width=", "help"]\n    return render(argv)\n'
    )
    tests = "from grid import render\n\n" + "".join(
        f"\n\ndef test_render_grid_{i}():\n    assert render([[{i}]])\n" for i in range(40)
    )
    index = _one_module("grid.py", source)
    index.put(index_module("tests/test_grid.py", tests))
    loc = localize(index, "The grid command rejects --width: add the option so grid wraps")
    assert loc.symbols[0].symbol.qualname == "_main"
    render = next(r for r in loc.symbols if r.symbol.qualname == "render")
    assert "and 37 more" in " ".join(render.reasons)  # the evidence is listed, not repeated


def test_a_method_is_called_through_an_attribute_not_by_a_bare_name():
    source = (
        "class Html(str):\n"
        "    def str(self):\n        return self\n\n"
        "    def size(self):\n        return len(self)\n\n\n"
        "def width(text):\n    size = 3\n    return str(text), size\n\n\n"
        "def measure(page):\n    return page.size()\n"
    )
    index = _one_module("page.py", source)
    callees = {
        m: {d.qualname for d in index.callees(index.get("page.py").find(m))}
        for m in ("width", "measure")
    }
    assert callees == {"width": set(), "measure": {"Html.size"}}
    assert [s.qualname for s in index.referrers("size", attribute=True)] == ["measure"]


def test_a_new_command_line_option_goes_where_the_options_are_declared():
    source = (
        "import argparse\n\n\n"
        "def build_parser():\n"
        "    parser = argparse.ArgumentParser()\n"
        '    parser.add_argument("--depth", type=int)\n'
        "    return parser\n\n\n"
        "def walk(tree, depth=None):\n"
        '    """Walk a tree down to a depth, yielding each node and its children."""\n'
        "    return [tree]\n"
    )
    index = _one_module("walker.py", source)
    loc = localize(index, "Add a --children-only flag so the tool prints each node's children")
    assert loc.symbols[0].symbol.qualname == "build_parser"
    assert "declares options like --children-only" in loc.symbols[0].reasons


def test_a_name_defined_several_times_counts_once():
    # ``@overload`` stubs and the implementation are one place to change, not three times
    # the evidence of one.
    stubs = "".join(
        f"    @overload\n    def get(self, value: {t}) -> str: ...\n\n" for t in ("int", "str")
    )
    source = (
        "from typing import overload\n\n\n"
        f"class Reader:\n{stubs}"
        '    def get(self, value):\n        """Get a token from the value."""\n'
        "        return str(value)\n\n"
        '    def token(self, value):\n        """The token of a value, parsed."""\n'
        "        return value\n"
    )
    loc = localize(_one_module("reader.py", source), "the token of a parsed value is wrong")
    assert [r.symbol.qualname for r in loc.symbols[:2]] == ["Reader.token", "Reader.get"]
    get = next(r for r in loc.symbols if r.symbol.qualname == "Reader.get")
    assert len([x for x in get.reasons if x.startswith("words")]) == 1


def test_a_call_of_a_name_the_code_dispatches_to_finds_its_handler():
    source = (
        "class Functions:\n"
        "    def call_function(self, name, args):\n"
        "        return getattr(self, '_func_' + name)(*args)\n\n"
        "    def _func_abs(self, arg):\n        return abs(arg)\n\n"
        "    def _func_avg(self, arg):\n        return sum(arg) / len(arg)\n\n"
        "    def _func_max(self, arg):\n        return max(arg)\n\n\n"
        "def solo_avg(values):\n    return values\n"
    )
    index = _one_module("functions.py", source)
    loc = localize(index, "avg([]) raises ZeroDivisionError; it should give null")
    assert loc.symbols[0].symbol.qualname == "Functions._func_avg"
    assert "avg" not in loc.missing
    # One definition that happens to end the same way is no dispatch convention.
    loc = localize(_one_module("solo.py", "def solo_mean(v):\n    return v\n"), "mean([])")
    assert "mean" in loc.missing and loc.named == ()


def test_code_the_tests_never_import_weighs_less_than_the_package():
    body = 'def slugify(text, max_length=0):\n    """Make a slug of the text."""\n    return text\n'
    index = RepoIndex()
    index.put(index_module("docs/example_slug.py", body))
    index.put(index_module("slugger/core.py", body))
    index.put(index_module("tests/test_core.py", "from slugger.core import slugify\n"))
    loc = localize(index, "the slug of a long text ignores max_length")
    assert loc.files[0].path == "slugger/core.py"
    # Without tests that import the package, nothing is scaled down.
    alone = RepoIndex()
    alone.put(index_module("a.py", body))
    alone.put(index_module("b.py", body))
    assert len({r.score for r in localize(alone, "slug of a text").symbols}) == 1


def test_a_deprecated_definition_yields_to_what_replaced_it():
    source = (
        "from .deprecation import deprecated\n\n\n"
        "class Version:\n"
        '    def match(self, expr):\n        """Match this version against an expression."""\n'
        "        return expr\n\n\n"
        "@deprecated(replace='Version.match')\n"
        "def match(version, match_expr):\n"
        '    """Match a version against an expression."""\n'
        "    return Version(version).match(match_expr)\n"
    )
    index = _one_module("semver.py", source)
    assert index.get("semver.py").find("match").decorators == ("deprecated",)
    loc = localize(index, "matching a version against an expression with spaces fails")
    assert loc.symbols[0].symbol.qualname == "Version.match"


def test_a_request_opening_with_a_gerund_counts_its_first_word_in_full():
    source = (
        "class Store:\n"
        "    def drop_row(self, key):\n        return key\n\n"
        '    def get_row(self, key):\n        """The row under a key."""\n'
        "        return key\n"
    )
    index = _one_module("store.py", source)

    def score(request: str) -> float:
        return next(
            r.score for r in localize(index, request).symbols if r.symbol.name == "drop_row"
        )

    # The subject is the action: "dropping" weighs as "dropped" does inside the sentence.
    assert score("Dropping the last row by its key") == score("The last row dropped by its key")
    # An imperative's verb says what to do, not where: it counts half.
    assert score("Drop a row by its key") < score("Dropping a row by its key")
    # The stemmer's condition: a vowel before -ing ("Bring", "String" are no gerunds).
    assert [_is_gerund(w) for w in ("Dropping", "Counting", "Bring", "String")] == [
        True,
        True,
        False,
        False,
    ]


def test_a_builtin_named_in_the_request_finds_the_special_method_it_calls():
    source = (
        "class Job:\n"
        "    def tag(self, *tags):\n        return self\n\n"
        "    def __repr__(self):\n        return 'Job'\n\n\n"
        "class Queue:\n"
        "    def __repr__(self):\n        return 'Queue'\n\n"
        "    def __str__(self):\n        return 'Queue'\n"
    )
    index = _one_module("jobs.py", source)
    # "repr" is no English word: a plain mention is the builtin; the class spoken of decides.
    loc = localize(index, "The repr of a job should also show its tags")
    assert loc.symbols[0].symbol.qualname == "Job.__repr__"
    assert "named repr" in loc.symbols[0].reasons
    loc = localize(index, "str(queue) gives a bare name")
    assert loc.symbols[0].symbol.qualname == "Queue.__str__"
    # "round" is an English word: only a call of the builtin means ``__round__``; and a
    # builtin applied to no class the request speaks of points at no special method.
    assert special_methods(index, Mention("round", False), {"job"}) == []
    assert special_methods(index, Mention("repr", True), {"result"}) == []


def test_correlated_loans_add_up_like_a_logarithm():
    # 204 tests lending 1 each weigh about ln(204) + 0.58, not 2 * sqrt(204) (about 28):
    # python-dateutil's rrule, called by 204 tests, had outranked easter() for Easter dates.
    assert 5.8 < _diminishing([1.0] * 204) < 6.0
    assert _diminishing([3.0, 1.0]) == 3.5


def test_a_camel_case_name_after_an_acronym_is_code_and_acronym_plurals_are_words():
    from coditect.index.rank import mentions

    found = {m.name: m.code_like for m in mentions("Remove MRUCache; HTTPServer URLs and APIs")}
    assert found == {
        "Remove": False,
        "MRUCache": True,
        "HTTPServer": True,
        "URLs": False,
        "and": False,
        "APIs": False,
    }


def _index(sources: dict[str, str]) -> RepoIndex:
    index = RepoIndex()
    for path, source in sources.items():
        index.put(index_module(path, source))
    return index


def test_a_name_of_several_words_written_as_words_is_a_mention():
    index = _index(
        {
            "pkg/lists.py": "class OrderedList:\n"
            "    def add(self, value):\n        pass\n"
            "    def remove(self, value):\n        pass\n"
            "    def extend(self, values):\n        pass\n",
            "pkg/bags.py": "class OrderedBag:\n    def remove(self, value):\n        pass\n",
        }
    )
    loc = localize(index, "Removing a value that is not in an ordered bag raises KeyError")
    order = [r.symbol.qualname for r in loc.symbols]
    assert loc.files[0].path == "pkg/bags.py"
    assert order.index("OrderedBag.remove") < order.index("OrderedList.remove")
    assert any("named OrderedBag in words" in r for s in loc.symbols for r in s.reasons)
    # One word of the name is no such mention.
    alone = localize(index, "Removing a bag raises KeyError")
    assert not any("in words" in r for s in alone.symbols for r in s.reasons)


def test_an_error_named_in_words_points_at_the_code_that_raises_it():
    index = _index(
        {
            "pkg/errors.py": "class TokenError(ValueError):\n    pass\n",
            "pkg/scanner.py": "from pkg.errors import TokenError\n\n\n"
            "def read_number(text):\n    raise TokenError(text)\n\n\n"
            "def read_name(text):\n    return text\n",
        }
    )
    loc = localize(index, "A leading plus sign in +1 is a token error; it should be a number")
    assert loc.files[0].path == "pkg/scanner.py"
    assert loc.symbols[0].symbol.qualname == "read_number"
    assert any("raises TokenError" in r for r in loc.symbols[0].reasons)
