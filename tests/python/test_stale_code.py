"""The code a step's signature names is the code that runs: no stale hit from code."""

from __future__ import annotations

import pytest

from tests.python.conftest import PyRepo

EDITED = """
import gitcache

def helper(v: int) -> int:
    return v * 10

@gitcache.step
def inc(x: int) -> int:
    return helper(x) + 1
"""

# Imports the module, then edits its file (as an editor does while a notebook runs),
# then calls the step: the old code runs, so its result must not be filed under the
# new code's signature.
EDIT_THEN_CALL = """
import sys
import ed
from gitcache.python.errors import StepDefinitionError

text = open("ed.py").read()
open("ed.py", "w").write(text.replace(sys.argv[1], sys.argv[2]))
try:
    print(ed.inc(1))
except StepDefinitionError as exc:
    print("error:", exc.message)
"""


def test_a_module_edited_after_it_was_imported_is_refused(pyrepo: PyRepo) -> None:
    pyrepo.write("ed.py", EDITED)
    done = pyrepo.python(EDIT_THEN_CALL, "v * 10", "v * 20")
    assert "helper is not the code in ed.py any more" in done.stdout, done.stdout
    assert not [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]
    fresh = pyrepo.python("import ed\nprint(ed.inc(1))")
    assert fresh.stdout.strip() == "21"  # the new code's result, not the old one's 11


def test_comments_added_after_the_import_are_no_edit(pyrepo: PyRepo) -> None:
    pyrepo.write("ed.py", EDITED)
    done = pyrepo.python(EDIT_THEN_CALL, "return v * 10", "return v * 10  # tens")
    assert done.stdout.strip() == "11", done.stdout
    assert pyrepo.python("import ed\nprint(ed.inc(1))").stdout.strip() == "11"
    assert len([r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]) == 1


SHAPES = """
import gitcache
from pydantic import BaseModel

class Shape(BaseModel):
    side: float

    def area(self) -> float:
        return 0.0

class Square(Shape):
    def area(self) -> float:
        return self.side * self.side

@gitcache.step
def measure(shape: Shape) -> float:
    return shape.area()
"""

MEASURE = "import shapes\nprint(shapes.measure(shapes.Square(side=3)), shapes.measure(shapes.Shape(side=3)))"


def test_the_code_of_an_arguments_class_counts_when_the_hint_names_another(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write("shapes.py", SHAPES)
    assert pyrepo.python(MEASURE).stdout.split() == ["9.0", "0.0"]
    pyrepo.write("shapes.py", SHAPES.replace("self.side * self.side", "self.side * 4"))
    assert pyrepo.python(MEASURE).stdout.split() == ["12.0", "0.0"]
    # Square's edit re-ran its call only: the call with the hinted class kept its record.
    assert len([r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]) == 3


def test_an_argument_of_a_class_the_code_names_adds_nothing(pyrepo: PyRepo) -> None:
    from gitcache.python.session import session_for

    module = pyrepo.module("shapes.py", SHAPES)
    session = session_for(pyrepo.root)
    signer = module.measure.signer
    code = signer.code(session.root, session.forms)
    call = module.measure.sign(session, [module.Shape(side=1)], {})
    assert call.document["references"] == code.references  # signatures as before
    call = module.measure.sign(session, [module.Square(side=1)], {})
    assert set(call.document["references"]) - set(code.references) == {"shapes.py:Square"}


TWICE = """
import gitcache

FAST = True

if FAST:
    class Impl:
        def run(self) -> int:
            return 1
else:
    class Impl:
        def run(self) -> int:
            return 2

if FAST:
    class Plain:
        K = 10
else:
    class Plain:
        K = 20

@gitcache.step
def f(x: int) -> int:
    return x + Impl().run() + Plain.K
"""


def test_a_class_defined_twice_in_a_file_counts_by_the_definition_that_ran(
    pyrepo: PyRepo,
) -> None:
    """Before 3.13 a class does not say its first line: the later definition was taken,
    and an edit of the one that ran changed nothing."""
    pyrepo.write("twice.py", TWICE)
    call = "import twice\nprint(twice.f(100))"
    assert pyrepo.python(call).stdout.strip() == "111"
    pyrepo.write("twice.py", TWICE.replace("return 1\n", "return 3\n"))
    assert pyrepo.python(call).stdout.strip() == "113"
    pyrepo.write("twice.py", TWICE.replace("return 1\n", "return 3\n").replace("K = 10", "K = 30"))
    assert pyrepo.python(call).stdout.strip() == "133"  # no methods: every definition counts
    sigs = [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]
    text = TWICE.replace("return 1\n", "return 3\n").replace("K = 10", "K = 30")
    pyrepo.write("twice.py", text.replace("return 2\n", "return 4\n"))  # the one not run
    assert pyrepo.python(call).stdout.strip() == "133"
    assert [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")] == sigs


REGEX = """
import logging
import re
import gitcache

log = logging.getLogger(__name__)

def build():
    return re.compile(r"[a-z]+")

WORD = re.compile(r"[a-z]+")
BUILT = build()

@gitcache.step
def words(text: str) -> int:
    log.debug("counting")
    return len(WORD.findall(text)) + 10 * len(BUILT.findall(text))
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('WORD = re.compile(r"[a-z]+")', 'WORD = re.compile(r"[a-z0-9]+")', "34"),
        ('return re.compile(r"[a-z]+")', 'return re.compile(r"[a-z0-9]+")', "43"),
    ],
)
def test_a_constant_counted_by_its_type_counts_with_the_statement_binding_it(
    pyrepo: PyRepo, old: str, new: str, expected: str
) -> None:
    """A compiled regex is an object of an outside type, counted by its type: editing
    its pattern changed nothing."""
    pyrepo.write("rx.py", REGEX)
    call = 'import rx\nprint(rx.words("ab cd-ef 12"))'
    assert pyrepo.python(call).stdout.strip() == "33"
    pyrepo.write("rx.py", REGEX.replace(old, new))
    assert pyrepo.python(call).stdout.strip() == expected


def test_a_script_and_its_importers_share_records_of_such_constants(pyrepo: PyRepo) -> None:
    pyrepo.write("rx.py", REGEX + '\nif __name__ == "__main__":\n    print(words("ab 1"))\n')
    assert pyrepo.run_file("rx.py").stdout.strip() == "11"
    assert pyrepo.python('import rx\nprint(rx.words("ab 1"))').stdout.strip() == "11"
    assert len([r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]) == 1


CONFIG = """
import gitcache

class Config:
    K = 2
    ITEMS = [1, 2]
    LABEL: str = "x"

@gitcache.step
def scaled(x: int) -> int:
    return x * Config.K * sum(Config.ITEMS)
"""

SET_AND_CALL = """
import sys
import config

if len(sys.argv) > 1:
    config.Config.K = int(sys.argv[1])
print(config.scaled(1))
config.Config.ITEMS.append(3)
print(config.scaled(1))
"""


def test_a_class_attribute_set_at_run_time_counts_by_its_value(pyrepo: PyRepo) -> None:
    """The class's text says K = 2; a script that sets Config.K = 5 before calling got
    the result made with 2."""
    pyrepo.write("config.py", CONFIG)
    assert pyrepo.python(SET_AND_CALL).stdout.split() == ["6", "12"]
    assert pyrepo.python(SET_AND_CALL, "5").stdout.split() == ["15", "30"]
    sigs = [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]
    assert pyrepo.python(SET_AND_CALL, "2").stdout.split() == ["6", "12"]  # as its text says
    assert [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")] == sigs


LAZY = """
import gitcache

@gitcache.step
def lazy(x: int) -> int:
    import json
    import lochelp
    from lochelp import g
    from pkg import sub
    from pkg.sub import h as hh
    return lochelp.g(x) + g(x) + sub.h(x) + hh(x) + len(json.dumps(x))
"""


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        ("lochelp.py", "v * 2", "v * 3", "209"),
        ("pkg/sub.py", "v + 100", "v + 200", "407"),
    ],
)
def test_what_a_step_imports_inside_its_body_counts(
    pyrepo: PyRepo, path: str, old: str, new: str, expected: str
) -> None:
    """`import helpers` inside the function (a lazy import) binds no global: the code of
    what the body used from it did not count."""
    pyrepo.write("lochelp.py", "def g(v: int) -> int:\n    return v * 2\n")
    pyrepo.write("pkg/__init__.py", "")
    pyrepo.write("pkg/sub.py", "def h(v: int) -> int:\n    return v + 100\n")
    pyrepo.write("lazy.py", LAZY)
    call = "import lazy\nprint(lazy.lazy(1))"
    assert pyrepo.python(call).stdout.strip() == "207"
    pyrepo.write(path, pyrepo.read(path).replace(old, new))
    assert pyrepo.python(call).stdout.strip() == expected


PICKLED = """
from typing import Any
import gitcache

class Square:
    def __init__(self, side: float) -> None:
        self.side = side

    def area(self) -> float:
        return self.side * self.side

class Box:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

@gitcache.step(allow_pickle=True)
def measure(box: Any) -> float:
    return box.inner.area()
"""


def test_the_code_of_classes_inside_a_pickled_argument_counts(pyrepo: PyRepo) -> None:
    pyrepo.write("boxes.py", PICKLED)
    call = "import boxes\nprint(boxes.measure(boxes.Box(boxes.Square(3))))"
    assert pyrepo.python(call).stdout.strip() == "9.0"
    pyrepo.write("boxes.py", PICKLED.replace("self.side * self.side", "self.side * 4"))
    assert pyrepo.python(call).stdout.strip() == "12.0"
