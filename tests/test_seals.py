"""Seals: a no-op trusts a whole output by one digest of its files' stats (statcache.py).

The fast path must see everything the file-by-file comparison sees: a file added,
removed or edited (also with its size and mtime put back), a file changed within the
cache file's clock tick, a missing output, another record; and a sealed evaluation
never reads record.json.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.engine import Engine, RunOptions
from gitcache.gitrepo import GitRepo
from gitcache.plan import Evaluation, Mismatch, Planner
from gitcache.project import Project
from gitcache.statcache import CACHE_FILE, StatCache
from tests.helpers import Repo
from tests.test_noop import Silent, outcomes, run_once

TOML = """\
[steps.many]
inputs = ["gen.sh"]
outputs = ["out", "summary.txt"]
run = "sh gen.sh"
"""

GEN = """\
mkdir -p out/a out/b out/empty
for i in 1 2 3 4 5; do echo "a $i" > out/a/$i.txt; echo "b $i" > out/b/$i.txt; done
printf '#!/bin/sh\\n' > out/run.sh && chmod +x out/run.sh
ln -s a/1.txt out/link
echo done > summary.txt
"""

OLD_NS = 1_600_000_000_000_000_000


def _age(root: Path) -> None:
    """Every output's mtime far in the past: never racily clean against the cache file."""
    for path in [root / "summary.txt", *sorted((root / "out").rglob("*"))]:
        os.utime(path, ns=(OLD_NS, OLD_NS), follow_symlinks=False)


def _tick(root: Path) -> None:
    """The cache file a second newer: what was written before it is no longer racy."""
    cache = root / ".git" / "gitcache" / CACHE_FILE
    later = cache.stat().st_mtime_ns + 1_000_000_000
    os.utime(cache, ns=(later, later))


def evaluate(root: Path) -> Evaluation:
    project = Project.open(root)
    return Planner(project, project.workflow.params, os.environ).evaluate("many")


@pytest.fixture
def sealed(make: Callable[..., Repo]) -> Repo:
    """The step ran, its outputs aged, and a no-op sealed them again."""
    repo = make({"gitcache.toml": TOML, "gen.sh": GEN, ".gitignore": "out/\nsummary.txt\n"})
    summary, _ = run_once(repo.root)
    assert outcomes(summary) == ["ran"]
    _age(repo.root)
    summary, hashed = run_once(repo.root)  # the stats moved: hashed, compared, sealed
    assert outcomes(summary) == ["skipped"] and hashed > 0
    assert evaluate(repo.root).sealed
    return repo


def test_a_sealed_noop_reads_no_record_and_no_file(
    sealed: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_record(self: GitRepo, commit: str, path: str) -> bytes | None:
        raise AssertionError(f"a sealed no-op read {path} of {commit}")

    monkeypatch.setattr(GitRepo, "read_commit_file", no_record)
    summary, hashed = run_once(sealed.root)
    assert outcomes(summary) == ["skipped"] and hashed == 0
    monkeypatch.undo()
    # The record is still there to read when someone asks for it.
    evaluation = evaluate(sealed.root)
    assert evaluation.sealed and evaluation.record is not None
    recorded = {o.path: o.blob for o in evaluation.record.record.outputs}
    assert recorded["out/a/1.txt"] == sealed.blob("out/a/1.txt")
    assert {p: s.oid for p, s in evaluation.outputs.items() if s is not None} == recorded


def test_the_first_noop_after_a_run_is_sealed_by_the_run(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, "gen.sh": GEN, ".gitignore": "out/\nsummary.txt\n"})
    project = Project.open(repo.root)
    Engine(project, RunOptions(), Silent()).run([])
    project.save()
    _tick(repo.root)
    assert evaluate(repo.root).sealed


def test_an_extra_file_is_seen(sealed: Repo) -> None:
    sealed.write("out/b/extra.txt", "new\n")
    evaluation = evaluate(sealed.root)
    assert not evaluation.sealed
    assert evaluation.mismatches() == [
        Mismatch("out/b/extra.txt", None, sealed.blob("out/b/extra.txt"))
    ]


def test_a_removed_file_is_seen(sealed: Repo) -> None:
    recorded = sealed.blob("out/a/3.txt")
    (sealed.root / "out/a/3.txt").unlink()
    evaluation = evaluate(sealed.root)
    assert not evaluation.sealed
    assert evaluation.mismatches() == [Mismatch("out/a/3.txt", recorded, None)]
    summary, _ = run_once(sealed.root)
    assert outcomes(summary) == ["restored"]
    assert sealed.read("out/a/3.txt") == "a 3\n"


def test_a_missing_output_is_seen(sealed: Repo) -> None:
    (sealed.root / "summary.txt").unlink()
    assert not evaluate(sealed.root).sealed
    summary, _ = run_once(sealed.root)
    assert outcomes(summary) == ["restored"]
    _tick(sealed.root)  # the restore sealed what it wrote and left
    assert evaluate(sealed.root).sealed


def test_an_edit_with_size_and_mtime_put_back_is_seen(sealed: Repo) -> None:
    path = sealed.root / "out/a/2.txt"
    path.write_text("A 2\n")  # the same size
    os.utime(path, ns=(OLD_NS, OLD_NS))  # the same mtime: only the ctime moved
    evaluation = evaluate(sealed.root)
    assert not evaluation.sealed
    assert [m.path for m in evaluation.mismatches()] == ["out/a/2.txt"]


def test_a_mode_change_is_seen(sealed: Repo) -> None:
    os.chmod(sealed.root / "out/run.sh", 0o644)
    evaluation = evaluate(sealed.root)
    assert not evaluation.sealed
    assert [m.path for m in evaluation.mismatches()] == ["out/run.sh"]


def test_a_file_as_new_as_the_cache_is_not_trusted(sealed: Repo) -> None:
    """Racily clean: a file whose mtime is not older than the cache file may have been
    rewritten within the tick its stat was taken in, so the seal does not hold."""
    cache = sealed.root / ".git" / "gitcache" / CACHE_FILE
    tick = cache.stat().st_mtime_ns
    path = sealed.root / "out/b/4.txt"
    os.utime(path, ns=(tick, tick))
    project = Project.open(sealed.root)
    found = project.worktree.output_walk(["out", "summary.txt"])
    seal = project.worktree.cache._seals["many"]
    # The same stats as sealed except for that mtime: refused for the racy file alone.
    assert not project.worktree.cache.sealed("many", seal[0], seal[1], found)
    evaluation = Planner(project, project.workflow.params, os.environ).evaluate("many")
    assert not evaluation.sealed and evaluation.mismatches() == []
    assert project.worktree.cache.hashed == 1  # that file, hashed again


def test_another_signature_or_record_is_not_sealed(sealed: Repo) -> None:
    project = Project.open(sealed.root)
    cache = project.worktree.cache
    signature, commit, _digest = cache._seals["many"]
    found = project.worktree.output_walk(["out", "summary.txt"])
    assert cache.sealed("many", signature, commit, found)
    assert not cache.sealed("many", "0" * 64, commit, found)
    assert not cache.sealed("many", signature, "0" * 40, found)
    assert not cache.sealed("other", signature, commit, found)
    assert not cache.sealed("many", signature, commit, found[::-1])
    # A command change is a new signature: the step runs.
    sealed.write("gitcache.toml", TOML.replace('run = "sh gen.sh"', 'run = "sh ./gen.sh"'))
    summary, _ = run_once(sealed.root)
    assert outcomes(summary) == ["ran"]


def test_a_damaged_seal_is_ignored(sealed: Repo) -> None:
    cache = sealed.root / ".git" / "gitcache" / CACHE_FILE
    text = cache.read_text()
    project = Project.open(sealed.root)
    digest = project.worktree.cache._seals["many"][2]
    cache.write_text(text.replace(digest, "0" * len(digest)))
    evaluation = evaluate(sealed.root)
    assert not evaluation.sealed and evaluation.mismatches() == []
    cache.write_text(text.replace(f'"{digest}"', "7"))  # not a string: no seal at all
    assert StatCache(cache.parent)._seals == {}


def test_outputs_are_not_read_when_no_record_can_match(sealed: Repo) -> None:
    """A new signature has no record to compare the outputs with: a miss runs the step
    anyway, so the outputs (stats the cache cannot vouch for) are not hashed for it;
    they are read only if asked for."""
    sealed.write("gitcache.toml", TOML.replace('run = "sh gen.sh"', 'run = "sh ./gen.sh"'))
    (sealed.root / ".git" / "gitcache" / CACHE_FILE).unlink()  # no row vouches for a file
    project = Project.open(sealed.root)
    evaluation = Planner(project, project.workflow.params, os.environ).evaluate("many")
    assert evaluation.record is None and evaluation.signature is not None
    assert project.worktree.cache.hashed == 1  # the input, gen.sh: no output
    assert evaluation.outputs["summary.txt"] is not None  # asked for: read now
    assert project.worktree.cache.hashed > 1
    assert (sealed.root / "out/a/1.txt").read_text() == "a 1\n"  # the step did not run
