"""A run that records starts `git gc --auto` once more packs than git lets be pile up:
every sweep writes packs, and each one is another place every look-up searches."""

from __future__ import annotations

import time
from collections.abc import Callable

from gitcache.housekeeping import too_many_packs
from tests.helpers import Repo

TOML = "[steps.s]\noutputs = ['o.txt']\nrun = 'echo {v} > {outputs}'\n[params]\nv = 1\n"


def _packs(repo: Repo) -> int:
    return len(list((repo.root / ".git" / "objects" / "pack").glob("*.pack")))


def _pile_up(repo: Repo, count: int) -> None:
    for n in range(count):  # a pack of one blob each, as many small writes leave
        oid = repo.git("hash-object", "-w", "--stdin", input=f"blob {n}\n")
        repo.git("pack-objects", "-q", ".git/objects/pack/pack", input=oid)


def test_a_run_that_records_repacks_once_packs_pile_up(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "o.txt\n"})
    _pile_up(repo, 55)
    assert too_many_packs(repo.root / ".git" / "objects")
    assert repo.run("run").exit_code == 0
    deadline = time.monotonic() + 60
    while _packs(repo) > 2 and time.monotonic() < deadline:  # git repacks in the background
        time.sleep(0.1)
    assert _packs(repo) <= 2
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
    assert "1 step: 1 up to date" in repo.run("run").stderr


def test_no_repack_below_the_limit_or_without_a_record(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "o.txt\n"})
    assert repo.run("run").exit_code == 0
    _pile_up(repo, 55)
    before = _packs(repo)
    assert repo.run("run").exit_code == 0  # a no-op: it wrote nothing
    time.sleep(0.5)
    assert _packs(repo) == before
    repo.git("config", "gc.auto", "0")  # the user's choice is git's to read
    assert repo.run("run", "-p", "v=2").exit_code == 0
    time.sleep(0.5)
    assert _packs(repo) >= before
