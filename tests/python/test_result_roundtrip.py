"""A call that runs returns what a later call (another process) loads from its record."""

from __future__ import annotations

from tests.python.conftest import PyRepo

LOOSE = """
from typing import Any
import gitcache

@gitcache.step
def loose(x: int) -> Any:
    return {x: (x, x + 1), "nested": [(1, 2)]}

@gitcache.step
def untyped_dict(x: int) -> dict:
    return {x: (x,)}

@gitcache.step
def precise(x: int) -> dict[int, tuple[int, int]]:
    return {x: (x, x + 1)}
"""


def test_the_first_call_gives_what_every_later_call_loads(pyrepo: PyRepo) -> None:
    module = pyrepo.module("loose.py", LOOSE)
    first = {name: repr(getattr(module, name)(1)) for name in ("loose", "untyped_dict", "precise")}
    # JSON has only string keys and no tuples: under a loose hint the value comes back so,
    # in this process too, never a tuple now and a list in the next process.
    assert first["loose"] == "{'1': [1, 2], 'nested': [[1, 2]]}"
    assert first["untyped_dict"] == "{'1': [1]}"
    assert first["precise"] == "{1: (1, 2)}"  # a precise hint validates it back
    loaded = pyrepo.python(
        "import loose\n"
        "print(repr(loose.loose(1)), repr(loose.untyped_dict(1)), repr(loose.precise(1)), "
        "sep='|')"
    )
    assert loaded.stdout.strip().split("|") == [
        first["loose"],
        first["untyped_dict"],
        first["precise"],
    ]
