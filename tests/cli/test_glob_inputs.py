"""A glob input over another step's directory output depends on that step."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from tests.helpers import Repo

GEN = """\
[params]
n = 1

[steps.gen]
outputs = ["gen"]
run = "sleep 0.3; mkdir -p gen && echo {n} > gen/a.txt && echo log > gen/a.log"

[steps.use]
inputs = ["gen/*.txt"]
outputs = ["use.txt"]
run = "cat gen/*.txt > {outputs}"
"""


def test_a_fresh_clone_runs_the_producer_first(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": GEN, ".gitignore": "gen/\nuse.txt\n"})
    ran = repo.run("run", "use")
    assert ran.exit_code == 0, ran.stderr
    assert repo.read("use.txt") == "1\n"
    assert ran.stderr.index("gen: running") < ran.stderr.index("use: running")


def test_outputs_removed_are_restored_in_order(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": GEN, ".gitignore": "gen/\nuse.txt\n"})
    assert repo.run("run").exit_code == 0
    shutil.rmtree(repo.root / "gen")
    (repo.root / "use.txt").unlink()
    again = repo.run("run")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("restored from git [") == 2
    assert repo.read("use.txt") == "1\n"


def test_parallel_runs_wait_for_the_producer(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": GEN, ".gitignore": "gen/\nuse.txt\n"})
    assert repo.run("run").exit_code == 0
    ran = repo.run("run", "-j", "2", "-p", "n=2")
    assert ran.exit_code == 0, ran.stderr
    assert repo.read("use.txt") == "2\n"  # not the stale gen/a.txt of n=1
    status = repo.run("status")
    assert status.exit_code == 0 and "stale" not in status.stdout, status.stdout


def test_a_dry_run_sees_the_restored_directory(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": GEN, ".gitignore": "gen/\nuse.txt\n"})
    assert repo.run("run").exit_code == 0
    shutil.rmtree(repo.root / "gen")
    (repo.root / "use.txt").unlink()
    dry = repo.run("run", "-n")
    assert dry.exit_code == 0, dry.stderr
    assert "2 would restore" in dry.stderr, dry.stderr
