"""A step's command that runs gitcache in the same repository never hangs on a lock
the gitcache that started it holds: it fails at once with one line naming the lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.helpers import Repo

GITCACHE = f"'{sys.executable}' -m gitcache"


def nested(make: Callable[..., Repo], command: str) -> Repo:
    toml = f'[steps.s]\noutputs = ["out.txt"]\nrun = "{GITCACHE} {command} && echo x > out.txt"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\n"})
    return repo


@pytest.mark.parametrize(
    ("command", "what"),
    [
        ("gc --prune --keep 1", "cannot drop records while a step runs"),
        ("remove --all", "cannot drop records while a step runs"),
        ("run s", "cannot run a step from its own command"),
    ],
)
def test_a_nested_gitcache_fails_at_once(
    make: Callable[..., Repo], command: str, what: str
) -> None:
    repo = nested(make, command)
    try:
        result = repo.process("run", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gitcache {command} inside a step hung")
    assert result.returncode == 1, result.stderr
    lock = "objects.lock" if "drop" in what else ".lock is held"
    assert f"gitcache: error: {what}: " in result.stderr
    assert lock in result.stderr
    assert "is held by the gitcache (pid " in result.stderr
    assert "that started this command, until the command ends" in result.stderr
    assert not repo.refs("refs/gitcache/sig/")


def test_a_nested_run_of_another_step_is_fine(make: Callable[..., Repo]) -> None:
    toml = f"""\
[steps.inner]
outputs = ["inner.txt"]
run = "echo in > inner.txt"

[steps.outer]
outputs = ["out.txt"]
run = "{GITCACHE} run inner && cat inner.txt > out.txt"
"""
    repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\ninner.txt\n"})
    result = repo.process("run", "outer", timeout=60)
    assert result.returncode == 0, result.stderr
    assert repo.read("out.txt") == "in\n"
