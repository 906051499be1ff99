"""Edits in place: members of a class, exports in __init__, line endings, encodings, file modes."""

from __future__ import annotations

import ast
import os

import pytest

from coditect.agents.codejob import read_text_file, write_atomic
from coditect.agents.codemerge import MergeError, merge_source
from coditect.agents.importmerge import export_names

CLASS_FILE = '''import os

# The account type.
class Account:
    """Doc."""

    kind = "plain"  # a class attribute

    def deposit(self, amount):
        # keep this comment
        self.total += amount

    def withdraw(self, amount):
        self.total -= amount


def helper():
    return os.sep
'''


def test_a_method_in_the_answer_replaces_only_that_method():
    answer = "class Account:\n    def withdraw(self, amount):\n        self.total -= abs(amount)\n"
    result = merge_source(CLASS_FILE, answer)
    assert result.replaced == ("Account.withdraw",) and result.added == ()
    expected = CLASS_FILE.replace("self.total -= amount", "self.total -= abs(amount)")
    assert result.source == expected


def test_new_methods_and_attributes_join_the_class_and_placeholders_change_nothing():
    answer = (
        "class Account:\n"
        "    kind = 'gold'\n"
        "    limit = 10\n"
        "    def deposit(self, amount):\n"
        "        ...\n"
        "    def close(self):\n"
        "        return None\n"
    )
    result = merge_source(CLASS_FILE, answer)
    assert result.replaced == ("Account.kind",)
    assert result.added == ("Account.limit, Account.close",)
    src = result.source
    assert "# keep this comment\n        self.total += amount" in src  # placeholder ignored
    assert "    kind = 'gold'\n" in src and "a class attribute" not in src
    tree = ast.parse(src)
    account = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    names = [getattr(n, "name", None) or n.targets[0].id for n in account.body[1:]]
    assert names == ["kind", "deposit", "withdraw", "limit", "close"]
    assert src.endswith("def helper():\n    return os.sep\n")


def test_a_bare_method_goes_into_its_only_class_reindented():
    answer = "def withdraw(self, amount):\n  if amount < 0:\n    raise ValueError(amount)\n  self.total -= amount\n"
    result = merge_source(CLASS_FILE, answer)
    assert result.replaced == ("Account.withdraw",)
    # The method moves to the class's indentation; its body keeps its own relative indent.
    assert "    def withdraw(self, amount):\n      if amount < 0:\n        raise" in result.source
    assert "def helper" in result.source
    ast.parse(result.source)


def test_constants_are_replaced_in_place():
    result = merge_source("A = 1\nB = 2\n\n\ndef f():\n    return A\n", "B = 3\n")
    assert result.source == "A = 1\nB = 3\n\n\ndef f():\n    return A\n"


@pytest.mark.parametrize(
    ("init", "expected"),
    [
        (
            'from pkg.mod import a, b\n\n__all__ = ["a", "b"]\n',
            'from pkg.mod import a, b, c\n\n__all__ = ["a", "b", "c"]\n',
        ),
        (
            "from .mod import (\n    b,\n    a,\n)\n__all__ = (\n    'b',\n    'a',\n)  # end\n",
            "from .mod import b, a, c\n__all__ = (\n    'b',\n    'a',\n    'c',\n)  # end\n",
        ),
        ("import os\n", "import os\n"),  # nothing re-exported from pkg.mod: unchanged
    ],
)
def test_export_names(init, expected):
    assert export_names(init, "pkg.mod", ("c",))[0] == expected


def test_export_names_keeps_windows_line_endings_and_long_lines_wrap():
    init = "from pkg.mod import a\r\n__all__ = ['a']\r\n"
    out, added = export_names(init, "pkg.mod", ("b",))
    assert added == ("b",) and out == "from pkg.mod import a, b\r\n__all__ = ['a', 'b']\r\n"
    long = tuple(f"name_number_{i}" for i in range(8))
    out, _ = export_names("from pkg.mod import a\n", "pkg.mod", long)
    assert out.startswith("from pkg.mod import (\n    a,\n    name_number_0,\n")
    ast.parse(out)


def test_files_keep_line_endings_encoding_and_mode(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes("# caf\xe9\r\ndef f():\r\n    return 1\r\n".encode("latin-1"))
    os.chmod(path, 0o755)
    found = read_text_file(path)
    assert found is not None
    assert (found.newline, found.encoding) == ("\r\n", "latin-1")
    assert found.text == "# caf\xe9\ndef f():\n    return 1\n"
    merged = merge_source(found.text, "def f():\n    return 2\n").source
    write_atomic(path, merged, newline=found.newline, encoding=found.encoding)
    assert path.read_bytes() == "# caf\xe9\r\ndef f():\r\n    return 2\r\n".encode("latin-1")
    assert path.stat().st_mode & 0o777 == 0o755
    new = tmp_path / "n.py"
    write_atomic(new, "x = 1\n")
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert read_text_file(tmp_path / "absent.py") is None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_all_and_annotated_constants_are_replaced_in_place():
    original = '__all__ = ["f"]\nLIMIT: int = 3\n\n\ndef f():\n    return LIMIT\n'
    result = merge_source(
        original, '__all__ = ["f", "g"]\nLIMIT: int = 4\n\n\ndef g():\n    pass\n'
    )
    assert result.replaced == ("__all__", "LIMIT") and result.added == ("g",)
    assert result.source.startswith('__all__ = ["f", "g"]\nLIMIT: int = 4\n\n\ndef f():')


def test_declare_public_adds_to_the_modules_own_all_and_nothing_else():
    from coditect.agents.importmerge import declare_public

    src = "__all__ = [\n    'a',\n    'c',  # the c\n    'e'\n]\n\ndef a(): pass\n"
    out, added = declare_public(src, ("b", "f", "_x", "a"))
    assert added == ("b", "f")
    assert out == (
        "__all__ = [\n    'a',\n    'b',\n    'c',  # the c\n    'e',\n    'f',\n]\n\ndef a(): pass\n"
    )
    unsorted = "__all__ = (\n    'z',\n    'a',\n)\r\n".replace("\n", "\r\n").replace("\r\r", "\r")
    assert declare_public(unsorted, ("m",))[0].endswith("    'a',\r\n    'm',\r\n)\r\n")
    assert declare_public("__all__ = ['z', 'a']\n", ("m",)) == (
        "__all__ = ['z', 'a', 'm']\n",
        ("m",),
    )
    assert declare_public("x = 1\n", ("m",)) == ("x = 1\n", ())
    commented = "__all__ = [\n    'a',\n    'b'  # last\n]\n"
    assert declare_public(commented, ("c",))[0] == (
        "__all__ = [\n    'a',\n    'b',  # last\n    'c',\n]\n"
    )


MODULE = '''"""Mod."""

import os
import sys
from json import dumps, loads

LIMIT = 3
RETRIES = 2


# Joins with the separator.
def join(a, b):
    return a + os.sep + b


@cached
def legacy(x):
    return x


def last():
    return sys.argv
'''


def test_del_removes_a_function_with_its_decorators_and_comment_and_keeps_the_spacing():
    result = merge_source(MODULE, "del legacy")
    assert result.deleted == ("legacy",) and result.changed
    assert result.source == MODULE.replace("@cached\ndef legacy(x):\n    return x\n\n\n", "")
    result = merge_source(MODULE, "del join")
    assert result.source == MODULE.replace(
        "# Joins with the separator.\ndef join(a, b):\n    return a + os.sep + b\n\n\n", ""
    )
    # The last definition takes the blank lines before it; the file still ends with a newline.
    assert merge_source(MODULE, "del last").source == MODULE.replace(
        "\n\n\ndef last():\n    return sys.argv\n", "\n"
    )
    ast.parse(merge_source(MODULE, "del last").source)


def test_del_removes_a_constant_or_an_import_alone_among_its_neighbours():
    assert merge_source(MODULE, "del LIMIT").source == MODULE.replace("LIMIT = 3\n", "")
    assert merge_source(MODULE, "del sys").source == MODULE.replace("import sys\n", "")
    result = merge_source(MODULE, "del loads")
    assert result.deleted == ("loads",)
    assert result.source == MODULE.replace(
        "from json import dumps, loads", "from json import dumps"
    )


def test_names_of_one_import_go_in_one_edit():
    source = "from json import (\n    dumps,\n    loads,\n    load,\n)\n\nX = 1\n"
    result = merge_source(source, "del loads\ndel dumps")
    assert result.deleted == ("loads", "dumps")
    assert result.source == "from json import (\n    load,\n)\n\nX = 1\n"  # its layout kept
    result = merge_source("from json import (dumps,\n    loads)\n", "del loads")
    assert result.source == "from json import dumps\n"
    result = merge_source("from json import dumps, \\\n    loads\nX = 1\n", "del loads")
    assert result.source == "from json import dumps\nX = 1\n"
    result = merge_source(source, "del loads\ndel dumps\ndel load")
    assert result.source == "X = 1\n" and result.deleted == ("loads", "dumps", "load")


def test_del_of_a_member_by_attribute_or_inside_the_class_and_a_change_together():
    answer = (
        "class Account:\n    del deposit\n\n"
        "    def withdraw(self, amount):\n        self.total -= abs(amount)\n"
    )
    result = merge_source(CLASS_FILE, answer)
    assert result.deleted == ("Account.deposit",) and result.replaced == ("Account.withdraw",)
    assert "def deposit" not in result.source and "keep this comment" not in result.source
    assert '    kind = "plain"  # a class attribute\n\n    def withdraw' in result.source
    # The last member of a class takes the blank line before it: the next definition keeps
    # its two blank lines.
    result = merge_source(CLASS_FILE, "del Account.withdraw")
    assert "self.total += amount\n\n\ndef helper():" in result.source
    assert merge_source(CLASS_FILE, "del Account.kind").deleted == ("Account.kind",)


def test_a_del_qualified_with_the_files_own_module_removes_the_name():
    for answer in ("del shop.prices.join", "del prices.join"):
        result = merge_source(MODULE, answer, self_module="shop.prices")
        assert result.deleted == ("join",) and "def join" not in result.source


def test_a_del_of_no_name_is_example_code_and_dropped():
    result = merge_source(CLASS_FILE, "del items[0]\ndel Account.kind")
    assert result.deleted == ("Account.kind",)
    with pytest.raises(MergeError, match="no function or class definition"):
        merge_source(CLASS_FILE, "del items[0]")


def test_deleting_what_is_not_there_changes_nothing():
    for answer in ("del nowhere", "del Account.nowhere", "del Other.deposit"):
        result = merge_source(CLASS_FILE, answer)
        assert result.source == CLASS_FILE and not result.changed
        assert result.unchanged == (answer.removeprefix("del "),)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("del helper\ndef helper():\n    return 1\n", "both deletes and defines helper"),
        ("del Account\nclass Account:\n    def deposit(self, a):\n        pass\n", "both"),
    ],
)
def test_a_del_that_cannot_be_made_is_rejected_saying_why(answer, says):
    with pytest.raises(MergeError, match=says):
        merge_source(CLASS_FILE, answer)


def test_deleting_a_class_and_changing_its_method_overlap():
    answer = "del Account\n\ndef helper():\n    return 1\n"
    assert merge_source(CLASS_FILE, answer).deleted == ("Account",)
    with pytest.raises(MergeError, match="overlap"):
        merge_source(CLASS_FILE, "del Account\ndef withdraw(self, amount):\n    return 0\n")
