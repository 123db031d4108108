"""gitcache/objects/: deflate, loose and pack writers, the streaming file store.

Everything written is read back by the real git (`git cat-file`, `git fsck`,
`git verify-pack`) and by libgit2 in the same process.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitcache.gitrepo import GitRepo
from gitcache.objects import deflate
from gitcache.objects.chunking import CHUNK_THRESHOLD, MAX_CHUNK, MIN_CHUNK
from gitcache.objects.loose import object_path, write_loose
from gitcache.objects.pack import PackWriter
from gitcache.objects.stream import blob_id, store_buffer, store_path
from gitcache.objects.writer import PACK_MIN
from tests.helpers import git


def _repo(path: Path) -> GitRepo:
    git(path.parent, "init", "-q", "-b", "main", path.name)
    return GitRepo.discover(path)


def _cat(root: Path, oid: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", oid], cwd=root, capture_output=True, check=True
    ).stdout


def _hash_object(root: Path, path: Path) -> str:
    return git(root, "hash-object", "--no-filters", str(path)).strip()


def _fsck(root: Path) -> None:
    done = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stderr and "missing" not in done.stdout, done.stdout


def _random(seed: int, size: int) -> bytes:
    """Reproducible bytes that do not compress."""
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    stream = hashlib.shake_256(block)
    out += stream.digest(size)
    return bytes(out)


# -- deflate ---------------------------------------------------------------------------------


def test_deflate_stores_what_does_not_compress_and_compresses_the_rest() -> None:
    noise = os.urandom(200_000)
    text = b"".join(b"line %d of text\n" % i for i in range(20_000))
    assert not deflate.compresses(noise)
    assert deflate.compresses(text)
    for data in (noise, text, b"", b"x"):
        stream = b"".join(deflate.deflate([b"blob 1\0", data], data))
        assert zlib.decompress(stream) == b"blob 1\0" + data
    stored = b"".join(deflate.deflate([noise], noise))
    packed = b"".join(deflate.deflate([text], text))
    assert len(stored) < len(noise) * 1.01  # stored blocks: a few bytes per 64 KiB
    assert len(packed) < len(text) / 3


# -- loose objects ---------------------------------------------------------------------------


def test_loose_object_is_read_by_git_read_only_and_not_rewritten(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    data = b"hello loose\n" * 1000
    oid = blob_id(data)
    objects = repo.common_dir / "objects"
    write_loose(objects, oid, "blob", data)
    path = object_path(objects, oid)
    assert _cat(repo.root, oid) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    before = path.stat().st_mtime_ns, path.stat().st_ino
    write_loose(objects, oid, "blob", data)  # present: left alone
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith("tmp_obj_")]
    (tmp_path / "f").write_bytes(data)
    assert _hash_object(repo.root, tmp_path / "f") == oid
    _fsck(repo.root)


def test_linked_worktree_writes_into_the_common_objects(tmp_path: Path) -> None:
    main = tmp_path / "main"
    git(tmp_path, "init", "-q", "-b", "main", "main")
    git(main, "commit", "-q", "--allow-empty", "-m", "c")
    git(main, "worktree", "add", "-q", str(tmp_path / "linked"))
    linked = GitRepo.discover(tmp_path / "linked")
    oid = linked.write_blob(b"from the linked worktree\n")
    linked.flush_objects()
    assert object_path(main / ".git" / "objects", oid).exists()
    assert _cat(main, oid) == b"from the linked worktree\n"


# -- packs -----------------------------------------------------------------------------------


def test_pack_is_accepted_by_verify_pack_and_fsck(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    pack = PackWriter(repo.common_dir / "objects" / "pack")
    blobs = [b"object %d\n" % i * (i % 7 + 1) for i in range(300)] + [b"", os.urandom(70_000)]
    for data in blobs:
        pack.add(blob_id(data), "blob", data)
    pack.add(blob_id(blobs[0]), "blob", blobs[0])  # twice: once in the pack
    index = pack.finish()
    assert index is not None and index.exists() and index.with_suffix(".pack").exists()
    done = subprocess.run(
        ["git", "verify-pack", "-v", str(index)], cwd=repo.root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"non delta: {len(blobs)} objects" in done.stdout
    for data in blobs[::37]:
        assert _cat(repo.root, blob_id(data)) == data
    assert not [p for p in index.parent.iterdir() if p.name.startswith("tmp_")]
    _fsck(repo.root)


def test_many_small_blobs_make_one_pack_that_libgit2_reads_at_once(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    datas = [b"small %d\n" % i for i in range(PACK_MIN + 10)]
    ids = [repo.write_blob(d) for d in datas]
    repo.flush_objects()
    packs = list((repo.common_dir / "objects" / "pack").glob("pack-*.idx"))
    assert len(packs) == 1
    loose = [p for p in (repo.common_dir / "objects").glob("??/*")]
    assert loose == []
    assert [repo.read_blob(oid) for oid in ids] == datas  # same process, same GitRepo
    assert repo.read_header(ids[3]) == ("blob", len(datas[3]))
    _fsck(repo.root)


def test_a_few_small_blobs_are_written_loose(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    ids = [repo.write_blob(b"few %d\n" % i) for i in range(PACK_MIN - 1)]
    repo.flush_objects()
    assert not list((repo.common_dir / "objects" / "pack").glob("pack-*"))
    assert all(object_path(repo.common_dir / "objects", oid).exists() for oid in ids)


def test_a_blob_the_repository_has_is_not_written_again(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    (repo.root / "f").write_bytes(b"known\n")
    oid = git(repo.root, "hash-object", "-w", "f").strip()
    git(repo.root, "add", "f")
    git(repo.root, "commit", "-q", "-m", "c")
    git(repo.root, "gc", "-q")  # now packed by git
    assert repo.write_blob(b"known\n") == oid
    repo.flush_objects()
    assert not object_path(repo.common_dir / "objects", oid).exists()


def test_discarded_blobs_leave_no_temporary_pack(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    for i in range(PACK_MIN + 1):
        repo.write_blob(b"dropped %d\n" % i)
    repo.pack_waiting_objects()  # as a sweep does while its next command runs
    assert [p for p in (repo.common_dir / "objects" / "pack").iterdir()]  # tmp_pack_*
    repo.discard_objects()
    assert list((repo.common_dir / "objects" / "pack").iterdir()) == []


@pytest.mark.parametrize("packed_before_mark", [True, False])
@pytest.mark.parametrize("packed_after_mark", [True, False])
def test_discarding_from_a_mark_keeps_exactly_the_objects_before_it(
    tmp_path: Path, packed_before_mark: bool, packed_after_mark: bool
) -> None:
    """Objects wait deflated in the pack or not yet: a mark counts both, in order, and
    a discard drops only what came after it (a failed sweep item's objects)."""
    repo = _repo(tmp_path / "r")
    kept = [repo.write_blob(b"kept %d\n" % i) for i in range(PACK_MIN + 3)]
    if packed_before_mark:
        repo.pack_waiting_objects()
    mark = repo.objects_mark()
    dropped = [repo.write_blob(b"dropped %d\n" % i) for i in range(5)]
    if packed_after_mark:
        repo.pack_waiting_objects()
    repo.discard_objects(mark)
    later = repo.write_blob(b"later\n")
    repo.flush_objects()
    assert all(repo.has_object(oid) for oid in [*kept, later])
    assert not any(repo.has_object(oid) for oid in dropped)
    _fsck(repo.root)


# -- the streaming file store ------------------------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    offset=st.integers(-3 * 2**20, 6 * 2**20) | st.sampled_from([-1, 0, 1]),
)
def test_stored_files_read_back_equal_with_git_ids(
    tmp_path_factory: pytest.TempPathFactory, seed: int, offset: int
) -> None:
    """Random bytes of random sizes around the chunk threshold: `git hash-object`'s id,
    chunks of bounded size that git reads back equal, and the same from memory."""
    root = tmp_path_factory.mktemp("stream")
    repo = _repo(root / "r")
    data = _random(seed, CHUNK_THRESHOLD + offset)
    source = root / "file.bin"
    source.write_bytes(data)
    stored = repo.write_blob_file(source)
    repo.flush_objects()
    assert stored.oid == _hash_object(repo.root, source)
    assert stored.size == len(data)
    if len(data) <= CHUNK_THRESHOLD:
        assert stored.chunks is None
        assert _cat(repo.root, stored.oid) == data
    else:
        assert stored.chunks is not None and len(stored.chunks) >= 2
        pieces = [_cat(repo.root, oid) for oid in stored.chunks]
        assert b"".join(pieces) == data
        assert all(len(p) <= MAX_CHUNK for p in pieces)
        assert all(len(p) >= MIN_CHUNK for p in pieces[:-1])
        assert [repo.read_blob(oid) for oid in stored.chunks] == pieces
        assert repo.chunks_of(stored.oid) == stored.chunks
    again = store_buffer(data, lambda _oid, _content: None)
    assert again == stored


def _shaped(seed: int, size: int) -> bytes:
    """Runs of random bytes and of one repeated byte (no cut point in those: chunks of
    MAX_CHUNK, so cuts fall anywhere relative to a window's end)."""
    out = bytearray()
    rng = random.Random(seed)
    while len(out) < size:
        if rng.random() < 0.5:
            out += _random(rng.randrange(2**32), rng.randint(1, 3 * 2**20))
        else:
            out += bytes([rng.randrange(256)]) * rng.randint(1, 12 * 2**20)
    return bytes(out[:size])


@pytest.mark.parametrize(
    ("seed", "size"),
    [
        (0, 50 * 2**20),
        (1, CHUNK_THRESHOLD + 1),
        (2, 3 * CHUNK_THRESHOLD),
        (3, 41_234_567),
        (4, 5 * CHUNK_THRESHOLD + 12_345),
        (-1, 40 * 2**20 + 3),  # MAX_CHUNK chunks ending right at the windows' ends
    ],
)
def test_chunks_cut_in_windows_are_the_ones_pyfastcdc_cuts_from_a_stream(
    tmp_path: Path, seed: int, size: int
) -> None:
    """A file is cut in place in two windows taken in turn (stream.py): every cut must
    see what pyfastcdc's cut_stream gives it, so the chunks (and chunk ids) are the same."""
    from pyfastcdc import FastCDC

    from gitcache.objects.chunking import AVG_CHUNK, NORMALIZATION

    if seed == -1:  # no cut point in the first 32 MiB: four chunks of MAX_CHUNK
        data = bytes(32 * 2**20) + _random(9, size - 32 * 2**20)
    else:
        data = _random(seed, size) if seed == 0 else _shaped(seed, size)
    path = tmp_path / "f"
    path.write_bytes(data)
    cdc = FastCDC(
        AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK, normalized_chunking=NORMALIZATION
    )
    with open(path, "rb") as handle:
        expected = [blob_id(bytes(c.data)) for c in cdc.cut_stream(handle)]
    written: dict[str, bytes] = {}

    def put(oid: str, content: object) -> None:
        written[oid] = bytes(content)  # type: ignore[call-overload]

    stored = store_path(path, put)
    assert stored.chunks == tuple(expected)
    assert stored.oid == blob_id(data)
    assert b"".join(written[oid] for oid in stored.chunks) == data
    assert any(len(written[oid]) == MAX_CHUNK for oid in stored.chunks) or seed == 0
    assert all(len(written[oid]) <= MAX_CHUNK for oid in stored.chunks)


def test_an_edit_in_the_middle_changes_only_nearby_chunks(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    data = bytearray(_random(7, 60 * 2**20))
    (tmp_path / "a").write_bytes(data)
    data[30 * 2**20 : 30 * 2**20 + 2**20] = _random(8, 2**20)
    (tmp_path / "b").write_bytes(data)
    a = repo.write_blob_file(tmp_path / "a").chunks
    b = repo.write_blob_file(tmp_path / "b").chunks
    assert a is not None and b is not None
    assert len(set(b) - set(a)) <= 3
    assert len(set(a) & set(b)) >= len(a) - 3


def test_a_file_that_changes_size_while_read_is_read_again(tmp_path: Path) -> None:
    from gitcache.objects.stream import FileChanged, store_fd

    path = tmp_path / "f"
    path.write_bytes(b"12345")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(FileChanged):
            store_fd(fd, 3, lambda _oid, _content: None)  # fstat said 3, the file holds 5
    finally:
        os.close(fd)


def test_a_corrupt_object_is_refused_on_read(tmp_path: Path) -> None:
    """Reads skip libgit2's slow id check for hashlib's: a corrupt blob still fails."""
    from gitcache.errors import RepositoryError

    repo = _repo(tmp_path / "r")
    oid = repo.write_blob(b"the real content\n")
    repo.flush_objects()
    path = object_path(repo.common_dir / "objects", oid)
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob 17\0the fake content\n"))
    with pytest.raises(RepositoryError, match="is corrupt"):
        repo.read_blob(oid)
    assert repo.blob_view(oid, verified=False).nbytes == 17  # the caller checks it


def test_a_temporary_pack_of_a_killed_process_goes_when_the_next_pack_is_written(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path / "r")
    pack_dir = repo.common_dir / "objects" / "pack"
    pack_dir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no process has now
    stale = pack_dir / f"tmp_pack_gitcache-{dead.pid}-abc"
    live = pack_dir / f"tmp_pack_gitcache-{os.getppid()}-abc"  # pytest's parent: alive
    for path in (stale, live):
        path.write_bytes(b"PACK")
    for i in range(PACK_MIN):
        repo.write_blob(b"again %d\n" % i)
    repo.flush_objects()
    assert not stale.exists() and live.exists()


def test_an_unfinished_pack_dropped_or_left_at_exit_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    import gc
    import sys

    pack_dir = tmp_path / "pack"
    writer = PackWriter(pack_dir)
    writer.add(blob_id(b"x"), "blob", b"x")
    assert len(list(pack_dir.iterdir())) == 1
    del writer
    gc.collect()
    assert list(pack_dir.iterdir()) == []
    script = (
        "import sys; from pathlib import Path; from gitcache.objects.pack import PackWriter; "
        "w = PackWriter(Path(sys.argv[1])); w.add('0' * 40, 'blob', b'x'); sys.exit(0)"
    )
    from tests.helpers import gitcache_env

    subprocess.run([sys.executable, "-c", script, str(pack_dir)], env=gitcache_env(), check=True)
    assert list(pack_dir.iterdir()) == []


def test_loose_blobs_are_read_from_the_mapped_or_inflated_object_and_others_left_to_libgit2(
    tmp_path: Path,
) -> None:
    from gitcache.objects.reader import loose_blob

    repo = _repo(tmp_path / "r")
    objects = repo.common_dir / "objects"
    noise = os.urandom(300_000)  # does not compress: stored blocks
    text = b"compressible text\n" * 20_000
    empty = b""
    for data in (noise, text, empty):
        write_loose(objects, blob_id(data), "blob", data)
    pieces = loose_blob(objects, blob_id(noise))
    assert pieces is not None and b"".join(pieces) == noise == repo.read_blob(blob_id(noise))
    assert b"".join(loose_blob(objects, blob_id(text)) or [b"x"]) == text  # inflated by isal
    assert b"".join(repo.blob_pieces(blob_id(text))) == text
    assert b"".join(loose_blob(objects, blob_id(empty)) or []) == b""
    (tmp_path / "g").write_bytes(text[:5000] + b"by git")  # zlib's default level
    by_git = git(repo.root, "hash-object", "-w", str(tmp_path / "g")).strip()
    assert b"".join(loose_blob(objects, by_git) or [b"x"]) == text[:5000] + b"by git"
    (tmp_path / "n").write_bytes(noise[:5000])  # git's zlib stores this one too
    by_git = git(repo.root, "hash-object", "-w", str(tmp_path / "n")).strip()
    assert b"".join(loose_blob(objects, by_git) or [b"x"]) == noise[:5000]
    assert loose_blob(objects, "0" * 40) is None  # absent
    for data in (noise, text):  # a truncated object: libgit2 reads it (and says what is wrong)
        path = object_path(objects, blob_id(data))
        cut = path.read_bytes()[: len(path.read_bytes()) // 2]
        path.chmod(0o644)
        path.write_bytes(cut)
        assert loose_blob(objects, blob_id(data)) is None
    tree = repo.write_tree([])  # not a blob: left to libgit2
    assert loose_blob(objects, tree) is None


def test_a_loose_object_longer_than_its_header_says_is_not_inflated_in_full(
    tmp_path: Path,
) -> None:
    import zlib

    from gitcache.objects.reader import loose_blob

    repo = _repo(tmp_path / "r")
    objects = repo.common_dir / "objects"
    oid = "ab" + "0" * 38
    path = object_path(objects, oid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zlib.compress(b"blob 5\0" + b"x" * 10_000_000))  # says 5 bytes
    assert loose_blob(objects, oid) is None  # left to libgit2, which refuses it
    path.write_bytes(zlib.compress(b"blob 5\0hello"))
    assert b"".join(loose_blob(objects, oid) or [b"?"]) == b"hello"


def test_a_chunk_write_that_fails_stops_the_store_with_its_error(tmp_path: Path) -> None:
    """A writing thread's error (a full disk) reaches the caller: the reading thread,
    which may be waiting for a window the failed chunk belongs to, does not hang."""
    import errno
    import threading

    path = tmp_path / "f"
    path.write_bytes(_random(11, 80 * 2**20))
    calls = 0
    lock = threading.Lock()

    def put(_oid: str, _content: object) -> None:
        nonlocal calls
        with lock:
            calls += 1
            if calls >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as raised:
        store_path(path, put)
    assert raised.value.errno == errno.ENOSPC
    assert calls < 32  # it stopped: 80 MB is ~32 chunks
