"""Many-file outputs: a restore of many absent files that fails midway, a file that
turns up meanwhile; small files stored in one read (worktree.py `_store_small`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache import worktree
from gitcache.errors import DiskFull, UnreadableFile
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, GitRepo
from gitcache.journal import JOURNAL_DIR
from gitcache.objects.loose import write_pieces
from gitcache.record import OutputFile
from gitcache.statcache import StatCache
from gitcache.worktree import Worktree
from tests.helpers import Repo, git
from tests.test_filehash import git_hash_bytes, rewriting

DIRS = 6
PER_DIR = 60


@pytest.fixture
def tree(make: Callable[..., Repo]) -> Worktree:
    repo = GitRepo.discover(make({"README": "x\n"}).root)
    return Worktree(repo, StatCache(repo.state_dir))


def content(d: int, f: int) -> bytes:
    return f"dir {d} file {f}\n".encode() * (1 + (d * PER_DIR + f) % 40)


def outputs(tree: Worktree, exec_every: int = 7) -> list[OutputFile]:
    files = []
    for d in range(DIRS):
        for f in range(PER_DIR):
            data = content(d, f)
            mode = MODE_EXEC if f % exec_every == 0 else MODE_FILE
            blob = tree.repo.write_blob(data)
            files.append(
                OutputFile(path=f"out/d{d}/f{f:03d}", blob=blob, mode=mode, size=len(data))
            )
    return files


def journals(tree: Worktree) -> list[str]:
    directory = tree.repo.worktree_state_dir / JOURNAL_DIR
    return os.listdir(directory) if directory.exists() else []


def test_a_file_that_fails_stops_the_restore_and_leaves_no_half_written_file(
    tree: Worktree, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = outputs(tree)
    calls = 0

    def failing(fd: int, pieces: list[memoryview]) -> None:
        nonlocal calls
        calls += 1
        if calls == 40:
            os.write(fd, b"half")
            raise OSError(28, "No space left on device")
        write_pieces(fd, pieces)

    monkeypatch.setattr(worktree, "write_pieces", failing)
    with pytest.raises(DiskFull, match=r"^cannot restore out/.*: No space left") as raised:
        tree.restore(files)
    assert raised.value.exit_code == 2
    written = [o for o in files if (tree.root / o.path).exists()]
    # The restore stopped there: far from all were written.
    assert 0 < len(written) < len(files) - 100
    for out in written:  # each whole and with its mode: no mode-000 file left behind
        path = tree.root / out.path
        assert stat.S_IMODE(path.lstat().st_mode) != 0
        assert git_hash_bytes(path.read_bytes()) == out.blob
    assert journals(tree) == []

    monkeypatch.setattr(worktree, "write_pieces", write_pieces)
    tree.restore([o for o in files if o not in written])  # the rest, on a second try
    assert all((tree.root / o.path).read_bytes() for o in files)


def test_a_file_put_there_meanwhile_is_replaced_through_a_temporary_file(
    tree: Worktree, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = outputs(tree)
    target = tree.root / files[100].path
    original = worktree.Worktree._write_new

    def racing(self: Worktree, out: OutputFile, *args: object, **kwargs: object) -> bool:
        if out.path == files[100].path:
            target.write_bytes(b"someone else's\n")  # appears after the plan looked
        return original(self, out, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worktree.Worktree, "_write_new", racing)
    tree.restore(files)
    assert git_hash_bytes(target.read_bytes()) == files[100].blob
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".gitcache-tmp-")]


# -- storing small files in one read ------------------------------------------------------


def store(tree: Worktree, rel: str) -> OutputFile:
    repo = tree.repo
    return tree.store_output(rel, lambda p: repo.write_blob_file(p), repo.write_blob)


def test_small_files_links_and_big_files_are_stored_as_git_stores_them(tree: Worktree) -> None:
    root = tree.root
    (root / "out").mkdir()
    (root / "out" / "small").write_bytes(b"small\n")
    (root / "out" / "empty").write_bytes(b"")
    (root / "out" / "tool").write_bytes(b"#!/bin/sh\n")
    (root / "out" / "tool").chmod(0o755)
    (root / "out" / "big").write_bytes(os.urandom(worktree._SMALL_MAX + 1))
    (root / "out" / "link").symlink_to("small")
    stored = {rel: store(tree, rel) for rel in tree.output_files("out") or []}
    tree.repo.flush_objects()
    for rel, out in stored.items():
        path = root / rel
        if path.is_symlink():
            want = git(root, "hash-object", "--stdin", input=os.readlink(path)).strip()
        else:
            want = git(root, "hash-object", rel).strip()
        assert out.blob == want, rel
        assert tree.repo.read_blob(out.blob) == (
            os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes()
        )
    assert stored["out/tool"].mode == MODE_EXEC
    assert stored["out/link"].mode == MODE_LINK
    assert stored["out/small"].mode == MODE_FILE
    assert stored["out/empty"].size == 0
    # What was stored is known by its stat: not read again.
    assert tree.cache.hashed == 0
    assert tree.state("out/small") == (stored["out/small"].blob, MODE_FILE, 6)
    assert tree.cache.hashed == 0


def test_a_fifo_among_the_outputs_is_refused_without_blocking(tree: Worktree) -> None:
    os.mkfifo(tree.root / "pipe")
    with pytest.raises(UnreadableFile, match="pipe is a fifo"):
        store(tree, "pipe")


def test_a_small_file_rewritten_while_stored_gives_a_real_state_or_one_error(
    tree: Worktree,
) -> None:
    path: Path = tree.root / "busy"
    outcomes = {"stored": 0, "refused": 0}
    with rewriting(path, 1024):  # sizes stay under _SMALL_MAX for a while
        for _ in range(30):
            try:
                out = store(tree, "busy")
            except UnreadableFile as exc:
                assert "busy" in exc.message
                outcomes["refused"] += 1
                continue
            # Never a torn read: one byte value, the size of its stat.
            assert out.blob in {git_hash_bytes(bytes([v]) * out.size) for v in range(256)}
            outcomes["stored"] += 1
    assert sum(outcomes.values()) == 30


def test_files_the_stat_cache_vouches_for_are_not_read_when_their_blobs_are_stored(
    tree: Worktree,
) -> None:
    """`-s build` re-recording a many-file output: unchanged files cost a stat, not a
    read; a changed one, one whose blob the repository lacks, or one with no row is read."""
    root, repo = tree.root, tree.repo
    (root / "out").mkdir()
    for name in ("same", "changed", "unstored", "new"):
        (root / "out" / name).write_bytes(f"{name}\n".encode())
    (root / "out" / "link").symlink_to("same")
    for rel in ("out/same", "out/changed", "out/unstored", "out/link"):
        assert tree.state(rel) is not None  # rows, as an evaluation leaves them
    for rel in ("out/same", "out/changed", "out/link"):
        store(tree, rel)
    (root / "out" / "changed").write_bytes(b"changed, a longer line\n")
    read: list[bytes] = []

    def write_bytes(data: bytes) -> str:
        read.append(data)
        return repo.write_blob(data)

    found = tree.output_stats("out")
    assert found is not None
    stored = tree.store_walked(found, lambda p: repo.write_blob_file(p), write_bytes, repo.stores)
    got = {out.path: out for out in stored}
    assert sorted(got) == ["out/changed", "out/link", "out/new", "out/same", "out/unstored"]
    assert sorted(read) == [b"changed, a longer line\n", b"new\n", b"unstored\n"]
    repo.flush_objects()
    for rel, out in got.items():
        want = (
            os.fsencode(os.readlink(root / rel)) if rel == "out/link" else (root / rel).read_bytes()
        )
        assert repo.read_blob(out.blob) == want, rel
        assert out.size == len(want)
    assert got["out/link"].mode == MODE_LINK and got["out/same"].mode == MODE_FILE


@pytest.mark.parametrize("damage", ["", "zz", "prefix", "upper", "longer"])
def test_a_damaged_stat_cache_row_gives_no_blob_id_to_a_record(tree: Worktree, damage: str) -> None:
    root, repo = tree.root, tree.repo
    (root / "f").write_bytes(b"content\n")
    assert tree.state("f") is not None
    real = store(tree, "f").blob
    # what a hand-edited or damaged cache file could hold (libgit2 finds an object by
    # its id in capitals, and its look-up takes prefixes)
    bad = {"prefix": real[:39], "upper": real.upper(), "longer": real + "0"}.get(damage, damage)
    tree.cache._fresh["f"][5] = bad
    found = tree.output_stats("f")
    assert found is not None
    (out,) = tree.store_walked(
        found, lambda p: repo.write_blob_file(p), repo.write_blob, repo.stores
    )
    assert out.blob == git(root, "hash-object", "f").strip()


def test_a_file_that_holds_what_a_record_read_from_its_tree_says_is_not_looked_up(
    tree: Worktree,
) -> None:
    """`recorded_held` (the record's blobs were found when its tree was read): a file
    holding what the record says is its OutputFile again, its blob not looked up; any
    other file as before."""
    root, repo = tree.root, tree.repo
    (root / "out").mkdir()
    for name in ("same", "changed"):
        (root / "out" / name).write_bytes(f"{name}\n".encode())
    recorded = {rel: store(tree, rel) for rel in ("out/same", "out/changed")}
    (root / "out" / "changed").write_bytes(b"changed, a longer line\n")
    assert tree.state("out/changed") is not None  # the evaluation's row
    asked: list[str] = []

    def is_stored(oid: str) -> bool:
        asked.append(oid)
        return repo.stores(oid)

    found = tree.output_stats("out")
    assert found is not None

    def walked(held: bool) -> list[OutputFile]:
        asked.clear()
        write = lambda p: repo.write_blob_file(p)  # noqa: E731
        return tree.store_walked(
            found, write, repo.write_blob, is_stored, None, recorded, None, held
        )

    changed, same = walked(True)  # sorted by path
    assert same is recorded["out/same"] and recorded["out/same"].blob not in asked
    assert changed.blob == git(root, "hash-object", "out/changed").strip() and asked
    assert walked(False) == [changed, same] and recorded["out/same"].blob in asked
