"""Module-level values that are neither literals nor functions: loggers, partials, bound
methods, objects of the repository's classes, constants mutated in place."""

from __future__ import annotations

import os

import pytest

from gitcache.python.errors import ArgumentError, StepDefinitionError
from gitcache.python.signing import Code
from tests.python.conftest import PyRepo

OBJECTS = """
import functools
import logging
import threading
import gitcache

log = logging.getLogger(__name__)
lock = threading.Lock()

def mul(a: int, b: int) -> int:
    return a * b

triple = functools.partial(mul, 3)

class Helper:
    def __init__(self, k: int) -> None:
        self.k = k

    def apply(self, x: int) -> int:
        return x + self.k

helper = Helper(10)
bound = helper.apply

@gitcache.step
def uses_log(x: int) -> int:
    log.info("x=%s", x)
    with lock:
        return x + 1

@gitcache.step
def uses_partial(x: int) -> int:
    return triple(x)

@gitcache.step
def uses_object(x: int) -> int:
    return helper.apply(x)

@gitcache.step
def uses_bound(x: int) -> int:
    return bound(x)
"""


def _code(pyrepo: PyRepo, source: str, name: str) -> Code:
    module = pyrepo.module("objects.py", source)
    return getattr(module, name).signer.code(pyrepo.root)  # type: ignore[no-any-return]


def test_a_step_using_a_logger_or_a_lock_runs_and_loads(pyrepo: PyRepo) -> None:
    module = pyrepo.module("objects.py", OBJECTS)
    assert module.uses_log(1) == 2
    assert module.uses_partial(2) == 6
    assert module.uses_object(1) == 11
    assert module.uses_bound(1) == 11


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("partial(mul, 3)", "partial(mul, 4)", "uses_partial"),
        ("return a * b", "return a * b + 1", "uses_partial"),
        ("Helper(10)", "Helper(20)", "uses_object"),
        ("return x + self.k", "return x - self.k", "uses_object"),
        ("Helper(10)", "Helper(20)", "uses_bound"),
        ("return x + self.k", "return x - self.k", "uses_bound"),
    ],
)
def test_what_an_object_holds_and_its_classs_code_count(
    pyrepo: PyRepo, old: str, new: str, name: str
) -> None:
    changed = OBJECTS.replace(old, new)
    assert changed != OBJECTS
    assert _code(pyrepo, changed, name) != _code(pyrepo, OBJECTS, name)


MUTABLE = """
import gitcache

CONFIG = {"scale": 1}

@gitcache.step
def scaled(x: int) -> int:
    return x * CONFIG["scale"]
"""


CACHE = """
import gitcache

_cache = {}
calls = []

def slow_square(x: int) -> int:
    if x not in _cache:
        _cache[x] = x * x
    return _cache[x]

@gitcache.step
def squared(x: int) -> int:
    calls.append(x)
    return slow_square(x)
"""


def test_a_cache_the_code_fills_while_it_runs_is_no_edit(pyrepo: PyRepo) -> None:
    module = pyrepo.module("cache.py", CACHE)
    assert [module.squared(2), module.squared(2), module.squared(3), module.squared(2)] == [
        4,
        4,
        9,
        4,
    ]
    assert module.calls == [2, 3]  # neither the cache nor `calls` made a new signature
    loaded = pyrepo.python("import cache; print(cache.squared(2), cache.squared(3), cache.calls)")
    assert loaded.stdout.strip() == "4 9 []"  # another process: both recorded calls hit


def test_a_constant_mutated_in_place_is_another_constant(pyrepo: PyRepo) -> None:
    module = pyrepo.module("mutable.py", MUTABLE)
    assert module.scaled(3) == 3
    assert module.scaled(3) == 3  # from memory
    module.CONFIG["scale"] = 5
    assert module.scaled(3) == 15
    module.CONFIG["scale"] = 1
    assert module.scaled(3) == 3


SURROGATES = """
import gitcache

@gitcache.step
def length(x: str) -> int:
    return len(x)

@gitcache.step
def keys(x: dict[str, int]) -> int:
    return len(x)

@gitcache.step
def odd(x: int) -> str:
    return "a" if x else "\\ud800"
"""


def test_strings_utf8_cannot_encode_are_errors_naming_where(pyrepo: PyRepo) -> None:
    module = pyrepo.module("surrogates.py", SURROGATES)
    name = os.fsdecode(b"caf\xe9.csv")  # a file name that is not UTF-8: a lone surrogate
    with pytest.raises(ArgumentError, match="argument x: a string that is not valid Unicode"):
        module.length(name)
    with pytest.raises(ArgumentError, match="argument x key: a string that is not valid"):
        module.keys({name: 1})
    with pytest.raises(StepDefinitionError, match="step odd: its code holds a string"):
        module.odd(1)
    assert module.length("caf\u00e9.csv") == 8  # valid non-ASCII text is fine


TABLES = """
import math
import gitcache

def add(x: int) -> int:
    return x + 1

def mul(x: int) -> int:
    return x * 2

OPS = {"add": add, "mul": mul}
PIPE = [add, mul, math.floor]

@gitcache.step
def dispatch(op: str, x: int) -> int:
    return OPS[op](x)

@gitcache.step
def chain(x: int) -> int:
    for f in PIPE:
        x = f(x)
    return x
"""


@pytest.mark.parametrize(
    ("old", "new", "changes"),
    [
        ("return x + 1", "return x + 5", {"dispatch", "chain"}),  # a helper in both tables
        ('{"add": add, "mul": mul}', '{"add": mul, "mul": add}', {"dispatch"}),
        ("[add, mul, math.floor]", "[mul, add, math.floor]", {"chain"}),
        ("math.floor]", "math.ceil]", {"chain"}),
    ],
)
def test_functions_in_module_level_tables_count_as_code(
    pyrepo: PyRepo, old: str, new: str, changes: set[str]
) -> None:
    changed = TABLES.replace(old, new)
    assert changed != TABLES
    for name in ("dispatch", "chain"):
        before, after = _code(pyrepo, TABLES, name), _code(pyrepo, changed, name)
        assert (after != before) == (name in changes), name


LAMBDAS = """
import gitcache

inc = lambda x: x + 1
dbl = lambda x: x * 2
PIPE = [lambda x: x - 1, lambda x: x * 3]

@gitcache.step
def f(x: int) -> int:
    return dbl(inc(x))

@gitcache.step
def g(x: int) -> int:
    for h in PIPE:
        x = h(x)
    return x
"""


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("x + 1", "x + 5", "f"),
        ("x * 2", "x * 7", "f"),  # all lambdas share one qualname: each must count
        ("x - 1", "x - 4", "g"),
        ("x * 3", "x * 9", "g"),
    ],
)
def test_every_module_level_lambda_counts(pyrepo: PyRepo, old: str, new: str, name: str) -> None:
    changed = LAMBDAS.replace(old, new)
    assert changed != LAMBDAS
    assert _code(pyrepo, changed, name) != _code(pyrepo, LAMBDAS, name)


DECORATOR_OBJECTS = """
import gitcache

class memo:
    def __init__(self, fn):
        self.fn = fn
        self.cache = {}

    def __call__(self, x):
        if x not in self.cache:
            self.cache[x] = self.fn(x)
        return self.cache[x]

@memo
def helper(x):
    return x + 1

class Settings:
    def scale(self) -> int:
        return 2

Settings = Settings()  # the class's name now holds its one object

@gitcache.step
def f(x: int) -> int:
    return helper(x) * Settings.scale()
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("return x + 1", "return x + 5"),  # the function a decorator object holds
        ("return 2", "return 3"),  # the class whose name its object took
    ],
)
def test_an_object_under_the_name_of_a_function_or_class_hides_no_code(
    pyrepo: PyRepo, old: str, new: str
) -> None:
    changed = DECORATOR_OBJECTS.replace(old, new)
    assert changed != DECORATOR_OBJECTS
    assert _code(pyrepo, changed, "f") != _code(pyrepo, DECORATOR_OBJECTS, "f")


def test_an_object_of_a_script_class_gives_the_script_and_its_importers_one_record(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write(
        "script.py",
        "import gitcache\n\n"
        "class Helper:\n"
        "    def __init__(self, k: int) -> None:\n"
        "        self.k = k\n\n"
        "helper = Helper(3)\n\n"
        "@gitcache.step\n"
        "def f(x: int) -> int:\n"
        "    print('computing')\n"
        "    return x + helper.k\n\n"
        "if __name__ == '__main__':\n"
        "    print('result', f(1))\n",
    )
    assert "computing" in pyrepo.run_file("script.py").stdout
    done = pyrepo.python("import script; print(script.f(1))")  # `script`, not `__main__`
    assert done.stdout == "4\n"  # loaded: the object's class is named by its code key
