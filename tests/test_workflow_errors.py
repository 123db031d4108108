"""Every bad gitcache.toml is one line naming the file and the key, exit 2, nothing run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import Repo

GOOD_STEP = '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > {outputs}"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[steps.a\nrun = 1", "gitcache.toml: invalid TOML"),
        ('[steps.a]\nrun = "x"\nbogus = 1\n', "gitcache.toml: steps.a.bogus: unknown key"),
        ("[steps.a]\nrun = 3\n", "gitcache.toml: steps.a.run: Input should be a valid string"),
        ('[steps.a]\noutputs = "x"\nrun = "x"\n', "gitcache.toml: steps.a.outputs"),
        ("[steps.a]\noutputs = []\n", "gitcache.toml: steps.a.run: required key is missing"),
        ('[steps."bad name"]\nrun = "x"\n', 'gitcache.toml: steps."bad name": invalid step name'),
        (
            '[steps."fit..v2"]\nrun = "x"\n',
            "gitcache.toml: steps.\"fit..v2\": invalid step name 'fit..v2': it may not contain '..' "
            "(it names the git ref refs/gitcache/step/fit..v2)",
        ),
        (
            '[steps."a.lock"]\nrun = "x"\n',
            "steps.\"a.lock\": invalid step name 'a.lock': it may not end with '.lock'",
        ),
        ('[steps.".."]\nrun = "x"\n', "steps.\"..\": invalid step name '..': it may not start"),
        ('[steps."."]\nrun = "x"\n', "invalid step name '.': it may not start with '.' or '-'"),
        ('[steps."fit."]\nrun = "x"\n', "invalid step name 'fit.': it may not end with '.'"),
        ('[steps.".fit"]\nrun = "x"\n', "invalid step name '.fit': it may not start with"),
        ('[steps.-fit]\nrun = "x"\n', "invalid step name '-fit': it may not start with"),
        ('[steps."a@{b"]\nrun = "x"\n', "invalid step name 'a@{b': use only letters, digits"),
        ('[steps.""]\nrun = "x"\n', "invalid step name '': use only letters, digits"),
        ('[steps.a]\nrun = "x"\nshell = "zsh"\n', "gitcache.toml: steps.a.shell"),
        ('[steps.a]\nrun = "echo {nope}"\n', "gitcache.toml: steps.a.run: {nope} is not defined"),
        ('[steps.a]\nrun = "echo {}"\n', "gitcache.toml: steps.a.run: bad format string"),
        ('[steps.a]\nrun = "echo {"\n', "gitcache.toml: steps.a.run: bad format string"),
        (
            '[steps.a]\noutputs = ["../x"]\nrun = "x"\n',
            "gitcache.toml: steps.a.outputs: '../x' is outside the repository",
        ),
        (
            '[steps.a]\ninputs = ["/etc/passwd"]\nrun = "x"\n',
            "gitcache.toml: steps.a.inputs: '/etc/passwd' is outside the repository",
        ),
        (
            '[steps.a]\noutputs = [".git/x"]\nrun = "x"\n',
            "steps.a.outputs: '.git/x' is inside .git",
        ),
        ('[steps.a]\noutputs = ["o/*.txt"]\nrun = "x"\n', "steps.a.outputs: 'o/*.txt' is a glob"),
        (
            '[steps.a]\noutputs = ["vendor/lib/.GIT/hooks/x"]\nrun = "x"\n',
            "steps.a.outputs: 'vendor/lib/.GIT/hooks/x' is inside .git",
        ),
        (
            '[steps.a]\ninputs = ["sub/.git./config"]\nrun = "x"\n',
            "steps.a.inputs: 'sub/.git./config' is inside .git",
        ),
        (
            '[steps.a]\noutputs = ["a\\\\b.txt"]\nrun = "x"\n',
            "steps.a.outputs: unsafe path 'a\\\\b.txt'",
        ),
        (
            '[steps.a]\noutputs = ["x"]\nrun = "x"\n[steps.b]\noutputs = ["x"]\nrun = "y"\n',
            "gitcache.toml: steps 'a' and 'b' both declare output",
        ),
        (
            '[steps.a]\ninputs = ["b.txt"]\noutputs = ["a.txt"]\nrun = "x"\n'
            '[steps.b]\ninputs = ["a.txt"]\noutputs = ["b.txt"]\nrun = "y"\n',
            "gitcache.toml: steps form a cycle: a -> b -> a",
        ),
        (
            '[steps.a]\ninputs = ["out/x.txt"]\noutputs = ["out"]\nrun = "x"\n',
            "gitcache.toml: steps form a cycle: a -> a",
        ),
        (
            '[steps.a]\ninputs = ["*.txt"]\noutputs = ["a.txt"]\nrun = "x"\n',
            "gitcache.toml: steps form a cycle: a -> a",
        ),
        (
            '[steps.a]\noutputs = ["a.txt"]\nrun = "echo > {outputs[3]}"\n',
            "gitcache.toml: steps.a.run: {outputs[3]}: no such output: the step has 1 output",
        ),
        (
            '[params]\np = "abc"\n[steps.a]\nrun = "echo {p:d}"\n',
            "gitcache.toml: steps.a.run: {p:d}: Unknown format code 'd' for object of type 'str'"
            " (p is 'abc')",
        ),
        (
            '[params]\np = 3\n[steps.a]\nrun = "echo {p[0]}"\n',
            "gitcache.toml: steps.a.run: {p[0]}: 'int' object is not subscriptable (p is 3)",
        ),
        (
            '[params]\np = 3\n[steps.a]\nrun = "echo {p.real.x}"\n',
            "gitcache.toml: steps.a.run: {p.real.x}: 'int' object has no attribute 'x'",
        ),
        (
            '[params]\np = [1, 2]\n[steps.a]\nrun = "echo {p[2]}"\n',
            "gitcache.toml: steps.a.run: {p[2]}: list index out of range (p is [1, 2])",
        ),
        (
            '[params]\nw = "x"\n[steps.a]\nrun = "echo {w:{w}}"\n',
            "gitcache.toml: steps.a.run: {w:{w}}: Unknown format code 'x'",
        ),
        ("[params]\nrate = nan\n" + GOOD_STEP, "gitcache.toml: params.rate: nan is not allowed"),
        ("[params]\nrate = inf\n" + GOOD_STEP, "gitcache.toml: params.rate: inf is not allowed"),
        ("[params]\nrate = -inf\n" + GOOD_STEP, "gitcache.toml: params.rate: -inf is not allowed"),
        (
            "[params]\ngrid = [0.1, [1.0, -nan]]\n" + GOOD_STEP,
            "gitcache.toml: params.grid[1][1]: nan is not allowed",
        ),
        (
            "[params.opts]\nlr = +inf\n" + GOOD_STEP,
            "gitcache.toml: params.opts.lr: inf is not allowed",
        ),
        (
            '[params]\nt = { "$local-date" = "2024-01-01" }\n' + GOOD_STEP,
            "gitcache.toml: params.t: a table whose only key is '$local-date' is reserved",
        ),
        (  # tomllib gives up (RecursionError: an internal error before)
            "[params]\nv = " + "[" * 5000 + "]" * 5000 + "\n" + GOOD_STEP,
            "gitcache.toml: invalid TOML: values nested too deeply to read",
        ),
        (  # the signature's readers would (pydantic's serializer: an internal error before)
            "[params]\nv = " + "[" * 400 + "]" * 400 + "\n" + GOOD_STEP,
            "gitcache.toml: params.v: nested more than 64 arrays or tables deep",
        ),
        (
            "[params]\nv = { a = " + "{ a = " * 64 + "1" + " }" * 64 + " }\n" + GOOD_STEP,
            "gitcache.toml: params.v: nested more than 64 arrays or tables deep",
        ),
        (
            '[steps.Train]\nrun = "true"\n[steps.train]\nrun = "true"\n',
            "gitcache.toml: steps 'Train' and 'train' differ only in case: their git refs "
            "would be one file on a case-insensitive file system (macOS, Windows)",
        ),
    ],
)
def test_bad_workflow_file(make: Callable[..., Repo], toml: str, expected: str) -> None:
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gitcache: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert repo.refs() == {}


def test_invalid_toml_names_the_line(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": '[params]\nsize = 1\n\n[steps.a]\nrun = "x"\noops\n'})
    result = repo.run("status")
    assert result.exit_code == 2
    assert "line 6" in result.stderr


def test_not_a_git_repository(tmp_path: object) -> None:
    from pathlib import Path

    from tests.helpers import Repo

    root = Path(str(tmp_path)) / "plain"
    root.mkdir()
    result = Repo(root).run("run")
    assert result.exit_code == 2
    assert result.stderr.startswith("gitcache: error: not a git repository")


def test_no_workflow_file(make: Callable[..., Repo]) -> None:
    repo = make({"README": "x"})
    result = repo.run("run")
    assert result.exit_code == 2
    assert "gitcache: error: no gitcache.toml in" in result.stderr
    assert "gitcache init" in result.stderr


def test_unknown_step_lists_known(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": GOOD_STEP})
    result = repo.run("run", "nope")
    assert result.exit_code == 2
    assert "unknown step 'nope' (steps: a)" in result.stderr
    assert not (repo.root / "a.txt").exists()


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("size", "-p 'size': expected NAME=VALUE"),
        ("nope=1", "-p nope: no such parameter in gitcache.toml (params: size)"),
        ("size=abc", "-p size=abc: expected int like the default 3"),
        ("size=" + "[" * 600 + "]" * 600, "-p size=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
    ],
)
def test_bad_param_override(make: Callable[..., Repo], param: str, expected: str) -> None:
    repo = make({"gitcache.toml": "[params]\nsize = 3\n" + GOOD_STEP})
    result = repo.run("run", "-p", param)
    assert result.exit_code == 2
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("rate=nan", "-p rate=nan: rate: nan is not allowed (NaN and infinities"),
        ("rate=inf", "-p rate=inf: rate: inf is not allowed"),
        ("rate=-inf", "-p rate=-inf: rate: -inf is not allowed"),
        ("grid=[1.0, nan]", "-p grid=[1.0, nan]: grid[1]: nan is not allowed"),
        ("day=2024-01-31T10:00:00", "expected local date like the default 2024-01-01"),
        ("day=10:00:00", "-p day=10:00:00: expected local date like the default 2024-01-01"),
        ('day="2024-01-31"', "expected local date like the default 2024-01-01"),
        ("at=2024-01-31T10:00:00", "expected offset date-time like the default 2024-01-01T"),
        ("rate=2024-01-01", "-p rate=2024-01-01: expected float like the default 0.5"),
    ],
)
def test_bad_float_and_date_overrides(make: Callable[..., Repo], param: str, expected: str) -> None:
    toml = (
        "[params]\nrate = 0.5\ngrid = [0.5]\nday = 2024-01-01\nat = 2024-01-01T00:00:00Z\n"
        '[steps.a]\noutputs = ["a.txt"]\nrun = "echo {rate} {grid} {day} {at} > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run("run", "-p", param)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitcache: error: ")
    assert expected in lines[0]
    assert repo.refs() == {} and not (repo.root / "a.txt").exists()


def test_missing_input_is_named_and_nothing_runs(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": GOOD_STEP
            + '[steps.b]\ninputs = ["data/in.csv"]\noutputs = ["b.txt"]\nrun = "cat {inputs} > b.txt"\n'
        }
    )
    result = repo.run("run")
    assert result.exit_code == 2
    assert "step 'b': input 'data/in.csv' does not exist and no step produces it" in result.stderr
    assert not (repo.root / "a.txt").exists()
    assert repo.refs() == {}


def test_explicit_workflow_file(make: Callable[..., Repo]) -> None:
    repo = make({"other/flow.toml": GOOD_STEP})
    assert repo.run("run", "-f", str(repo.root / "other/flow.toml")).exit_code == 0
    assert (repo.root / "a.txt").read_text() == "a\n"


def test_a_param_64_deep_is_fine(make: Callable[..., Repo]) -> None:
    deep = "[" * 64 + "]" * 64
    repo = make({"gitcache.toml": f"[params]\nv = {deep}\n" + GOOD_STEP})
    assert repo.run("run").exit_code == 0
    override = repo.run("run", "-p", "v=" + "[" * 65 + "]" * 65)
    assert override.exit_code == 2
    assert "v: nested more than 64 arrays or tables deep" in override.stderr
