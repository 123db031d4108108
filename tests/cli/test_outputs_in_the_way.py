"""A file where an output's directory must be: one line naming it, exit 1, the file kept."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests.helpers import Repo

TOML = """\
[steps.a]
outputs = ["out/sub/a.txt", "out/b.txt"]
run = "echo a > out/sub/a.txt && echo b > out/b.txt"
"""


@pytest.mark.parametrize("in_the_way", ["out/sub", "out"])
def test_a_file_in_the_way_of_an_outputs_directory_fails_the_step_in_one_line(
    make: Callable[..., Repo], in_the_way: str
) -> None:
    repo = make({"gitcache.toml": TOML})
    assert repo.run("run").exit_code == 0
    shutil.rmtree(repo.root / "out")
    repo.write(in_the_way, "mine\n")
    result = repo.run("run")
    assert result.exit_code == 1, result.stderr
    assert "internal error" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("gitcache: error:")]
    assert len(error) == 1, result.stderr
    assert f"cannot make the directory {'out/sub'!r} of output {'out/sub/a.txt'!r}" in error[0]
    assert repo.read(in_the_way) == "mine\n"  # the user's file is kept
