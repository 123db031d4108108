"""gitread.py against real git: where libgit2 finds a repository, refs loose and
packed, loose objects (and None for what it must leave to libgit2)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import RepositoryError
from gitcache.gitread import (
    GitDirs,
    commit_tree,
    find_repository,
    read_loose,
    read_ref,
    tree_entries,
)
from gitcache.gitrepo import GitRepo
from tests.helpers import Repo


def _libgit2(start: Path) -> GitDirs | None:
    try:
        repo = GitRepo.discover(start)
    except RepositoryError:
        return None
    return GitDirs(str(repo.root), str(repo.git_dir), str(repo.common_dir))


def _same_as_libgit2(start: Path) -> GitDirs:
    found = find_repository(os.path.realpath(start))
    assert found is not None
    assert found == _libgit2(start)
    return found


def test_a_repository_is_found_where_libgit2_finds_it(make: Callable[..., Repo]) -> None:
    repo = make({"a/b/c.txt": "x\n"})
    found = _same_as_libgit2(repo.root)
    assert found.root == os.path.realpath(repo.root)
    assert not found.linked
    assert _same_as_libgit2(repo.root / "a" / "b") == found
    assert (repo.root / ".git").samefile(found.git_dir)


def test_a_linked_worktree_is_found_with_its_common_dir(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make({"a.txt": "x\n"})
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", str(linked))
    (linked / "sub").mkdir()
    found = _same_as_libgit2(linked / "sub")
    assert found.linked
    assert Path(found.common_dir).samefile(repo.root / ".git")
    assert found.root == os.path.realpath(linked)


def test_layouts_libgit2_may_see_otherwise_are_left_to_it(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make({"a.txt": "x\n"})
    # inside the git dir
    assert find_repository(os.path.realpath(repo.root / ".git" / "objects")) is None
    # core.worktree, an include, an extension, a bare repository
    for key, value in (
        ("core.worktree", str(tmp_path)),
        ("include.path", "other"),
        ("extensions.worktreeConfig", "true"),
        ("core.bare", "true"),
    ):
        repo.git("config", key, value)
        assert find_repository(os.path.realpath(repo.root)) is None, key
        repo.git("config", "--unset", key)
    assert find_repository(os.path.realpath(repo.root)) is not None
    # a symlinked .git
    elsewhere = tmp_path / "elsewhere"
    os.rename(repo.root / ".git", elsewhere)
    os.symlink(elsewhere, repo.root / ".git")
    assert find_repository(os.path.realpath(repo.root)) is None
    # a .git file that is not a linked worktree's (a submodule's has no commondir)
    os.unlink(repo.root / ".git")
    (repo.root / ".git").write_text(f"gitdir: {elsewhere}\n")
    assert find_repository(os.path.realpath(repo.root)) is None
    # no repository at all
    plain = tmp_path / "plain"
    plain.mkdir()
    if _libgit2(plain) is None:
        assert find_repository(str(plain)) is None


def test_a_dot_git_that_is_not_a_repository_is_left_to_libgit2(
    make: Callable[..., Repo],
) -> None:
    repo = make({"a.txt": "x\n"})
    inner = repo.root / "inner"
    (inner / ".git").mkdir(parents=True)  # libgit2 looks past it, to the parent
    assert find_repository(os.path.realpath(inner)) is None
    assert _libgit2(inner) == _libgit2(repo.root)


def test_refs_are_read_loose_and_packed(make: Callable[..., Repo]) -> None:
    repo = make({"a.txt": "x\n"})
    first = repo.head()
    second = repo.git("commit-tree", f"{first}^{{tree}}", "-p", first, "-m", "2").strip()
    common = os.path.realpath(repo.root / ".git")
    repo.git("update-ref", "refs/gitcache/sig/ab/one", first)
    repo.git("update-ref", "refs/gitcache/step/s", second)
    repo.git("tag", "-a", "-m", "annotated", "v1", first)  # a peeled line when packed
    assert read_ref(common, "refs/gitcache/sig/ab/one") == first
    assert read_ref(common, "refs/gitcache/step/s") == second
    repo.git("pack-refs", "--all")
    assert not (repo.root / ".git" / "refs" / "gitcache" / "step" / "s").exists()
    assert read_ref(common, "refs/gitcache/sig/ab/one") == first
    assert read_ref(common, "refs/gitcache/step/s") == second
    assert read_ref(common, "refs/tags/v1") == repo.git("rev-parse", "refs/tags/v1").strip()
    assert read_ref(common, "refs/gitcache/step") is None  # a prefix is no ref
    assert read_ref(common, "refs/gitcache/sig/ab/on") is None
    assert read_ref(common, "refs/gitcache/absent") is None
    # a loose ref written after packing wins over the packed line
    repo.git("update-ref", "refs/gitcache/step/s", first)
    assert read_ref(common, "refs/gitcache/step/s") == first
    # symbolic: left to libgit2
    repo.git("symbolic-ref", "refs/gitcache/link", "refs/heads/main")
    assert read_ref(common, "refs/gitcache/link") is None
    repo.git("update-ref", "-d", "refs/gitcache/step/s")
    assert read_ref(common, "refs/gitcache/step/s") is None


def test_loose_objects_are_read_and_checked_against_their_ids(
    make: Callable[..., Repo],
) -> None:
    repo = make({"a.txt": "hello\n", "d/b.txt": "b\n"})
    objects = os.path.realpath(repo.root / ".git" / "objects")
    commit = repo.head()
    kind, content = read_loose(objects, commit) or ("", b"")
    assert kind == "commit"
    assert content == repo.git("cat-file", "commit", commit).encode()
    tree = commit_tree(content)
    assert tree == repo.git("rev-parse", f"{commit}^{{tree}}").strip()
    found = read_loose(objects, tree)
    assert found is not None and found[0] == "tree"
    entries = tree_entries(found[1])
    assert entries is not None
    listed = {}
    for line in repo.git("ls-tree", tree).splitlines():
        meta, name = line.split("\t")
        mode, _, oid = meta.split()
        listed[name] = (int(mode, 8), oid)
    assert entries == listed
    blob = repo.blob("a.txt")
    assert read_loose(objects, blob) == ("blob", b"hello\n")
    # A file whose content is not its name's (a damaged or forged object) is refused.
    other = repo.blob("d/b.txt")
    path = Path(objects, blob[:2], blob[2:])
    os.chmod(path, 0o644)
    path.write_bytes((Path(objects, other[:2], other[2:])).read_bytes())
    assert read_loose(objects, blob) is None
    path.write_bytes(zlib.compress(b"blob 7\0hello\n"))  # size says 7, holds 6
    assert read_loose(objects, blob) is None
    path.write_bytes(b"not zlib")
    assert read_loose(objects, blob) is None
    assert read_loose(objects, "0" * 40) is None  # absent
    assert read_loose(objects, "0" * 64) is None  # SHA-256: libgit2's


def test_packed_objects_are_left_to_libgit2(make: Callable[..., Repo]) -> None:
    repo = make({"a.txt": "hello\n"})
    objects = os.path.realpath(repo.root / ".git" / "objects")
    commit = repo.head()
    assert read_loose(objects, commit) is not None
    repo.git("gc", "-q", "--prune=now")
    assert read_loose(objects, commit) is None
    assert not (repo.root / ".git" / "refs" / "heads" / "main").exists()  # packed too
    assert read_ref(os.path.realpath(repo.root / ".git"), "refs/heads/main") == commit


@pytest.mark.parametrize(
    "content",
    [b"100644 a\0" + b"x" * 19, b"100644 \0" + b"x" * 20, b"1x0644 a\0" + b"x" * 20, b"nospace"],
)
def test_a_malformed_tree_is_none(content: bytes) -> None:
    assert tree_entries(content) is None


def test_a_commit_without_a_tree_line_is_none() -> None:
    assert commit_tree(b"parent " + b"a" * 40 + b"\n") is None
    assert commit_tree(b"tree " + b"A" * 40 + b"\n") is None
