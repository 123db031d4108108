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
        ('[steps."bad name"]\nrun = "x"\n', "gitcache.toml: steps.bad name"),
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
            '[steps.a]\noutputs = ["x"]\nrun = "x"\n[steps.b]\noutputs = ["x"]\nrun = "y"\n',
            "gitcache.toml: steps 'a' and 'b' both declare output",
        ),
        (
            '[steps.a]\ninputs = ["b.txt"]\noutputs = ["a.txt"]\nrun = "x"\n'
            '[steps.b]\ninputs = ["a.txt"]\noutputs = ["b.txt"]\nrun = "y"\n',
            "gitcache.toml: steps form a cycle: a -> b -> a",
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
    ],
)
def test_bad_param_override(make: Callable[..., Repo], param: str, expected: str) -> None:
    repo = make({"gitcache.toml": "[params]\nsize = 3\n" + GOOD_STEP})
    result = repo.run("run", "-p", param)
    assert result.exit_code == 2
    assert expected in result.stderr


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
