"""The code component: normalized syntax trees of the step and what it uses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gitcache.python.signing import Code
from tests.helpers import PACKAGE_ROOT
from tests.python.conftest import PyRepo

BASE = '''
import math
import gitcache

SCALE = 2.5

def helper(v: float) -> float:
    return v * SCALE

@gitcache.step
def f(x: float, n: int = 3) -> float:
    """Docstring."""
    return helper(x) + n  # comment
'''


def code_of(pyrepo: PyRepo, source: str, name: str = "f") -> Code:
    module = pyrepo.module("steps.py", source)
    return getattr(module, name).signer.code(pyrepo.root)  # type: ignore[no-any-return]


def test_formatting_comments_docstrings_and_the_decorator_do_not_count(pyrepo: PyRepo) -> None:
    before = code_of(pyrepo, BASE)
    reformatted = BASE.replace(
        '@gitcache.step\ndef f(x: float, n: int = 3) -> float:\n    """Docstring."""\n'
        "    return helper(x) + n  # comment\n",
        '\n\n@gitcache.step(name="f", env=[])\ndef f(\n    x: float,\n    n: int = 3,\n) -> float:\n'
        '    """Another docstring,\n    on two lines."""\n\n    # a new comment\n'
        "    return (helper(x)\n            + n)\n",
    ).replace("SCALE = 2.5", "# scale\nSCALE = (\n    2.5\n)")
    assert reformatted != BASE
    assert code_of(pyrepo, reformatted) == before


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("return helper(x) + n  # comment", "return helper(x) - n", "body"),
        ("return v * SCALE", "return v * SCALE * 1", "helper"),
        ("SCALE = 2.5", "SCALE = 2.6", "constant"),
        ("SCALE = 2.5", "SCALE = 2", "constant's type"),
        ("n: int = 3", "n: int = 4", "default"),
        ("x: float,", "x: int,", "annotation"),
    ],
)
def test_every_change_that_can_change_the_result_counts(
    pyrepo: PyRepo, old: str, new: str, what: str
) -> None:
    source = BASE.replace("def f(x: float, n", "def f(\n    x: float,\n    n")
    changed = source.replace(old, new)
    assert changed != source, what
    assert code_of(pyrepo, changed) != code_of(pyrepo, source), what


def test_which_part_changed_is_named_by_the_references(pyrepo: PyRepo) -> None:
    before = code_of(pyrepo, BASE)
    after = code_of(pyrepo, BASE.replace("return v * SCALE", "return v / SCALE"))
    assert before.digest == after.digest  # the step's own function did not change
    changed = {k for k in before.references if before.references[k] != after.references[k]}
    assert changed == {"steps.py:helper"}
    assert set(before.references) == {"steps.py:helper", "steps.py:SCALE"}


def test_closures_with_the_same_body_but_different_values_differ(pyrepo: PyRepo) -> None:
    # Prefect 23062: two functions with one body and different closure cells collided.
    module = pyrepo.module(
        "closures.py",
        """
        import gitcache

        def make(k: int):
            @gitcache.step(name=f"scaled{k}")
            def scaled(x: int) -> int:
                return x * k
            return scaled

        two, three = make(2), make(3)
        again = make(2)
        """,
    )
    codes = [getattr(module, n).signer.code(pyrepo.root) for n in ("two", "three", "again")]
    assert codes[0] != codes[1]
    assert codes[0] == codes[2]


DECORATED = """
import functools
import gitcache

def logged(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs) + 1
    return wrapper

@logged
def helper(v: int) -> int:
    return v * 2

@gitcache.step
def f(x: int) -> int:
    return helper(x)

@gitcache.step
@logged
def g(x: int) -> int:
    return x * 3
"""


@pytest.mark.parametrize("name", ["f", "g"])
def test_a_decorated_function_counts_with_its_wrapper_and_what_it_wraps(
    pyrepo: PyRepo, name: str
) -> None:
    # functools.wraps names the wrapper after the function it wraps: its source was
    # looked up by that name and not found (an error), and both would share one key.
    before = code_of(pyrepo, DECORATED, name)
    wrapper_edited = DECORATED.replace("**kwargs) + 1", "**kwargs) + 2")
    assert code_of(pyrepo, wrapper_edited, name) != before
    body = "return v * 2" if name == "f" else "return x * 3"
    assert code_of(pyrepo, DECORATED.replace(body, body + " + 0"), name) != before
    assert code_of(pyrepo, DECORATED, name) == before


def test_helpers_reached_through_a_module_of_the_repository_count(pyrepo: PyRepo) -> None:
    pyrepo.write("helpers_mod.py", "def smooth(v: float) -> float:\n    return v / 2\n")
    source = "import gitcache\nimport helpers_mod\n\n@gitcache.step\ndef f(x: float) -> float:\n    return helpers_mod.smooth(x)\n"
    before = code_of(pyrepo, source)
    assert "helpers_mod.py:smooth" in before.references
    sys.modules.pop("helpers_mod", None)
    pyrepo.write("helpers_mod.py", "def smooth(v: float) -> float:\n    return v / 3\n")
    after = code_of(pyrepo, source)
    sys.modules.pop("helpers_mod", None)
    assert after.references["helpers_mod.py:smooth"] != before.references["helpers_mod.py:smooth"]


def test_code_outside_the_repository_is_not_followed_but_its_package_is_noted(
    pyrepo: PyRepo,
) -> None:
    code = code_of(
        pyrepo,
        "import json\nimport pydantic\nimport gitcache\n\n@gitcache.step\n"
        "def f(x: int) -> str:\n    return json.dumps(x) + pydantic.VERSION\n",
    )
    assert code.references == {}
    assert code.document is not None and code.document.packages == {"pydantic"}


def test_classes_of_the_repository_count_with_their_methods(pyrepo: PyRepo) -> None:
    source = """
import gitcache
from pydantic import BaseModel

class Stats(BaseModel):
    mean: float

    def doubled(self) -> float:
        return self.mean * 2

@gitcache.step
def f(x: float) -> Stats:
    return Stats(mean=x)
"""
    before = code_of(pyrepo, source)
    assert "steps.py:Stats" in before.references
    after = code_of(pyrepo, source.replace("self.mean * 2", "self.mean * 3"))
    assert after.references["steps.py:Stats"] != before.references["steps.py:Stats"]


def test_a_rebound_global_is_noticed_in_the_same_process(pyrepo: PyRepo) -> None:
    """A notebook redefines a helper: the step's cached code document is rebuilt."""
    module = pyrepo.module("steps.py", BASE)
    first = module.f.signer.code(pyrepo.root)
    assert module.f.signer.code(pyrepo.root) is first  # cached while nothing changed
    module.SCALE = 3.0
    assert module.f.signer.code(pyrepo.root).references != first.references


def test_version_replaces_the_code_component(pyrepo: PyRepo) -> None:
    one = code_of(pyrepo, BASE.replace("@gitcache.step\n", '@gitcache.step(version="1")\n'))
    edited = BASE.replace("@gitcache.step\n", '@gitcache.step(version="1")\n').replace("+ n", "- n")
    assert code_of(pyrepo, edited) == one
    assert one.references == {}
    two = code_of(pyrepo, BASE.replace("@gitcache.step\n", '@gitcache.step(version="2")\n'))
    assert two != one


# -- the same canonical bytes under Python 3.11, 3.12 and 3.13 ------------------------------

SAMPLES = '''
import math
import os
from dataclasses import dataclass

SCALE = 2.5
NAMES = ("a", "b")
TABLE = {"x": [1, 2.0, True, None, b"z"], "y": {1, 2}}

@dataclass
class Point:
    """A point."""
    x: float
    y: float = 0.0

    def norm(self) -> float:
        return math.hypot(self.x, self.y) * SCALE

def helper(v: float, *args: int, key: str = "k", **kw: object) -> float:
    # a comment
    return v * SCALE + len(NAMES) + len(args)

def make_adder(n):
    def add(x: int) -> int:
        return x + n
    return add

add2 = make_adder(2)

async def coro():
    async with x as y:
        await y

def step_fn(p: Point, k: int = 3, /, *, q: "float" = 1e-3) -> float:
    """Docstring."""
    total = helper(p.norm()) + TABLE["x"][0]
    s = f"{k!r:>{k}}" f"x{k}" f"{k:}" f"{k=}" rf"\\d{k}"
    t = [i for i in range(3) if i] + [*{j: j for j in "ab"}] + list({z for z in (1,)})
    g = (lambda a, *b, c=1: a)(1)
    match k:
        case [1, *rest]:
            pass
        case {"a": v, **others}:
            pass
        case Point(x=0) | None:
            pass
        case _ if k > 1:
            pass
    try:
        assert k, "message"
    except* ValueError as err:
        raise RuntimeError("x") from err
    finally:
        del s
    with open(os.devnull) as fh, open(os.devnull):
        pass
    while False:
        break
    else:
        pass
    global SCALE
    x = ...
    y = -1j + 0x10 + 1_000 + 0.5e10
    z = a if (a := k) else not k
    return total + y[1:2:3] + add2(k) + x @ y ** z // 2 << 1
'''

NORMALIZE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from gitcache.canonical import canonical_json
from gitcache.python.code import CodeWalker
import samples
for name in ("step_fn", "helper", "add2", "coro"):
    doc = CodeWalker(Path(sys.argv[2])).document(getattr(samples, name))
    sys.stdout.write(canonical_json([doc.main, doc.entries, sorted(doc.packages)]).decode() + "\\n")
"""

INTERPRETERS = [
    Path(sys.executable),
    Path("/root/.pyenv/versions/3.12.1/bin/python3"),
    Path("/root/.pyenv/versions/3.13.0/bin/python3"),
]


def test_the_canonical_form_is_the_same_under_python_3_11_3_12_and_3_13(tmp_path: Path) -> None:
    (tmp_path / "samples.py").write_text(SAMPLES)
    outputs: dict[str, str] = {}
    for python in INTERPRETERS:
        if not python.exists():
            continue  # CI machines are like this one; a missing one is skipped, not failed
        done = subprocess.run(
            [str(python), "-c", textwrap.dedent(NORMALIZE), str(PACKAGE_ROOT), str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        version = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        outputs[version] = done.stdout
    assert "(3, 11)" in outputs
    first = outputs["(3, 11)"]
    assert len(first.splitlines()) == 4
    main, entries, _ = json.loads(first.splitlines()[0])
    assert main == "samples.py:step_fn"
    assert {"samples.py:helper", "samples.py:Point", "samples.py:SCALE"} <= set(entries)
    for version, text in outputs.items():
        assert text == first, f"Python {version} normalizes differently"


def test_cached_forms_give_the_same_code_and_an_edit_is_seen_whatever_its_mtime(
    pyrepo: PyRepo, tmp_path: Path
) -> None:
    import os

    from gitcache.python.code import FormCache

    cache_file = tmp_path / "forms"
    module = pyrepo.module("steps.py", BASE)
    fresh = module.f.signer.code(pyrepo.root)
    forms = FormCache(cache_file)
    module.f.signer._code = None
    assert module.f.signer.code(pyrepo.root, forms) == fresh
    forms.save()
    # A new process reads the forms back and gets the same code without parsing.
    again = pyrepo.module("steps.py", BASE)
    reread = FormCache(cache_file)
    assert again.f.signer.code(pyrepo.root, reread) == fresh
    assert reread._files and not reread._changed  # read back, nothing new to write
    # An edit of the same size, with the old mtime put back: the text's hash changes.
    path = pyrepo.root / "steps.py"
    st = path.stat()
    edited = BASE.replace("v * SCALE", "v + SCALE")
    assert len(edited) == len(BASE)
    changed = pyrepo.module("steps.py", edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changed.f.signer.code(pyrepo.root, FormCache(cache_file)) != fresh
