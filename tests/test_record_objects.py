"""Trees and commits written by gitcache's object writer: what libgit2 writes, in packs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pygit2
import pytest

from gitcache.errors import RepositoryError
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, GitRepo, RefUpdate, TreeEntry
from gitcache.locks import (
    LockSpares,
    remove_unheld_signature_locks,
    signature_lock,
    signature_lock_path,
)
from tests.helpers import make_repo


def _libgit2_tree(repo: pygit2.Repository, entries: list[TreeEntry]) -> str:
    """The same nested tree built with libgit2's TreeBuilder (the reference)."""
    nested: dict[str, object] = {}
    for entry in entries:
        node = nested
        *dirs, name = entry.path.split("/")
        for part in dirs:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[name] = entry

    def write(node: dict[str, object]) -> pygit2.Oid:
        builder = repo.TreeBuilder()
        for name, value in node.items():
            if isinstance(value, TreeEntry):
                builder.insert(name, pygit2.Oid(hex=value.oid), value.mode)
            else:
                builder.insert(name, write(value), pygit2.enums.FileMode.TREE)  # type: ignore[arg-type]
        return builder.write()

    return str(write(nested))


def test_trees_are_the_ones_libgit2_writes_and_commits_pass_fsck(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    gr = GitRepo.discover(repo.root)
    blob = gr.write_blob(b"x\n")
    # git sorts a subtree as if its name ended in "/": "a.b" < "a/" < "a0" < "a"-file order
    paths = ["a.b", "a/x", "a0", "a-/y", "b", "\u00fc/n", "outputs/a b/c", "z.txt"]
    modes = [MODE_FILE, MODE_EXEC, MODE_LINK]
    entries = [TreeEntry(p, blob, modes[i % 3]) for i, p in enumerate(paths)]
    tree = gr.write_tree(entries)
    assert tree == _libgit2_tree(pygit2.Repository(str(repo.root)), entries)
    commit = gr.write_commit(tree, [repo.head()], "gitcache record: s 0123456789ab\n")
    gr.update_refs([RefUpdate("refs/gitcache/step/s", commit)])
    assert repo.git("cat-file", "-t", commit).strip() == "commit"
    shown = repo.git("cat-file", "-p", commit)
    assert shown.startswith(f"tree {tree}\nparent {repo.head()}\nauthor ")
    assert shown.endswith("\n\ngitcache record: s 0123456789ab\n")
    assert repo.git("fsck", "--strict", "--no-progress") == ""


@pytest.mark.parametrize("name", ["", ".", "..", ".git", ".GIT", "a\0b"])
def test_a_tree_entry_git_would_refuse_is_refused(tmp_path: Path, name: str) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    gr = GitRepo.discover(repo.root)
    blob = gr.write_blob(b"x\n")
    with pytest.raises(RepositoryError, match="invalid tree entry name"):
        gr.write_tree([TreeEntry(f"outputs/{name}", blob, MODE_FILE)])


def test_a_records_objects_wait_for_its_refs_then_go_as_one_pack(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    gr = GitRepo.discover(repo.root)
    objects = repo.root / ".git" / "objects"
    before = {p for p in objects.glob("??/*")}
    commits = []
    for n in range(20):  # about a hundred objects: blobs, trees, commits
        blob = gr.write_blob(f"output {n}\n".encode())
        record = gr.write_blob(f'{{"n": {n}}}'.encode())
        tree = gr.write_tree(
            [
                TreeEntry("record.json", record, MODE_FILE),
                TreeEntry(f"outputs/o/{n}", blob, 0o100644),
            ]
        )
        commits.append(gr.write_commit(tree, [repo.head()], f"record {n}\n", publish=False))
    assert not list((objects / "pack").glob("pack-*.idx"))  # nothing published yet
    names = [f"refs/gitcache/item/s/{n:016x}" for n in range(20)]
    gr.update_refs([RefUpdate(n, c, None) for n, c in zip(names, commits, strict=True)])
    packs = list((objects / "pack").glob("pack-*.idx"))
    assert len(packs) == 1
    assert {p for p in objects.glob("??/*")} == before  # no loose object for any of it
    assert repo.git("verify-pack", str(packs[0])) == ""
    assert repo.git("fsck", "--strict", "--no-progress") == ""
    assert repo.git("show", f"{names[7]}:outputs/o/7") == "output 7\n"


def test_reading_a_commit_not_yet_published_publishes_it_first(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    gr = GitRepo.discover(repo.root)
    tree = gr.write_tree([TreeEntry("f", gr.write_blob(b"f\n"), MODE_FILE)])
    commit = gr.write_commit(tree, [], "m\n", publish=False)
    assert not GitRepo.discover(repo.root).has_object(commit)  # waits in our writer
    assert gr.commit_tree(commit) == tree
    assert gr.tree_entry(tree, "f") is not None
    assert GitRepo.discover(repo.root).has_object(commit)  # published by that read
    other = gr.write_commit(tree, [commit], "n\n")  # published when written
    assert GitRepo.discover(repo.root).has_object(other)


def test_released_lock_files_lock_the_next_signatures(tmp_path: Path) -> None:
    state = tmp_path / "state"
    spares = LockSpares(tmp_path / "state" / "spares")
    spares.directory.mkdir(parents=True)
    first, second = "a" * 64, "b" * 64
    with signature_lock(state, first, lambda _: None, spares):
        inode = os.stat(signature_lock_path(state, first)).st_ino
    assert not signature_lock_path(state, first).exists()  # moved to the spares
    with signature_lock(state, second, lambda _: None, spares):
        assert os.stat(signature_lock_path(state, second)).st_ino == inode  # no new file
        # the first signature is free again, on a file of its own
        with signature_lock(state, first, lambda _: None):
            assert os.stat(signature_lock_path(state, first)).st_ino != inode
    assert remove_unheld_signature_locks(state) == 1  # the first's; spares are not locks


def test_a_process_waiting_for_a_recycled_lock_file_takes_the_lock_again(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    spares = LockSpares(tmp_path / "spares")
    spares.directory.mkdir()
    sig, other = "c" * 64, "d" * 64
    got = threading.Event()
    release = threading.Event()

    def waiter() -> None:
        with signature_lock(state, sig, lambda _: None):  # opens the file held below
            got.set()
            release.wait(10)

    with signature_lock(state, sig, lambda _: None, spares):
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not got.wait(0.3)  # it waits for us
    assert got.wait(10)  # our file went to the spares: it locked the path's new file
    with signature_lock(state, other, lambda _: None, spares):  # the recycled file
        assert signature_lock_path(state, sig).exists()  # both held at once
    release.set()
    thread.join(10)


def test_discarding_back_to_a_mark_keeps_what_came_before(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    gr = GitRepo.discover(repo.root)
    kept = [gr.write_blob(f"kept {n}\n".encode()) for n in range(70)]  # a pack is open
    mark = gr.objects_mark()
    dropped = [gr.write_blob(f"dropped {n}\n".encode() * 50) for n in range(5)]
    gr.discard_objects(mark)
    few = make_repo(tmp_path / "few", {"a.txt": "a\n"})
    small = GitRepo.discover(few.root)
    loose_kept = small.write_blob(b"kept\n")  # a few wait, no pack yet
    small_mark = small.objects_mark()
    loose_dropped = small.write_blob(b"dropped\n")
    small.discard_objects(small_mark)
    gr.flush_objects()
    small.flush_objects()
    packs = list((repo.root / ".git/objects/pack").glob("pack-*.idx"))
    assert len(packs) == 1 and repo.git("verify-pack", str(packs[0])) == ""
    assert all(gr.has_object(oid) for oid in kept)
    assert not any(gr.has_object(oid) for oid in dropped)
    assert small.has_object(loose_kept) and not small.has_object(loose_dropped)
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
