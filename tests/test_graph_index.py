"""The indexed graph build gives exactly what the plain scan over all outputs gives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitcache.errors import ConfigError
from gitcache.graph import (
    IF_DIRECTORY,
    MATCH,
    NO_MATCH,
    StepGraph,
    _component_matches,
    _under,
    _with_uncertain,
    is_glob,
    overlap_message,
    reach,
)

Steps = Mapping[str, tuple[Iterable[str], Iterable[str]]]


def reference_build(label: str, steps: Steps) -> dict[str, tuple[str, ...]]:
    """The quadratic definition: every input against every earlier-declared output."""
    owner: dict[str, str] = {}
    for name, (_inputs, outputs) in steps.items():
        for out in outputs:
            for other_out, other in owner.items():
                if _under(out, other_out) or _under(other_out, out):
                    raise ConfigError(overlap_message(label, other, other_out, name, out))
            owner[out] = name
    needs: dict[str, list[str]] = {}
    uncertain = []
    for name, (inputs, _outputs) in steps.items():
        found = needs.setdefault(name, [])
        for pattern in inputs:
            for out, producer in owner.items():
                how = reach(pattern, out)
                if how == MATCH and producer not in found:
                    found.append(producer)
                elif how == IF_DIRECTORY:
                    uncertain.append((name, producer))
    if any(_reaches(needs, step, step, set()) for step in needs):
        raise ConfigError("cycle")  # the build names it; the reference need not
    wanted = [(n, p) for n, p in dict.fromkeys(uncertain) if p != n and p not in needs[n]]
    # What to do with matches that hold only for directories is not the index's business.
    return _with_uncertain(needs, wanted) if wanted else {n: tuple(f) for n, f in needs.items()}


def _reaches(needs: Mapping[str, list[str]], start: str, goal: str, seen: set[str]) -> bool:
    """`start` needs `goal`, directly or through other steps."""
    for dep in needs[start]:
        if dep == goal or (dep not in seen and (seen.add(dep) or _reaches(needs, dep, goal, seen))):
            return True
    return False


_parts = st.sampled_from(["a", "b", "c", "d.txt"])
_paths = st.lists(_parts, min_size=1, max_size=3).map("/".join)
_patterns = st.one_of(
    _paths,
    _paths.map(lambda p: p + "*"),
    _paths.map(lambda p: p + "/*"),
    _paths.map(lambda p: "*/" + p),
    _paths.map(lambda p: p + "/**/d.txt"),
    st.just("*/b"),
)
_step = st.tuples(st.lists(_patterns, max_size=3), st.lists(_paths, max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, min_size=1, max_size=6))
def test_same_needs_and_same_errors_as_the_plain_scan(
    specs: list[tuple[list[str], list[str]]],
) -> None:
    steps = {f"s{i}": spec for i, spec in enumerate(specs)}
    try:
        expected = reference_build("wf", steps)
    except ConfigError as exc:
        with pytest.raises(ConfigError) as got:
            StepGraph.build("wf", steps)
        if exc.message == "cycle":
            assert "steps form a cycle" in got.value.message
        else:
            assert got.value.message == exc.message
        return
    assert dict(graph_needs(steps)) == expected


def graph_needs(steps: Steps) -> Mapping[str, tuple[str, ...]]:
    return StepGraph.build("wf", steps).needs


def test_needs_in_declaration_order_of_outputs() -> None:
    steps = {
        "late": ((), ("data/z",)),
        "early": ((), ("data/a",)),
        "sub": ((), ("data/deep/x",)),
        "reader": (("data",), ("report",)),
        "one": (("data/deep/x/y",), ("other",)),
    }
    graph = StepGraph.build("wf", steps)
    assert graph.needs["reader"] == ("late", "early", "sub")
    assert graph.needs["one"] == ("sub",)


def test_a_thousand_step_chain_builds_quickly() -> None:
    steps = {f"s{i}": ((f"out/{i - 1}",) if i else (), (f"out/{i}",)) for i in range(1000)}
    graph = StepGraph.build("wf", steps)
    assert graph.needs["s999"] == ("s998",)
    assert graph.order(["s3"]) == ["s0", "s1", "s2", "s3"]


def test_long_chains_do_not_exhaust_the_stack() -> None:
    n = 5000
    steps = {f"s{i}": ([f"o{i - 1}"] if i else [], [f"o{i}"]) for i in reversed(range(n))}
    graph = StepGraph.build("gitcache.toml", steps)
    assert graph.order([f"s{n - 1}"]) == [f"s{i}" for i in range(n)]


def recursive_reach(pattern: list[str], path: list[str], literal: bool = True) -> int:
    """The definition `graph._reach` follows, by recursion (fine for short paths)."""
    if not path:
        return MATCH if not pattern or literal else IF_DIRECTORY
    if not pattern:
        return MATCH
    head = pattern[0]
    if head == "**":
        best = recursive_reach(pattern[1:], path, literal)
        if best != MATCH and not path[0].startswith("."):
            best = max(best, recursive_reach(pattern, path[1:], False))
        return best
    if not _component_matches(head, path[0]):
        return NO_MATCH
    return recursive_reach(pattern[1:], path[1:], head == path[0] or not is_glob(head))


_glob_parts = st.sampled_from(["a", "b", ".h", "*", "**", "?", "[ab]", "*.txt", "d.txt"])
_names = st.sampled_from(["a", "b", ".h", "d.txt", "ab"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_glob_parts, min_size=1, max_size=5), st.lists(_names, min_size=1, max_size=5))
def test_reach_is_the_recursive_definition(pattern: list[str], path: list[str]) -> None:
    assert reach("/".join(pattern), "/".join(path)) == recursive_reach(pattern, path)


def test_reach_of_a_deep_output_and_many_double_stars() -> None:
    deep = "/".join(["a"] * 3000) + "/x.txt"
    assert reach("**/x.txt", deep) == MATCH
    assert reach("a/**/y.txt", deep) == IF_DIRECTORY  # x.txt may be a directory
    assert reach("b/**/x.txt", deep) == NO_MATCH
    assert reach("/".join(["**"] * 40) + "/y.txt", "/".join(["a"] * 60)) == IF_DIRECTORY
