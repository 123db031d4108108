"""Every bad sweep is one line naming the file, step and key, exit 2, nothing run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import Repo


def _step(body: str) -> str:
    return f'[steps.s]\nrun = "true"\n{body}\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            _step("matrix = { lr = [] }"),
            "gitcache.toml: steps.s.matrix.lr: an empty axis makes no items",
        ),
        (
            _step("matrix = { lr = 0.1 }"),
            "gitcache.toml: steps.s.matrix.lr: an axis is a list of values (got 0.1)",
        ),
        (
            _step("matrix = { lr = [0.1, 0.2, 0.1] }"),
            "gitcache.toml: steps.s.matrix.lr: duplicate value 0.1 (items 0 and 2)",
        ),
        (
            _step("matrix = { n = [1, 1.0] }"),
            "gitcache.toml: steps.s.matrix.n: duplicate value 1.0 (items 0 and 1)",
        ),
        (
            _step("matrix = { lr = [0.1, nan] }"),
            "gitcache.toml: steps.s.matrix.lr[1]: nan is not allowed",
        ),
        (
            _step("matrix = { lr = [[1, 2]] }"),
            "gitcache.toml: steps.s.matrix.lr[0]: an axis value is a string, number, boolean",
        ),
        (_step("matrix = {}"), "gitcache.toml: steps.s.matrix: a matrix needs at least one axis"),
        (
            _step("matrix = { item = [1] }"),
            "gitcache.toml: steps.s.matrix.item: invalid axis name 'item'",
        ),
        (
            "[params]\nlr = 1\n" + _step("matrix = { lr = [1, 2] }"),
            "gitcache.toml: steps.s.matrix.lr: params.lr has the same name",
        ),
        (
            _step('matrix = { a = [1] }\nforeach = "x"'),
            "gitcache.toml: steps.s: a step has `matrix` or `foreach`, not both",
        ),
        (
            _step('matrix = { a = [1, 2] }\noutputs = ["out.txt"]'),
            "gitcache.toml: steps.s.outputs: items s[a=1] and s[a=2] both write 'out.txt'",
        ),
        (
            _step('matrix = { a = [1, 2] }\noutputs = ["out/{b}.txt"]'),
            "gitcache.toml: steps.s.outputs: 'out/{b}.txt': {b} is not defined (known: a)",
        ),
        (
            _step('outputs = ["thumbs/{item.stem}.png"]'),
            "gitcache.toml: steps.s.outputs: {item} is only defined in a foreach step",
        ),
        (
            '[steps.s]\nrun = "cat {item}"\n',
            "gitcache.toml: steps.s.run: {item} is only defined in a foreach step",
        ),
        (
            _step('foreach = "images/*.png"'),
            "gitcache.toml: steps.s.foreach: 'images/*.png' matches no file",
        ),
        (
            _step('foreach = "../x/*.png"'),
            "gitcache.toml: steps.s.foreach: '../x/*.png' is outside the repository",
        ),
        (
            _step('matrix = { d = ["../../etc"] }\noutputs = ["{d}/x"]'),
            "gitcache.toml: steps.s.outputs: '../../etc/x' is outside the repository",
        ),
        (
            _step('matrix = { p = ["*"] }\noutputs = ["o/{p}"]'),
            "gitcache.toml: steps.s.outputs: item s[p=\"*\"] gives 'o/*', a glob",
        ),
        (
            '[steps.s]\nmatrix = { a = ["x", 1] }\nrun = "echo {a:d}"\n',
            "gitcache.toml: steps.s.run (item s[a=\"x\"]): {a:d}: Unknown format code 'd'",
        ),
    ],
)
def test_bad_sweep(make: Callable[..., Repo], toml: str, expected: str) -> None:
    repo = make({"gitcache.toml": toml})
    for command in (["run"], ["status"]):
        result = repo.run(*command)
        assert result.exit_code == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("gitcache: error: ")
        # status words a bad command as its evaluation finds it, run before anything runs
        assert expected in lines[0] or (command == ["status"] and "{a:d}" in lines[0]), lines[0]
        assert "Traceback" not in result.stderr
    assert repo.refs() == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "s[a=7]"], "gitcache: error: step 's' has no item a=7 (a: 1, 2; b: \"x\")"),
        (["run", "s[c=1]"], "gitcache: error: s[c=1]: expected AXIS=VALUE for axes a, b"),
        (
            ["run", "s[a=1,a=2]"],
            "gitcache: error: s[a=1,a=2]: axis a given twice (name items one selector each: "
            "'s[a=1]' 's[a=2]')",
        ),
        (["run", "t[a=1]"], "gitcache: error: 't[a=1]': step 't' is not a sweep; it has no items"),
        (["run", "u[a=1]"], "gitcache: error: gitcache.toml: unknown step 'u' (steps: s, t)"),
        (["run", "-p", "a=x"], "gitcache: error: -p a=x: expected int like the default 1"),
        (["run", "-p", "z=1"], "gitcache: error: -p z: no such parameter in gitcache.toml"),
        (["status", "s[a=7]"], "gitcache: error: step 's' has no item a=7"),
    ],
)
def test_bad_selection(make: Callable[..., Repo], args: list[str], expected: str) -> None:
    toml = (
        '[steps.s]\nmatrix = { a = [1, 2], b = ["x"] }\noutputs = ["o/{a}{b}"]\n'
        'run = "touch {outputs}"\n[steps.t]\nrun = "true"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [expected] or expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert repo.refs() == {}


@pytest.mark.parametrize(
    ("foreach", "output"),
    [
        ("data/*", "data/{item.name}.out"),
        ("data/", "data/out/{item.stem}"),
        ("**/*.txt", "o/{item.stem}.txt"),
    ],
)
def test_a_foreach_writing_what_it_matches_is_refused(
    make: Callable[..., Repo], foreach: str, output: str
) -> None:
    # Each run would make an item of the last run's output: data/a, data/a.out, ...
    toml = f'[steps.s]\nforeach = "{foreach}"\noutputs = ["{output}"]\nrun = "cat {{item}} > {{outputs}}"\n'
    repo = make({"gitcache.toml": toml, "data/a.txt": "a\n"})
    for command in (["run"], ["status"]):
        result = repo.run(*command)
        assert result.exit_code == 2, (command, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(
            "gitcache: error: gitcache.toml: steps.s.outputs: item s[data/a.txt]"
        )
        assert "which its own foreach" in line, line
    assert repo.refs() == {}
