"""The dependency rule: which declared inputs can read which outputs (graph.py)."""

from __future__ import annotations

import pytest

from gitcache.errors import ConfigError
from gitcache.graph import (
    IF_DIRECTORY,
    MATCH,
    NO_MATCH,
    StepGraph,
    input_covers,
    input_matches_output,
    reach,
)


@pytest.mark.parametrize(
    ("pattern", "output", "expected"),
    [
        ("gen/*.txt", "gen", MATCH),  # a glob inside a directory output
        ("gen/sub/*.txt", "gen", MATCH),  # the output directory holds the glob's base
        ("gen/**/*.txt", "gen", MATCH),
        ("*/x/*.txt", "a/x", MATCH),  # `x/` is a directory in the pattern
        ("*/a.txt", "gen", IF_DIRECTORY),  # only if the output gen is a directory
        ("runs/*/metrics.json", "runs/lr0.1", IF_DIRECTORY),
        ("**/*.txt", "gen", IF_DIRECTORY),
        ("gen/*.txt", "gen/a.txt", MATCH),
        ("gen/*.txt", "gen/a.log", NO_MATCH),
        ("gen/*.txt", "gen/sub/a.txt", NO_MATCH),  # `*` does not cross `/`
        ("gen/**/*.txt", "gen/sub/deep/a.txt", MATCH),
        ("gen/**", "gen/sub/a.log", MATCH),
        ("gen/*", "gen/sub/a.log", MATCH),  # matches the directory gen/sub
        ("gen/*.txt", "other", NO_MATCH),
        ("gen/*.txt", "generated", NO_MATCH),
        ("gen/*.txt", "gen/.hidden.txt", NO_MATCH),  # glob skips dot files
        ("gen/.*.txt", "gen/.hidden.txt", MATCH),
        ("data", "data/x", MATCH),  # a plain directory input holding an output
        ("data/x/y", "data", MATCH),  # a plain input inside a directory output
        ("data", "database", NO_MATCH),
        ("gen/[ab].txt", "gen/b.txt", MATCH),
        ("gen/?.txt", "gen/ab.txt", NO_MATCH),
        # a pattern also matches the name it spells, as Worktree.expand does
        ("gen/x[1].txt", "gen/x[1].txt", MATCH),
        ("gen/x[1].txt", "gen/x1.txt", MATCH),
        ("d[1]/a.txt", "d[1]", MATCH),  # the output directory the input names
        ("d[1]/a.txt", "d1", IF_DIRECTORY),  # matched by the wildcard only
        ("d[1]/a.txt", "d[2]", NO_MATCH),
    ],
)
def test_reach(pattern: str, output: str, expected: int) -> None:
    assert reach(pattern, output) == expected
    assert input_matches_output(pattern, output) is (expected != NO_MATCH)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("gen/*.txt", "gen/a.txt", True),
        ("gen/*.txt", "gen", False),  # the directory itself is no file the glob gives
        ("gen/*", "gen/sub/a.log", True),  # the matched directory is expanded
        ("gen/**/*.txt", "gen/a.txt", True),  # `**` is zero or more directories
        ("gen/**/*.txt", "gen/a/b/c.txt", True),
        ("gen", "gen/a/b", True),
        ("gen/a", "gen", False),
        ("gen/*.txt", "gen/a.log", False),
        ("gen/x[1].txt", "gen/x[1].txt", True),
        ("gen/a?/*.txt", "gen/a?/b.txt", True),
    ],
)
def test_input_covers(pattern: str, path: str, expected: bool) -> None:
    assert input_covers(pattern, path) is expected


def test_a_glob_over_a_directory_output_needs_its_producer() -> None:
    graph = StepGraph.build(
        "wf",
        {
            "gen": ((), ("gen",)),
            "use": (("gen/*.txt",), ("use.txt",)),
            "deep": (("gen/**/x.csv",), ("deep.txt",)),
            "any": (("*/a.txt",), ("any.txt",)),
        },
    )
    assert graph.needs["use"] == ("gen",)
    assert graph.needs["deep"] == ("gen",)
    assert graph.needs["any"] == ("gen", "use", "deep")  # any of them may be a directory
    assert graph.order(["use"]) == ["gen", "use"]


def test_a_match_only_through_a_directory_never_makes_a_cycle() -> None:
    # summary.txt and report.html are files in practice; `*/result.txt` could reach
    # into them only if they were directories. report needs collect for sure.
    graph = StepGraph.build(
        "wf",
        {
            "collect": (("*/result.txt",), ("summary.txt",)),
            "report": (("summary.txt",), ("report.html",)),
            "run1": ((), ("run1",)),
        },
    )
    assert graph.needs == {"collect": ("run1",), "report": ("collect",), "run1": ()}


@pytest.mark.parametrize(
    "inputs", [("a.txt",), ("out",), ("out/x/y",), ("out/*",), ("*",), ("**/a.txt",)]
)
def test_a_step_reading_its_own_output_is_a_cycle(inputs: tuple[str, ...]) -> None:
    outputs = ("out/x",) if inputs[0].startswith("out") else ("a.txt",)
    with pytest.raises(ConfigError) as caught:
        StepGraph.build("wf", {"a": (inputs, outputs)})
    assert caught.value.message == "wf: steps form a cycle: a -> a"


def test_many_matches_that_would_form_cycles_keep_one_order() -> None:
    # Each step could read every other's output if those were directories: no cycle,
    # one run order (as declared), and building stays fast.
    steps = {f"s{i}": (("*/x.txt",), (f"o{i}.txt",)) for i in range(100)}
    graph = StepGraph.build("wf", steps)
    assert graph.needs["s0"] == ()
    assert graph.needs["s3"] == ("s0", "s1", "s2")
    assert graph.order(["s99"]) == [f"s{i}" for i in range(100)]
