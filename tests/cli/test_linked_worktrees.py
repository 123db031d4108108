"""Linked worktrees (`git worktree add`): what is about a worktree's files stays its own.

Records, locks and the record index are shared by all worktrees of a repository; the
stat cache, the outputs removed on purpose and each step's latest record belong to
one worktree, in its own git dir. The main worktree keeps `refs/gitcache/step/<name>`.
"""

from __future__ import annotations

import json
from pathlib import Path

from gitcache.statcache import CACHE_FILE
from tests.helpers import Repo


def _linked(main: Repo, name: str = "linked") -> Repo:
    path = main.root.parent / name
    main.git("worktree", "add", "-q", "--detach", str(path))
    return Repo(path)


def _git_dir(repo: Repo) -> Path:
    return Path(repo.git("rev-parse", "--absolute-git-dir").strip())


def _latest(repo: Repo, step: str) -> str:
    result = repo.run("show", step, "--json")
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["signature"])


def test_outputs_removed_in_one_worktree_are_restored_in_another(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    linked = _linked(chain)
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    assert not (chain.root / "out" / "data.txt").exists()
    # Never removed here: the linked worktree gets its files.
    result = linked.run("run")
    assert result.exit_code == 0, result.stderr
    assert (linked.root / "out" / "data.txt").exists()
    assert (linked.root / "out" / "count.txt").exists()
    # The main worktree still keeps them in the store only.
    again = chain.run("run")
    assert "kept in the store" in again.stderr
    assert not (chain.root / "out" / "data.txt").exists()


def test_each_worktree_has_its_own_latest_record(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    main_sig = _latest(chain, "make")
    main_ref = chain.refs()["refs/gitcache/step/make"]
    linked = _linked(chain)
    assert linked.run("run", "-p", "size=7").exit_code == 0
    linked_sig = _latest(linked, "make")
    assert linked_sig != main_sig
    assert _latest(chain, "make") == main_sig  # SPEC §4: the main worktree's ref, untouched
    assert chain.refs()["refs/gitcache/step/make"] == main_ref
    # gc in the main worktree keeps the linked worktree's latest record too.
    result = chain.run("gc", "--keep", "0")
    assert result.exit_code == 0, result.stderr
    assert _latest(linked, "make") == linked_sig
    assert linked.run("run", "-s", "assert", "-p", "size=7").exit_code == 0


def test_the_stat_cache_and_registry_live_in_the_worktrees_git_dir(chain: Repo) -> None:
    linked = _linked(chain)
    assert linked.run("run").exit_code == 0
    assert linked.run("remove", "--outputs", "count").exit_code == 0
    own = _git_dir(linked) / "gitcache"
    assert (own / CACHE_FILE).exists()
    assert (own / "removed-outputs-v1.json").exists()
    shared = _git_dir(chain) / "gitcache"
    assert not (shared / CACHE_FILE).exists()
    assert not (shared / "removed-outputs-v1.json").exists()


def test_gc_in_one_worktree_keeps_the_only_copy_of_an_output_removed_in_another(
    chain: Repo,
) -> None:
    linked = _linked(chain)
    assert linked.run("run").exit_code == 0
    record = json.loads(linked.run("show", "count", "--json").stdout)["record"]
    assert linked.run("remove", "--outputs", "count").exit_code == 0
    result = chain.run("gc", "--keep", "0", "--all", "--prune")
    assert result.exit_code == 0, result.stderr
    restored = linked.run("restore", record)
    assert restored.exit_code == 0, restored.stderr
    assert (linked.root / "out" / "count.txt").exists()
