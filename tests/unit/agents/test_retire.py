"""What a removal leaves behind: the module's and the package's exports, the tests of it."""

from __future__ import annotations

import ast

from coditect.agents.retire import (
    defined,
    follow_removal,
    orphaned_imports,
    package_inits,
    retired_tests,
    unexported,
    users_of,
    without_in_all,
)

TESTS = """import pytest

from shop.prices import discount, total
from shop import prices as p


@pytest.fixture
def cart():
    return [1, 2]


def test_total(cart):
    assert total(cart) == 3


def test_discount():
    assert discount(10, 0.5) == 5


@pytest.mark.parametrize("f", [discount])
def test_callable(f):
    assert callable(f)


def test_through_the_module():
    assert p.discount(4, 0.5) == 2


class TestPrices:
    def test_total_empty(self):
        assert total([]) == 0

    def test_discount_zero(self):
        assert discount(1, 0) == 1


class TestDiscountOnly:
    def test_half(self):
        assert discount(2, 0.5) == 1
"""


def test_tests_that_use_a_removed_name_are_retired_with_its_unused_import():
    retired = retired_tests(TESTS, "tests/test_prices.py", "shop.prices", {"discount"})
    assert retired.tests == (
        "test_discount",
        "test_callable",
        "test_through_the_module",
        "TestPrices.test_discount_zero",
        "TestDiscountOnly",
    )
    assert retired.imports == ("discount",) and retired.kept == ()
    (follow,) = follow_removal(
        "shop/prices.py", {"discount"}, {"tests/test_prices.py": TESTS}, {"tests/test_prices.py"}
    )
    assert "discount" not in follow.source.replace("p.discount", "")
    assert "from shop.prices import total\n" in follow.source
    assert "def test_total(cart):" in follow.source and "def test_total_empty" in follow.source
    assert follow.deleted == (*retired.tests, "discount")
    ast.parse(follow.source)


def test_a_fixture_that_uses_the_name_is_kept_with_its_import():
    source = (
        "from shop.prices import discount\n\n\n"
        "def half():\n    return discount(2, 0.5)\n\n\n"
        "def test_half():\n    assert half() == 1\n"
    )
    retired = retired_tests(source, "tests/test_x.py", "shop.prices", {"discount"})
    assert retired.tests == () and retired.imports == () and retired.kept == ("half",)


def test_a_test_class_whose_shared_part_uses_the_name_goes_whole():
    source = (
        "import unittest\n\nimport shop.prices\n\n\n"
        "class Mixin:\n    def test_one(self):\n        assert self.f(1)\n\n\n"
        "class DiscountTest(unittest.TestCase, Mixin):\n"
        "    def f(self, x):\n        return shop.prices.discount(x, 0)\n\n\n"
        "class TotalTest(unittest.TestCase, Mixin):\n    f = staticmethod(shop.prices.total)\n\n\n"
        "class CheckDiscount(unittest.TestCase):\n    fn = shop.prices.discount\n"
    )
    retired = retired_tests(source, "tests/test_x.py", "shop.prices", {"discount"})
    assert retired.tests == ("DiscountTest", "CheckDiscount") and retired.kept == ()
    assert retired.members == ("DiscountTest.f",)


def test_imports_from_the_package_and_relative_imports_count():
    source = "from shop import discount as d\n\n\ndef test_d():\n    assert d(1, 0) == 1\n"
    retired = retired_tests(source, "tests/test_x.py", "shop.prices", {"discount"})
    assert retired.tests == ("test_d",) and retired.imports == ("d",)
    other = "from shop.other import discount\n\n\ndef test_d():\n    assert discount\n"
    assert retired_tests(other, "tests/test_x.py", "shop.prices", {"discount"}).tests == ()
    init = "from .prices import discount, total\nfrom .other import discount as d2\n"
    assert unexported(init, "shop/__init__.py", "shop.prices", {"discount"}) == ("discount",)


def test_the_package_stops_exporting_the_name():
    init = (
        '"""Shop."""\n\nfrom shop.prices import discount, total\n\n'
        '__all__ = [\n    "discount",\n    "total",\n]\n'
    )
    (follow,) = follow_removal("shop/prices.py", {"discount"}, {"shop/__init__.py": init}, ())
    assert follow.source == (
        '"""Shop."""\n\nfrom shop.prices import total\n\n__all__ = [\n    "total",\n]\n'
    )
    assert follow.deleted == ("discount",)
    assert package_inits("src/shop/sub/prices.py") == [
        "src/shop/sub/__init__.py",
        "src/shop/__init__.py",
        "src/__init__.py",
    ]


def test_all_keeps_its_layout():
    one_line = '__all__ = ["a", "b", "c"]  # public\n'
    assert without_in_all(one_line, {"b"}) == ('__all__ = ["a", "c"]  # public\n', ("b",))
    assert without_in_all("__all__ = ('a', 'b')\n", {"a"})[0] == "__all__ = ('b',)\n"
    mixed = '__all__ = [\n    "a", "b",\n    "c",\n]\n'
    assert without_in_all(mixed, {"b"})[0] == '__all__ = ["a", "c"]\n'
    assert without_in_all("x = 1\n", {"x"}) == ("x = 1\n", ())
    assert without_in_all("__all__ = names()\n", {"x"}) == ("__all__ = names()\n", ())


def test_imports_only_the_removed_code_used_are_orphans_and_re_exports_are_not():
    before = (
        "import os\nfrom . import Kept, Gone\nfrom .x import exported\n\n"
        "__all__ = ['f']\n\n\ndef f():\n    return Kept(os.sep)\n\n\n"
        "def g():\n    return Gone()\n"
    )
    after = before.replace("\n\n\ndef g():\n    return Gone()\n", "\n")
    assert orphaned_imports(before, after) == ("Gone",)
    assert orphaned_imports(before, "def (") == ()


def test_only_definitions_propagate_not_imports():
    source = "from . import Cache\nLIMIT = 3\nx: int = 1\n\n\ndef f():\n    y = 2\n"
    assert defined(source, ["Cache", "LIMIT", "x", "f", "y"]) == ["LIMIT", "x", "f"]


PARAMETRIZED = """import pytest

from shop import discount, total


@pytest.mark.parametrize(
    "func, args",
    [
        (total, ([1],)),
        (
            discount,
            (1, 0),
        ),
    ],
)
def test_callable(func, args):
    assert func(*args) is not None


@pytest.mark.parametrize("f", [discount, total])
def test_inline(f):
    assert f
"""


def test_only_the_cases_of_a_parametrized_test_that_use_the_name_go():
    retired = retired_tests(PARAMETRIZED, "tests/test_x.py", "shop.prices", {"discount"})
    assert retired.trimmed == ("test_callable",) and retired.cases == ((10, 13),)
    assert retired.tests == ("test_inline",)  # its cases share a line: the test goes whole
    (follow,) = follow_removal(
        "shop/prices.py", {"discount"}, {"tests/test_x.py": PARAMETRIZED}, {"tests/test_x.py"}
    )
    assert follow.deleted == ("test_callable (cases)", "test_inline", "discount")
    assert follow.source == (
        "import pytest\n\nfrom shop import total\n\n\n"
        '@pytest.mark.parametrize(\n    "func, args",\n    [\n        (total, ([1],)),\n'
        "    ],\n)\ndef test_callable(func, args):\n    assert func(*args) is not None\n"
    )


def test_the_definitions_that_still_use_a_removed_name_are_found():
    source = (
        "def a():\n    return gone()\n\n\nclass C:\n    def m(self):\n        return gone\n\n"
        "    def n(self):\n        gone = 1\n        return x.gone\n"
    )
    assert users_of(source, ["gone", "other"]) == {"gone": ["a", "C.m"]}
    assert users_of("def (", ["gone"]) == {}
