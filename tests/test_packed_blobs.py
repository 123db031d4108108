"""Many small blobs read straight from packs (objects/reader.py PackedBlobs): the bytes
libgit2 gives, and None (libgit2 then) for what it does not read itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from gitcache.gitrepo import GitRepo
from gitcache.objects.reader import PackedBlobs, packed_sizes
from tests.helpers import Repo, git


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


def test_sizes_are_those_of_the_entry_headers_and_of_libgit2(tmp_path: Path) -> None:
    """packed_sizes: a whole blob entry's size (headers of one, two and three bytes and
    more), None for a delta, a tree, an id in no pack; GitRepo.blob_sizes asks libgit2
    for those, and gives None for what is missing or no blob."""
    git(tmp_path, "init", "-q")
    base = bytes(range(256)) * 40
    contents = [b"", b"x" * 15, b"y" * 16, b"z" * 2047, b"w" * 2048, b"v" * 300_000]
    contents += [base + b"%d" % i for i in range(30)]  # git deltifies these
    contents += [b"small %d\n" % i for i in range(40)]  # blob_sizes reads packs from 64 on
    oids = _blobs(tmp_path, contents)
    tree = git(tmp_path, "write-tree").strip()  # the empty tree
    _pack(tmp_path, [*oids, tree])
    wanted = [*oids, tree, "0" * 40]
    sizes = packed_sizes(tmp_path / ".git" / "objects", wanted, 1000)
    packed = PackedBlobs(tmp_path / ".git" / "objects", wanted, 1000)
    headers = [packed.header(oid) for oid in wanted]
    assert sizes == [None if h is None or h[0] != 3 else h[1] for h in headers]
    assert sizes[:6] == [len(c) for c in contents[:6]] and sizes[-2:] == [None, None]
    assert None in sizes[6:36]  # a delta
    repo = GitRepo.discover(tmp_path)
    assert repo.blob_sizes(wanted) == [*map(len, contents), None, None]


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


GEN_TOML = """\
[steps.many]
outputs = ["out"]
run = "mkdir -p out && for i in $(seq 100 199); do echo file $i > out/f$i.txt; done"
"""


def test_a_pack_entry_that_is_not_the_blob_is_refused_before_its_file_is_made(
    make: Callable[..., Repo],
) -> None:
    """Two entries' offsets swapped in the pack index (same size: the size check passes):
    the bytes read for one blob are the other's, so the restore refuses that file and
    nothing is made at its path."""
    repo = make({"gitcache.toml": GEN_TOML, ".gitignore": "out/\n"})
    assert repo.process("run").returncode == 0
    first, second = (
        repo.git("rev-parse", f"refs/gitcache/step/many:outputs/out/f{i}.txt").strip()
        for i in (150, 151)
    )
    (idx,) = (repo.root / ".git" / "objects" / "pack").glob("*.idx")
    data = bytearray(idx.read_bytes())
    count = int.from_bytes(data[1028:1032], "big")
    names = [bytes(data[1032 + 20 * i : 1052 + 20 * i]).hex() for i in range(count)]
    a, b = names.index(first), names.index(second)
    at = 1032 + 24 * count
    slot_a, slot_b = slice(at + 4 * a, at + 4 * a + 4), slice(at + 4 * b, at + 4 * b + 4)
    data[slot_a], data[slot_b] = data[slot_b], data[slot_a]
    idx.chmod(0o644)
    idx.write_bytes(bytes(data))
    shutil.rmtree(repo.root / "out")
    done = repo.process("restore", "many")
    assert done.returncode != 0
    assert "refusing to restore out/f150.txt" in done.stderr, done.stderr
    assert not (repo.root / "out" / "f150.txt").exists()
    assert not list((repo.root / ".git" / "gitcache" / "restoring").iterdir())
