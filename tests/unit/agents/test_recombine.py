"""Joining two candidates' changes to different definitions (pure logic)."""

import ast

from coditect.agents.codemerge import merge_source
from coditect.agents.recombine import changed_names, definition_code, joined_answers

ORIGINAL = '''import re


def dasherize(word):
    """Underscores to dashes."""
    return word.replace("_", "-")


def underscore(word):
    return word.lower()


class Box:
    size = 1

    def put(self, x):
        return x

    def take(self):
        return None
'''


def merged(code: str):
    return merge_source(ORIGINAL, code)


def test_changed_names_lists_replaced_and_added_members_one_by_one():
    m = merged(
        "class Box:\n    def take(self):\n        return 1\n\n    def a(self):\n        return 2\n\n    def b(self):\n        return 3\n"
    )
    assert changed_names(m) == ("Box.take", "Box.a", "Box.b")


def test_definition_code_gives_functions_whole_and_methods_under_their_class():
    code = definition_code(ORIGINAL, ["underscore", "Box.take", "Box.size"])
    tree = ast.parse(code)
    assert [type(n).__name__ for n in tree.body] == ["FunctionDef", "ClassDef"]
    assert code.startswith("def underscore(word):")
    assert "class Box:\n    size = 1\n\n    def take(self):" in code
    assert "def put" not in code


def test_two_answers_that_change_different_functions_are_joined():
    one = merged("def underscore(word):\n    return word.replace(' ', '_').lower()\n")
    two = merged(
        "import re\ndef dasherize(word):\n    return re.sub(' +', '-', word.replace('_', '-'))\n"
    )
    joined = joined_answers(ORIGINAL, [None, one, two], first=1, limit=4)
    assert [(j.base, j.other, j.taken) for j in joined] == [(1, 2, ("dasherize",))]
    result = merge_source(ORIGINAL, joined[0].code)
    assert set(result.replaced) == {"dasherize", "underscore"}
    assert "re.sub(' +', '-'" in result.source and "replace(' ', '_')" in result.source


def test_answers_changing_the_same_definitions_join_nothing():
    one = merged("def underscore(word):\n    return word.upper()\n")
    two = merged("def underscore(word):\n    return word\n\n\ndef helper(x):\n    return x\n")
    # two adds only a helper of its own besides: nothing a check could tell apart
    assert joined_answers(ORIGINAL, [one, two], first=0, limit=4) == []


def test_a_method_changed_by_another_answer_is_joined_with_the_helper_it_added():
    one = merged("def underscore(word):\n    return word.upper()\n")
    two = merged(
        "def _twice(x):\n    return 2 * x\n\n\n"
        "class Box:\n    def put(self, x):\n        return _twice(x)\n"
    )
    joined = joined_answers(ORIGINAL, [one, two], first=0, limit=4)
    assert len(joined) == 1 and set(joined[0].taken) == {"_twice", "Box.put"}
    result = merge_source(ORIGINAL, joined[0].code)
    assert "return _twice(x)" in result.source and "def _twice" in result.source
    assert "return word.upper()" in result.source


def test_joined_answers_are_capped_and_not_repeated_the_other_way_round():
    one = merged("def underscore(word):\n    return 1\n")
    two = merged("def dasherize(word):\n    return 2\n")
    three = merged("class Box:\n    def take(self):\n        return 3\n")
    joined = joined_answers(ORIGINAL, [one, two, three], first=0, limit=10)
    pairs = {frozenset((j.base, j.other)) for j in joined}
    assert len(pairs) == len(joined) == 3
    assert len(joined_answers(ORIGINAL, [one, two, three], first=0, limit=2)) == 2


def test_repeated_candidates_give_one_joined_answer():
    one = merged("def underscore(word):\n    return 1\n")
    two = merged("def dasherize(word):\n    return 2\n")
    joined = joined_answers(ORIGINAL, [one, two, two, two], first=0, limit=4)
    assert [(j.base, j.other) for j in joined] == [(0, 1)]
