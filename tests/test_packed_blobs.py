"""Many small blobs read straight from packs (objects/reader.py PackedBlobs): the bytes
libgit2 gives, and None (libgit2 then) for what it does not read itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitcache.gitrepo import GitRepo
from gitcache.objects.reader import PackedBlobs
from tests.helpers import git


def _pack(root: Path, oids: list[str]) -> None:
    """The objects into a new pack (git pack-objects: deltas where it finds them)."""
    subprocess.run(
        ["git", "pack-objects", "-q", ".git/objects/pack/pack"],
        cwd=root,
        input="".join(f"{oid}\n" for oid in oids).encode(),
        capture_output=True,
        check=True,
    )
    git(root, "prune-packed")


def _blobs(root: Path, contents: list[bytes]) -> list[str]:
    oids = []
    for data in contents:
        done = subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=root, input=data, capture_output=True
        )
        oids.append(done.stdout.decode().strip())
    return oids


def test_whole_entries_are_read_and_deltas_left_to_libgit2(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    base = bytes(range(256)) * 40
    similar = [base + b"%d" % i for i in range(30)]  # git deltifies these
    other = [b"small %d\n" % i for i in range(30)] + [b""]
    oids = _blobs(tmp_path, similar + other)
    _pack(tmp_path, oids)
    repo = GitRepo.discover(tmp_path)
    packed = PackedBlobs(tmp_path / ".git" / "objects", oids, 1000)
    read = deltas = 0
    for oid, data in zip(oids, similar + other, strict=True):
        pieces = packed.blob(oid)
        header = packed.header(oid)
        if pieces is None:
            assert header is None  # a delta: its header holds the delta's size
            deltas += 1
            continue
        read += 1
        assert b"".join(pieces) == data == repo.read_blob(oid)
        assert header == (3, len(data))
    assert read >= 31 and deltas >= 1
    assert packed.blob("0" * 40) is None


def test_a_small_budget_reads_only_the_newest_packs(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    first = _blobs(tmp_path, [b"old %d\n" % i for i in range(10)])
    _pack(tmp_path, first)
    second = _blobs(tmp_path, [b"new %d\n" % i for i in range(10)])
    _pack(tmp_path, second)
    newer = sorted((tmp_path / ".git" / "objects" / "pack").glob("*.idx"))
    for idx in newer:  # the second pack the newer one, whatever the clock's grain
        if subprocess.run(
            ["git", "show-index"], stdin=idx.open("rb"), capture_output=True, text=True
        ).stdout.count(second[0]):
            os.utime(idx, (2e9, 2e9))
    packs = list((tmp_path / ".git" / "objects" / "pack").glob("*.idx"))
    assert len(packs) == 2
    packed = PackedBlobs(tmp_path / ".git" / "objects", first + second, 1)
    assert all(packed.blob(oid) is not None for oid in second)
    assert all(packed.blob(oid) is None for oid in first)
