"""Worktree.restore: every check before any write, whatever the record says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import UnsafeRecord
from gitcache.gitrepo import MODE_FILE, MODE_LINK, GitRepo
from gitcache.record import OutputFile
from gitcache.statcache import StatCache
from gitcache.worktree import RestoreLimits, Worktree
from tests.helpers import Repo


@pytest.fixture
def tree(make: Callable[..., Repo]) -> Worktree:
    repo = GitRepo.discover(make({"README": "x\n"}).root)
    return Worktree(repo, StatCache(repo.state_dir))


def out(tree: Worktree, path: str, data: bytes, mode: int = MODE_FILE) -> OutputFile:
    # model_construct skips validation: restore must hold even if a check upstream is missed
    blob = tree.repo.write_blob(data)
    return OutputFile.model_construct(path=path, blob=blob, mode=mode, size=len(data))


def refused(tree: Worktree, files: list[OutputFile], message: str) -> None:
    before = sorted(p.name for p in tree.root.iterdir())
    with pytest.raises(UnsafeRecord, match=message):
        tree.restore(files)
    assert sorted(p.name for p in tree.root.iterdir()) == before  # nothing written at all


def test_a_good_batch_is_written(tree: Worktree) -> None:
    tree.restore([out(tree, "out/a.txt", b"a"), out(tree, "out/link", b"a.txt", MODE_LINK)])
    assert (tree.root / "out/link").read_text() == "a"


@pytest.mark.parametrize("path", ["../evil", "/tmp/evil", "out/../../evil", ".git/config", ".Git"])
def test_unsafe_paths(tree: Worktree, path: str) -> None:
    refused(tree, [out(tree, "out/fine", b"x"), out(tree, path, b"x")], "refusing to restore")


def test_a_symlinked_directory_in_the_worktree_is_not_written_through(
    tree: Worktree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree.root / "out").symlink_to(outside)
    refused(tree, [out(tree, "out/data.txt", b"x")], "out is a symlink")
    assert not list(outside.iterdir())


def test_an_output_under_another_output(tree: Worktree) -> None:
    files = [out(tree, "out/d", b"..", MODE_LINK), out(tree, "out/d/evil", b"x")]
    refused(tree, files, "out/d is also an output")


def test_the_same_path_twice(tree: Worktree) -> None:
    refused(tree, [out(tree, "a", b"1"), out(tree, "a", b"2")], "named twice")


def test_symlink_chains_that_leave_the_worktree(tree: Worktree, tmp_path: Path) -> None:
    (tree.root / "escape").symlink_to(tmp_path)
    refused(tree, [out(tree, "out/link", b"../escape", MODE_LINK)], "leads out of the worktree")
    refused(tree, [out(tree, "link", b"/etc/passwd", MODE_LINK)], "leaves the worktree")
    refused(tree, [out(tree, "link", b"sub/../.git/hooks", MODE_LINK)], "symlink into .git")


def test_missing_blob_and_wrong_size(tree: Worktree) -> None:
    ghost = OutputFile.model_construct(path="a", blob="1" * 40, mode=MODE_FILE, size=1)
    refused(tree, [ghost], "is missing")
    liar = out(tree, "a", b"abc").model_copy(update={"size": 2})
    refused(tree, [liar], "has 3 bytes, the record says 2")


def test_limits(tree: Worktree) -> None:
    tree.limits = RestoreLimits(max_files=2, max_bytes=10)
    refused(tree, [out(tree, f"f{n}", b"x") for n in range(3)], "restore.max_files = 2")
    refused(tree, [out(tree, "big", b"x" * 11)], "11 bytes: more than restore.max_bytes = 10")
    tree.restore([out(tree, "ok", b"x" * 10)])
