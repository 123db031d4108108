"""`-s build` re-recording outputs of which few files changed: the files are taken from
the evaluation's walk and its states (engine._collect_outputs, Worktree.store_walked),
not stat'ed again one by one, and yet every file is recorded as the worktree holds it:
a file edited within the stat cache's clock tick or with its stat changed is read
again, a new file is stored, a removed one dropped, every path checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from gitcache.engine import Engine, RunOptions, StepResult
from gitcache.gitrepo import GitRepo
from gitcache.project import Project
from gitcache.statcache import CACHE_FILE, StatCache
from tests.helpers import Repo
from tests.test_noop import Silent, outcomes, run_once
from tests.test_seals import GEN, OLD_NS, TOML, _age, _tick, evaluate

T = TypeVar("T")


@pytest.fixture
def recorded(make: Callable[..., Repo]) -> Repo:
    """The step ran, its outputs aged (no stat racy), and a no-op sealed them."""
    repo = make({"gitcache.toml": TOML, "gen.sh": GEN, ".gitignore": "out/\nsummary.txt\n"})
    assert outcomes(run_once(repo.root)[0]) == ["ran"]
    _age(repo.root)
    assert outcomes(run_once(repo.root)[0]) == ["skipped"]
    assert evaluate(repo.root).sealed
    return repo


def build(root: Path) -> tuple[StepResult, StatCache]:
    """One `gitcache run -s build` through the API, in a fresh Project."""
    project = Project.open(root)
    summary = Engine(project, RunOptions(mode="build"), Silent()).run([])
    project.save()
    (result,) = summary.results
    return result, project.worktree.cache


def worktree_blobs(repo: Repo) -> dict[str, str]:
    """Every output file's blob id as git computes it (a symlink: its text's)."""
    found = {}
    for path in [repo.root / "summary.txt", *sorted((repo.root / "out").rglob("*"))]:
        rel = path.relative_to(repo.root).as_posix()
        if path.is_symlink():
            found[rel] = GitRepo.hash_bytes(os.fsencode(os.readlink(path)))
        elif path.is_file():
            found[rel] = repo.blob(rel)
    return found


def assert_records_the_worktree(repo: Repo, result: StepResult) -> None:
    assert result.outcome == "recorded", result.detail
    assert result.record is not None
    record = result.record.record
    assert {o.path: o.blob for o in record.outputs} == worktree_blobs(repo)
    for out in record.outputs:
        repo.git("cat-file", "-e", f"{out.blob}^{{blob}}")  # in the repository
    assert outcomes(run_once(repo.root)[0]) == ["skipped"]


def _counting_lstats(monkeypatch: pytest.MonkeyPatch, call: Callable[[], T]) -> tuple[list[str], T]:
    """The paths `call` lstat'ed, and what it returned."""
    lstats: list[str] = []
    lstat = os.lstat

    def counting(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        lstats.append(os.fspath(path))
        return lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting)
    try:
        return lstats, call()
    finally:
        monkeypatch.undo()


def test_build_stats_no_unchanged_file_again(
    recorded: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation's walk is the stat of each file: no lstat per unchanged file."""
    edited = recorded.root / "out/a/2.txt"
    edited.write_text("a 2, edited\n")
    lstats, (result, cache) = _counting_lstats(monkeypatch, lambda: build(recorded.root))
    assert cache.hashed == 1  # the edited file, by the evaluation
    below = {p for p in lstats if "/out/" in p}
    assert below <= {str(edited)}, sorted(below)
    _tick(recorded.root)
    assert evaluate(recorded.root).sealed  # the build sealed what it recorded
    assert_records_the_worktree(recorded, result)


def test_a_file_edited_within_the_cache_files_tick_is_read_again(recorded: Repo) -> None:
    """Racily clean: a row that matches the file's stat but is as new as the cache file
    may predate a rewrite within that tick, so the file is read, not trusted."""
    root = recorded.root
    path = root / "out/b/4.txt"
    old = recorded.blob("out/b/4.txt")
    path.write_text("B 4\n")  # the same size
    st = os.lstat(path)
    # The row a cache that stat'ed the file just before that rewrite would hold.
    state_dir = root / ".git" / "gitcache"
    cache = StatCache(state_dir)
    cache.remember("out/b/4.txt", st, old)
    cache.save()
    os.utime(state_dir / CACHE_FILE, ns=(st.st_mtime_ns, st.st_mtime_ns))
    result, cache = build(root)
    assert cache.hashed == 1
    assert_records_the_worktree(recorded, result)
    assert recorded.blob("out/b/4.txt") != old


def test_the_racy_row_above_is_trusted_a_tick_later(recorded: Repo) -> None:
    """The test above is not vacuous: the same (forged) row, older than the cache file,
    vouches for the file, which is then not read at all."""
    root = recorded.root
    path = root / "out/b/4.txt"
    old = recorded.blob("out/b/4.txt")
    path.write_text("B 4\n")
    st = os.lstat(path)
    state_dir = root / ".git" / "gitcache"
    cache = StatCache(state_dir)
    cache.remember("out/b/4.txt", st, old)
    cache.save()
    later = st.st_mtime_ns + 1_000_000_000
    os.utime(state_dir / CACHE_FILE, ns=(later, later))
    result, cache = build(root)
    assert result.outcome == "skipped" and cache.hashed == 0  # as the record says


def test_a_file_whose_stat_changed_is_read_again(recorded: Repo) -> None:
    path = recorded.root / "out/a/2.txt"
    path.write_text("A 2\n")  # the same size
    os.utime(path, ns=(OLD_NS, OLD_NS))  # the same mtime: only the ctime moved
    result, cache = build(recorded.root)
    assert cache.hashed == 1
    assert_records_the_worktree(recorded, result)


def test_a_new_file_is_stored_and_a_removed_one_dropped(recorded: Repo) -> None:
    recorded.write("out/b/new.txt", "new\n")
    (recorded.root / "out/a/3.txt").unlink()
    os.chmod(recorded.root / "out/run.sh", 0o644)
    result, _ = build(recorded.root)
    assert_records_the_worktree(recorded, result)
    assert result.record is not None
    paths = {o.path for o in result.record.record.outputs}
    assert "out/b/new.txt" in paths and "out/a/3.txt" not in paths


def test_a_file_the_cache_vouches_for_whose_blob_is_not_stored_is_stored(
    recorded: Repo,
) -> None:
    """Hashed by an evaluation (a status, a no-op) but never stored: its row vouches for
    its blob id, which no object holds yet."""
    path = recorded.write("out/b/extra.txt", "extra\n")
    os.utime(path, ns=(OLD_NS, OLD_NS))
    project = Project.open(recorded.root)
    assert project.worktree.state("out/b/extra.txt") is not None  # hashed, not stored
    project.save()
    blob = recorded.blob("out/b/extra.txt")
    assert recorded.git("cat-file", "--batch-check", input=f"{blob}\n").split() == [
        blob,
        "missing",
    ]
    result, cache = build(recorded.root)
    assert cache.hashed == 0  # the row vouched for it: read only to be stored
    assert_records_the_worktree(recorded, result)


def test_a_new_signature_is_built_from_the_stat_cache_rows(
    recorded: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No record of the new signature to compare with: the outputs are walked once
    when stored, each file's row vouching for it or the file read."""
    recorded.write("gitcache.toml", TOML.replace('run = "sh gen.sh"', 'run = "sh ./gen.sh"'))
    edited = recorded.root / "out/a/5.txt"
    edited.write_text("a 5, edited\n")
    lstats, (result, cache) = _counting_lstats(monkeypatch, lambda: build(recorded.root))
    assert cache.hashed == 0  # the edited file is read once, to be stored
    assert {p for p in lstats if "/out/" in p} <= {str(edited)}
    assert_records_the_worktree(recorded, result)


@pytest.mark.parametrize("content", ["new\n", "a 1\n"])
def test_every_path_is_checked(recorded: Repo, content: str) -> None:
    """A new file's path, whether its blob is new or one the repository holds."""
    name = "out/a" + "\\" + "b"
    (recorded.root / name).write_text(content)
    result, _ = build(recorded.root)
    assert result.outcome == "failed"
    assert result.detail is not None and f"cannot record output {name!r}" in result.detail
