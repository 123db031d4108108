"""An input's executable bit is part of what decides a step's result: `./prepare.sh`
runs only with it set. A blob id does not hold the mode, so the signature lists the
executable inputs (omitted when none is: other signatures do not change)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from tests.helpers import Repo

TOML = """\
[steps.prep]
inputs = ["prepare.sh"]
outputs = ["out.txt"]
run = "if [ -x prepare.sh ]; then ./prepare.sh > {outputs}; else echo plain > {outputs}; fi"
"""


def _components(repo: Repo) -> dict[str, object]:
    commit = repo.refs()["refs/gitcache/step/prep"]
    record = json.loads(repo.git("show", f"{commit}:record.json"))
    components: dict[str, object] = record["components"]
    return components


def test_making_an_input_executable_runs_the_step_again(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out.txt\n", "prepare.sh": "echo ran\n"})
    assert repo.run("run").exit_code == 0
    assert repo.read("out.txt") == "plain\n"
    assert "executable" not in _components(repo)  # no executable input: as before
    os.chmod(repo.root / "prepare.sh", 0o755)
    status = repo.run("status", "-v").stdout
    assert "input prepare.sh is executable now" in status
    result = repo.run("run")
    assert result.exit_code == 0 and ": ran" in result.stderr, result.stderr
    assert repo.read("out.txt") == "ran\n"
    assert _components(repo)["executable"] == ["prepare.sh"]
    os.chmod(repo.root / "prepare.sh", 0o644)  # back: the first record is a hit again
    result = repo.run("run")
    assert result.exit_code == 0 and "restored" in result.stderr, result.stderr
    assert repo.read("out.txt") == "plain\n"


def test_an_input_made_executable_while_the_step_runs_records_nothing(
    make: Callable[..., Repo],
) -> None:
    toml = (
        '[steps.prep]\ninputs = ["prepare.sh"]\noutputs = ["out.txt"]\n'
        'run = "chmod +x prepare.sh; echo x > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\n", "prepare.sh": "echo ran\n"})
    result = repo.run("run")
    assert result.exit_code != 0
    assert "input prepare.sh changed while the step ran" in result.stderr
    assert "refs/gitcache/step/prep" not in repo.refs()


def test_modes_do_not_count_where_git_ignores_them(make: Callable[..., Repo]) -> None:
    """core.filemode = false (a file system that shows every file executable): git
    ignores the bit, and so does the signature, so such a clone shares records."""
    repo = make({"gitcache.toml": TOML, ".gitignore": "out.txt\n", "prepare.sh": "echo ran\n"})
    repo.git("config", "core.filemode", "false")
    os.chmod(repo.root / "prepare.sh", 0o755)
    assert repo.run("run").exit_code == 0
    assert "executable" not in _components(repo)
    os.chmod(repo.root / "prepare.sh", 0o644)
    result = repo.run("run")
    assert result.exit_code == 0 and "up to date" in result.stderr, result.stderr
