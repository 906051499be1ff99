import ast

from coditect.agents.validation import ProjectView, check_source, module_name, undefined_names


def test_module_name():
    assert module_name("pkg/mod.py") == "pkg.mod"
    assert module_name("src/pkg/__init__.py") == "pkg"


def test_valid_source_passes(calc):
    src = "import os\nimport pytest\nfrom calculator.stats import mean\n\ndef test_x():\n    assert mean([1]) == 1\n"
    assert (
        check_source(src, path="tests/test_x.py", view=ProjectView(calc), require_tests=True) == []
    )


def test_compile_error(calc):
    [problem] = check_source("def f(:\n", path="a.py", view=ProjectView(calc))
    assert "does not compile" in problem


def test_unknown_modules_and_names(calc):
    src = (
        "import not_a_real_pkg_zz\nfrom calculator.nope import x\n"
        "from calculator.stats import missing\n"
    )
    problems = check_source(src, path="a.py", view=ProjectView(calc))
    assert len(problems) == 3
    assert "no module 'not_a_real_pkg_zz'" in problems[0]
    assert "no module 'calculator.nope'" in problems[1]
    assert "'missing' is not defined in calculator/stats.py" in problems[2]


def test_optional_imports_guarded_by_import_error_need_not_resolve(calc):
    src = (
        "try:\n    import not_a_real_pkg_zz\nexcept ImportError:\n    not_a_real_pkg_zz = None\n"
        "try:\n    from zz_missing.sub import y\nexcept (OSError, builtins.ModuleNotFoundError):\n"
        "    y = None\n"
        "try:\n    import zz_still_required\nexcept ValueError:\n    pass\n"
    )
    problems = check_source(src, path="a.py", view=ProjectView(calc))
    assert [p for p in problems if "no module" in p] == [
        "`import zz_still_required`: no module 'zz_still_required' in the project, the standard "
        "library or the installed packages"
    ]


def test_a_fallback_import_in_the_import_error_handler_need_not_resolve(calc):
    # cachetools' func.py: the fallback module is gone from today's Python, the code still works
    src = (
        "try:\n    from threading import RLock\nexcept ImportError:  # pragma: no cover\n"
        "    from dummy_threading import RLock\n"
    )
    assert check_source(src, path="a.py", view=ProjectView(calc)) == []


def test_problems_the_file_already_had_are_not_blamed_on_the_change(calc):
    before = "import zz_not_installed\n\ndef f():\n    return run_time_name\n"
    after = before + "\ndef g():\n    return other_missing\n\nimport zz_also_missing\n"
    problems = check_source(after, path="a.py", view=ProjectView(calc), before=before)
    assert problems == [
        "`import zz_also_missing`: no module 'zz_also_missing' in the project, the standard "
        "library or the installed packages",
        "undefined name(s): other_missing (missing import or definition?)",
    ]
    assert check_source(before, path="a.py", view=ProjectView(calc), before="def f(:\n") != []


def test_a_name_bound_only_in_another_scope_is_unbound(calc):
    # `getsizeof` is a method and a parameter of __init__; as a bare name in put() it is unbound
    src = (
        "class Cache:\n    def __init__(self, getsizeof=None):\n        self.g = getsizeof\n\n"
        "    def getsizeof(self, v):\n        return 1\n\n"
        "    def put(self, v):\n        return getsizeof(v) + self.getsizeof(v)\n"
    )
    assert check_source(src, path="a.py", view=ProjectView(calc)) == [
        "undefined name(s): getsizeof (missing import or definition?)"
    ]


def test_pending_edit_of_the_same_task_counts(calc):
    view = ProjectView(calc, {"calculator/stats.py": "def brand_new():\n    pass\n"})
    assert check_source("from calculator.stats import brand_new\n", path="t.py", view=view) == []


def test_submodule_import_and_tests_folder_modules(calc):
    (calc / "tests" / "helpers.py").write_text("def h():\n    pass\n")
    src = "from calculator import stats\nfrom helpers import h\n"
    assert check_source(src, path="tests/test_y.py", view=ProjectView(calc)) == []


def test_undefined_names_and_require_tests(calc):
    tree = ast.parse("def f(a):\n    return a + b + len([c for c in a])\n")
    assert undefined_names(tree) == ["b"]
    problems = check_source(
        "def helper():\n    return 1\n",
        path="tests/test_z.py",
        view=ProjectView(calc),
        require_tests=True,
    )
    assert problems == ["tests/test_z.py defines no test function (def test_...)"]


def test_definition_hiding_an_import_is_rejected(calc):
    src = "from math import gcd\n\n\ndef gcd(a, b):\n    return gcd(a, b)\n"
    [problem] = check_source(src, path="calculator/arithmetic.py", view=ProjectView(calc))
    assert "def gcd hides the imported 'math.gcd'" in problem
