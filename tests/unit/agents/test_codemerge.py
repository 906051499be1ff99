import ast

import pytest

from coditect.agents.codemerge import MergeError, merge_source
from coditect.agents.extract import extract_code
from coditect.agents.importmerge import ensure_imports

ORIGINAL = '''"""Module doc."""

import math

from pkg.util import helper


# A comment above add stays.
def add(a, b):
    """Add."""
    return a + b


@decorator
def old(x):
    return x


class Box:
    pass
'''


def test_extract_fenced_block_with_prose_around():
    answer = "Sure! Here it is:\n```python\ndef f():\n    return 1\n```\nThis returns 1."
    assert extract_code(answer) == "def f():\n    return 1\n"


def test_extract_joins_several_blocks_and_accepts_py_or_bare_fences():
    answer = "```py\ndef f():\n    pass\n```\ntext\n```\ndef g():\n    pass\n```"
    code = extract_code(answer)
    assert "def f" in code and "def g" in code


def test_extract_ignores_non_python_blocks():
    answer = "```bash\npip install x\n```\n```python\ndef f():\n    pass\n```"
    assert extract_code(answer) == "def f():\n    pass\n"


def test_extract_unclosed_fence_at_end_of_answer():
    assert extract_code("```python\ndef f():\n    return 2") == "def f():\n    return 2\n"


def test_extract_without_fences_skips_leading_prose():
    answer = "Here is the function:\ndef f():\n    return 3\n"
    assert extract_code(answer) == "def f():\n    return 3\n"


def test_extract_without_code_raises():
    with pytest.raises(MergeError, match="no Python code"):
        extract_code("I cannot help with that.")


def test_new_definition_is_appended_after_two_blank_lines():
    result = merge_source(ORIGINAL, "def sub(a, b):\n    return a - b\n")
    assert result.added == ("sub",) and result.replaced == ()
    assert result.source.endswith("class Box:\n    pass\n\n\ndef sub(a, b):\n    return a - b\n")
    assert result.source.startswith(ORIGINAL.rstrip("\n"))


def test_existing_definition_is_replaced_in_place_keeping_comments():
    result = merge_source(ORIGINAL, "def add(a, b):\n    return b + a\n")
    assert result.replaced == ("add",) and result.added == ()
    src = result.source
    assert "# A comment above add stays.\ndef add(a, b):\n    return b + a\n" in src
    assert src.index("def add") < src.index("def old") < src.index("class Box")
    assert '"""Add."""' not in src


def test_replacement_covers_the_decorators_of_the_old_definition():
    result = merge_source(ORIGINAL, "@other\ndef old(x):\n    return -x\n")
    assert "@decorator" not in result.source
    assert "@other\ndef old(x):\n    return -x" in result.source
    ast.parse(result.source)


def test_class_members_merge_and_identical_definitions_are_not_changes():
    same = 'def add(a, b):\n    """Add."""\n    return a + b\n'
    result = merge_source(ORIGINAL, same + "\nclass Box:\n    size = 1\n")
    assert result.added == ("Box.size",) and result.replaced == ()
    assert result.source.endswith("class Box:\n    pass\n    size = 1\n")
    assert not merge_source(ORIGINAL, same).changed


def test_missing_imports_are_added_after_existing_imports():
    code = "import os\nimport math\nfrom pkg.util import helper, other\n\ndef f():\n    return os.sep\n"
    result = merge_source(ORIGINAL, code)
    assert "import os" in result.imports_added
    lines = result.source.splitlines()
    assert lines.index("import os") < lines.index("def add(a, b):")
    assert "from pkg.util import helper, other" in lines  # the existing line is extended
    assert lines.count("import math") == 1


def test_imports_go_after_the_module_docstring_when_there_are_none():
    result = merge_source(
        '"""Doc."""\n\n\ndef a():\n    pass\n', "import re\n\ndef b():\n    return re\n"
    )
    assert result.source.startswith('"""Doc."""\n\nimport re\n')
    ast.parse(result.source)


def test_imports_at_top_of_file_without_docstring_or_imports():
    result = merge_source("def a():\n    pass\n", "import re\n\ndef b():\n    return re\n")
    assert result.source.startswith("import re\n\ndef a")


def test_main_block_prints_and_example_calls_are_dropped():
    code = (
        "def f(n):\n    return n\n\nprint(f(3))\nresult = f(4)\n"
        'if __name__ == "__main__":\n    print(f(5))\n'
    )
    result = merge_source(ORIGINAL, code)
    assert "print" not in result.source and "result =" not in result.source
    assert result.added == ("f",)


def test_constant_assignments_are_kept():
    result = merge_source(ORIGINAL, "LIMIT = 10\n\ndef f():\n    return LIMIT\n")
    assert result.added == ("LIMIT", "f")


def test_self_import_of_the_target_module_is_dropped():
    code = "from pkg.mod import add\n\ndef f():\n    return add(1, 2)\n"
    result = merge_source(ORIGINAL, code, self_module="pkg.mod")
    assert "from pkg.mod" not in result.source


def test_answer_that_does_not_parse_is_rejected():
    with pytest.raises(MergeError, match="does not parse"):
        merge_source(ORIGINAL, "def f(:\n    pass\n")


def test_an_answer_that_redefines_a_class_as_a_function_is_rejected():
    # Found on parse: the model answered `def Parser(...)` for the class Parser.
    with pytest.raises(MergeError, match="Box is a class in the file; .* a function"):
        merge_source(ORIGINAL, "def Box(x):\n    return x\n")


def test_an_import_that_would_rebind_the_files_module_name_is_qualified_instead():
    # Found on parse: `from parse import parse` added to a test file that calls parse.parse().
    original = "import parse\n\n\ndef test_old():\n    assert parse.parse('{}', 'a')\n"
    answer = (
        "import pytest\nfrom parse import parse, Result\n\n\n"
        "def test_new():\n    assert parse('{:d}', '-0x1F')[0] == -31  # parse(...)\n"
    )
    got = merge_source(original, answer).source
    assert "from parse import Result" in got and "from parse import parse" not in got
    assert "assert parse.parse('{:d}', '-0x1F')[0] == -31  # parse(...)" in got
    assert "assert parse.parse('{}', 'a')" in got


def test_an_import_of_a_module_name_that_the_answer_also_assigns_is_rejected():
    answer = "from parse import parse\n\n\ndef test_new(parse=None):\n    assert parse\n"
    with pytest.raises(MergeError, match="also assigns it"):
        merge_source("import parse\n\n\ndef test_old():\n    pass\n", answer)


def test_an_import_that_rebinds_a_module_to_another_modules_name_is_rejected():
    with pytest.raises(MergeError, match="would rebind `json`"):
        merge_source(
            "import json\n\n\ndef f():\n    pass\n",
            "from simplejson import json\n\n\ndef g():\n    return json\n",
        )


def test_an_answer_that_redefines_a_function_as_a_class_is_rejected():
    with pytest.raises(MergeError, match="old is a function in the file; .* as a class"):
        merge_source(ORIGINAL, "class old:\n    def old(self, x):\n        pass\n")


def test_answer_without_definitions_is_rejected():
    with pytest.raises(MergeError, match="no function or class"):
        merge_source(ORIGINAL, "import os\nprint(1)\n")


def test_new_file_gets_imports_then_definitions():
    code = "import pytest\nfrom calc.ops import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    result = merge_source(None, code)
    assert result.source == (
        "import pytest\nfrom calc.ops import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    assert result.added == ("test_add",)


def test_last_duplicate_in_answer_wins():
    result = merge_source(None, "def f():\n    return 1\n\ndef f():\n    return 2\n")
    assert result.source.count("def f") == 1 and "return 2" in result.source


def test_ensure_imports_adds_only_missing_lines():
    source, added = ensure_imports(ORIGINAL, "import math\nimport json\n")
    assert added == ("import json",)
    assert source.count("import math") == 1


def test_formatting_only_differences_are_unchanged():
    result = merge_source(ORIGINAL, 'def add(a,b):\n    """Add."""\n    return a+b  # same\n')
    assert result.unchanged == ("add",) and not result.changed


def test_salvage_and_caps():
    from coditect.agents.extract import cap_asserts, salvage_truncated

    cut = "def test_a():\n    assert 1\n\ndef test_b():\n    assert f(2"
    assert salvage_truncated(cut) == "def test_a():\n    assert 1\n"
    with pytest.raises(MergeError, match="cut off"):
        salvage_truncated("def test_a(:")
    from coditect.agents.extract import mid_answer_error

    assert mid_answer_error(cut) is None  # cut off: the salvage speaks for it
    assert mid_answer_error("def test_a():\n    assert [1,\n") is None
    mistake = "import pytest\n\ndef lru_with Peek():\n    pass\n\ndef test_a(lru_with Peek):\n"
    assert mid_answer_error(mistake) == "expected '(' (line 3: def lru_with Peek():)"
    many = "".join(f"def test_{i}():\n    assert {i}\n    assert {i}\n\n" for i in range(4))
    capped = cap_asserts(many, 1, max_tests=2)
    assert capped.count("def test_") == 2 and capped.count("assert") == 2


def test_a_definition_name_written_as_words_is_joined():
    from coditect.agents.extract import join_spaced_names

    # cachetools-lru-peek: two of three test answers named a test this way.
    answer = (
        "import pytest\n\nclass Lru Helper:\n    pass\n\n"
        "def test_lru_cache_with Peek():\n    assert peek() is None\n\n"
        "async def test_async  peek (x):\n    assert x\n\n"
        "def test_get(lru_cache_with Peek, y=1, *args, z: int = 2):\n    assert lru_cache_with_Peek\n"
    )
    fixed = join_spaced_names(answer)
    assert "class Lru_Helper:" in fixed and "def test_lru_cache_with_Peek():" in fixed
    assert "async def test_async_peek (x):" in fixed
    assert "def test_get(lru_cache_with_Peek, y=1, *args, z: int = 2):" in fixed
    compile(fixed, "answer", "exec")
    valid = 'def f():\n    """def a b(: is not code here."""\n'
    assert join_spaced_names(valid) == valid  # code that parses is left alone


def test_a_cut_off_test_that_checks_nothing_yet_is_dropped():
    from coditect.agents.extract import drop_unchecked_last_test, salvage_truncated

    # isodate: the assert line was the model's mistake (`== -4:30`); what parses before it is a
    # test that only calls the code, which passes whatever the code does.
    cut = (
        "from tz import parse\n\ndef test_a():\n    assert parse('Z') == 0\n\n"
        "def test_b():\n    result = parse('-05:30')\n    # Then\n"
        "    assert result == -4:30, 'wrong'\n\ndef test_c():\n    assert parse("
    )
    kept = drop_unchecked_last_test(salvage_truncated(cut))
    assert kept == "from tz import parse\n\ndef test_a():\n    assert parse('Z') == 0\n"
    with pytest.raises(MergeError, match="before its test checked anything"):
        drop_unchecked_last_test("def test_b():\n    result = parse('x')\n")
    checked = (
        "def test_a():\n    with pytest.raises(ValueError):\n        parse('x')\n\n"
        "def test_b(self):\n    self.assertEqual(parse('Z'), 0)\n"
    )
    assert drop_unchecked_last_test(checked) == checked


def test_a_cut_off_answer_keeps_only_its_complete_definitions():
    from coditect.agents.extract import drop_cut_definition, salvage_truncated

    cut = (
        "class Acc:\n    def add(self, x):\n        return x + 1\n\n"
        '    def sub(self, x):\n        """Subtract."""\n        if x:\n            return'
    )
    # What parses still holds a method that lost its body: it is dropped, not merged.
    kept = drop_cut_definition(salvage_truncated(cut))
    assert kept == "class Acc:\n    def add(self, x):\n        return x + 1\n"
    two = "def f():\n    return 1\n\n\n@dec\ndef g():\n    pass\n"
    assert drop_cut_definition(two) == "def f():\n    return 1\n"
    # A class with one method cut, after a function: the class goes.
    assert drop_cut_definition(
        "def f():\n    return 1\n\nclass A:\n    def m(self):\n        pass\n"
    ) == ("def f():\n    return 1\n")
    with pytest.raises(MergeError, match="cut off"):
        drop_cut_definition("def f():\n    return 1\n")


def test_redefinitions_of_existing_tests_are_dropped_unless_the_mission_wrote_them():
    from coditect.agents.extract import drop_redefinitions

    original = (
        "def test_a():\n    assert 1\n\n\nclass TestK:\n    def test_m(self):\n        pass\n"
    )
    answer = (
        "import os\n\n\ndef test_a():\n    assert 2\n\n\ndef test_new():\n    assert 3\n\n\n"
        "class TestK:\n    def test_m(self):\n        assert 0\n\n    def test_n(self):\n"
        "        pass\n"
    )
    code, dropped = drop_redefinitions(answer, original)
    assert dropped == ("test_a", "TestK.test_m")
    tree = ast.parse(code)
    assert [type(n).__name__ for n in tree.body] == ["Import", "FunctionDef", "ClassDef"]
    assert tree.body[1].name == "test_new"
    assert [m.name for m in tree.body[2].body] == ["test_n"]
    # A class whose every method exists goes whole; what the mission wrote may be rewritten.
    code, dropped = drop_redefinitions(
        "class TestK:\n    def test_m(self):\n        assert 0\n", original
    )
    assert dropped == ("TestK",) and code.strip() == ""
    assert drop_redefinitions(answer, original, keep={"test_a", "TestK.test_m"})[1] == ()
    assert drop_redefinitions(answer, None) == (answer, ())


def test_a_def_taking_self_is_the_method_even_when_a_function_has_its_name_too():
    # parse.py: the function parse(format, string) and the method Parser.parse(self, string)
    original = (
        "class Parser:\n    def parse(self, string):\n        return None\n\n\n"
        "def parse(format, string):\n    return Parser().parse(string)\n"
    )
    answer = "def parse(self, string, evaluate_result=True):\n    return string\n"
    result = merge_source(original, answer)
    assert result.replaced == ("Parser.parse",)
    assert "def parse(format, string):\n    return Parser().parse(string)" in result.source
    assert (
        "    def parse(self, string, evaluate_result=True):\n        return string" in result.source
    )
    # the function's own answer (no self) still replaces the function
    plain = merge_source(original, "def parse(format, string):\n    return 1\n")
    assert plain.replaced == ("parse",)


def test_a_method_answered_with_its_class_indentation_is_merged_into_the_class():
    # semver 3.2.0: Version.bump_minor asked for; the answer is the method as it stands
    original = (
        "class Version:\n    def __init__(self, major, minor=0, patch=0):\n"
        "        self.major, self.minor, self.patch = major, minor, patch\n\n"
        "    def bump_minor(self):\n        return Version(self.major, self.minor + 1, self.patch)\n"
    )
    answer = extract_code(
        "```python\n    def bump_minor(self):\n"
        "        return Version(self.major, self.minor + 1)\n```\n"
    )
    result = merge_source(original, answer)
    assert result.replaced == ("Version.bump_minor",)
    assert result.source == original.replace("self.minor + 1, self.patch)", "self.minor + 1)")
    with pytest.raises(MergeError, match="does not parse"):  # mixed indentation stays an error
        merge_source(original, "    def f(self):\n  return 1\n")
