"""Command-line values that are not UTF-8 (bytes reach Python as lone surrogates)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo

TOML = '[params]\nname = "x"\n\n[steps.a]\noutputs = ["o"]\nrun = "echo {name} > o"\n'
BAD = os.fsdecode(b"\xff")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "-p", f"name={BAD}"], "gitcache: error: -p 'name=\\xff': not valid UTF-8"),
        (["status", "-p", f"name={BAD}"], "gitcache: error: -p 'name=\\xff': not valid UTF-8"),
        (
            ["log", "--param", f"name={BAD}"],
            "gitcache: error: --param 'name=\\xff': not valid UTF-8",
        ),
        (["show", BAD], "gitcache: error: record or step '\\xff': not valid UTF-8"),
        (["restore", BAD], "gitcache: error: record or step '\\xff': not valid UTF-8"),
        (["remove", BAD], "gitcache: error: record or step '\\xff': not valid UTF-8"),
        (["push", BAD], "gitcache: error: no remote named"),
    ],
)
def test_a_value_that_is_not_utf8_is_one_line_exit_2(
    make: Callable[..., Repo], args: list[str], expected: str
) -> None:
    repo = make({"gitcache.toml": TOML})
    assert repo.run("run").exit_code == 0
    result = repo.run(*args)
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(expected), line
    assert "internal error" not in line


def test_a_remote_whose_path_is_not_utf8_works(make: Callable[..., Repo], tmp_path: Path) -> None:
    repo = make({"gitcache.toml": TOML})
    assert repo.run("run").exit_code == 0
    bare = Path(os.fsdecode(os.fsencode(tmp_path) + b"/remote\xff.git"))
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    pushed = repo.run("push", str(bare))
    assert pushed.exit_code == 0, pushed.stderr
    fetched = repo.run("fetch", str(bare))
    assert fetched.exit_code == 0, fetched.stderr
    listed = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref", "refs/gitcache/sig/"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(listed.stdout.splitlines()) == 1
