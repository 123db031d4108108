"""Reading a file as a blob while something writes it: the blob of one state, or one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gitcache.errors import UnreadableFile
from gitcache.filehash import BLOCK, TRIES, hash_file, read_stable
from gitcache.gitrepo import GitRepo
from gitcache.statcache import StatCache
from gitcache.worktree import Worktree
from tests.helpers import Repo


def git_blob(path: Path) -> str:
    done = subprocess.run(
        ["git", "hash-object", "--no-filters", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 7])
def test_blob_ids_are_gits(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(size))
    oid, st = hash_file(path, "f")
    assert oid == git_blob(path) and st.st_size == size


def test_a_followed_link_counts_by_its_target(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"content\n")
    (tmp_path / "link").symlink_to("target")
    assert hash_file(tmp_path / "link", "link")[0] == git_blob(tmp_path / "target")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnreadableFile, match="pipe is a fifo; gitcache reads only regular"):
        hash_file(tmp_path / "pipe", "pipe")


def test_a_file_that_vanishes_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="gone disappeared while gitcache read it"):
        hash_file(tmp_path / "gone", "gone")


WRITER = """
import sys
path, base = sys.argv[1], int(sys.argv[2])
n = 0
while True:
    n += 1
    with open(path, "wb") as handle:  # truncated, then written: a size never seen before
        handle.write(bytes([n % 256]) * (base + n))
"""


@contextmanager
def rewriting(path: Path, base: int) -> Iterator[None]:
    """Another process truncates the file and writes it again, over and over: write n
    holds `base + n` bytes of value n % 256."""
    path.write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(base)])
    try:
        while path.stat().st_size == 0:
            time.sleep(0.001)
        yield
    finally:
        writer.kill()
        writer.wait()


def git_hash_bytes(data: bytes) -> str:
    return GitRepo.hash_bytes(data)


def test_a_file_that_keeps_changing_is_one_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "busy"
    path.write_bytes(b"x")

    def read_and_change(p: Path) -> bytes:
        data = p.read_bytes()
        with open(p, "ab") as handle:  # whatever reads it, it has changed by then
            handle.write(b"x")
        return data

    with pytest.raises(UnreadableFile) as caught:
        read_stable(path, "data/busy", read_and_change)
    assert caught.value.message == "data/busy keeps changing while gitcache reads it"
    assert path.stat().st_size == 1 + TRIES


SHORTER = Path("/sys/devices/system/cpu/online")  # sysfs: says 4096 bytes, holds a few


@pytest.mark.skipif(not SHORTER.exists(), reason="needs Linux sysfs")
def test_a_file_shorter_than_its_stat_is_one_typed_error_not_an_os_error() -> None:
    # What libgit2 met when a file shrank while it read it: `OSError('error reading file
    # for hashing: ')` became an internal error. Here the file never matches its size.
    with pytest.raises(UnreadableFile, match="online keeps changing while gitcache reads it"):
        GitRepo.hash_file(SHORTER)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_file_whose_bytes_never_match_its_size_is_one_typed_error() -> None:
    # /proc files say size 0 and give more: never a consistent read.
    with pytest.raises(UnreadableFile, match="keeps changing while gitcache reads it"):
        hash_file(Path("/proc/self/status"), "/proc/self/status")


def test_a_fifo_among_the_inputs_is_one_line_not_a_hang(make: Callable[..., Repo]) -> None:
    toml = '[steps.s]\ninputs = ["data"]\noutputs = ["out"]\nrun = "ls data > out"\n'
    repo = make({"gitcache.toml": toml, "data/a": "a\n"})
    os.mkfifo(repo.root / "data" / "pipe")
    done = repo.process("run", timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        "gitcache: error: data/pipe is a fifo; gitcache reads only regular files and symlinks "
        "(move it out of the step's inputs and outputs)\n"
    )


def test_an_output_that_is_a_fifo_fails_its_step_and_keep_going_runs_the_others(
    make: Callable[..., Repo],
) -> None:
    """A fifo the command made where its output goes cannot be recorded: that step fails
    (exit 1, no record), and `-k` still runs and records the steps that do not need it."""
    toml = (
        '[steps.pipe]\noutputs = ["o/pipe"]\nrun = "mkfifo {outputs}"\n\n'
        '[steps.plain]\noutputs = ["o/plain.txt"]\nrun = "echo hi > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "/o/\n"})
    done = repo.process("run", "-k", timeout=30)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "gitcache: error: step 'pipe' failed: o/pipe is a fifo; gitcache reads only "
        "regular files and symlinks"
    )
    assert "Traceback" not in done.stderr
    refs = repo.refs()
    assert "refs/gitcache/step/plain" in refs and "refs/gitcache/step/pipe" not in refs


def test_hashing_while_another_process_rewrites_gives_a_real_state_or_one_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy"
    outcomes = {"hashed": 0, "refused": 0}
    with rewriting(path, 64 * 1024):
        for _ in range(20):
            try:
                oid, st = hash_file(path, "busy")
            except UnreadableFile as exc:
                assert exc.message in (
                    "busy keeps changing while gitcache reads it",
                    "busy disappeared while gitcache read it",
                )
                outcomes["refused"] += 1
                continue
            # Never a torn read: the file as it was at one moment (one byte value, the
            # size of its stat; a write in progress has a size of its own).
            states = {git_hash_bytes(bytes([v]) * st.st_size) for v in range(256)}
            assert oid in states
            outcomes["hashed"] += 1
    assert sum(outcomes.values()) == 20


def test_a_file_that_changes_once_gives_the_blob_of_its_final_state(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * (8 * BLOCK))
    reads = 0

    def read_then_change(p: Path) -> bytes:
        nonlocal reads
        reads += 1
        data = p.read_bytes()
        if reads == 1:
            p.write_bytes(b"b" * 10)  # changed while "reading"
        return data

    data, st = read_stable(path, "f", read_then_change)
    assert reads == 2 and data == b"b" * 10 and st.st_size == 10


def test_an_output_is_stored_with_the_size_of_the_blob(
    make: Callable[..., Repo],
) -> None:
    repo = GitRepo.discover(make({"README": "x\n"}).root)
    tree = Worktree(repo, StatCache(repo.state_dir))
    (repo.root / "out.bin").write_bytes(os.urandom(BLOCK + 5))
    stored = tree.store_output("out.bin", repo.write_blob_file, repo.write_blob)
    assert stored.size == repo.blob_size(stored.blob) == BLOCK + 5
    assert stored.blob == git_blob(repo.root / "out.bin")


def test_status_while_an_input_is_rewritten_never_crashes(make: Callable[..., Repo]) -> None:
    toml = '[steps.s]\ninputs = ["big.bin"]\noutputs = ["out"]\nrun = "cp big.bin out"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "big.bin\nout\n"})
    path = repo.root / "big.bin"
    with rewriting(path, 4 * BLOCK):
        for _ in range(3):
            done = repo.process("status")
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr
            if done.returncode != 0:
                assert done.returncode == 2
                assert done.stderr.startswith(
                    "gitcache: error: big.bin keeps changing while gitcache reads it ("
                ), done.stderr


def test_what_was_read_must_be_the_size_the_stat_gives(tmp_path: Path) -> None:
    """A file emptied, written and emptied again within one tick of the file system's
    clock keeps its stat: the N bytes read in between are not what the stat (size 0)
    describes, and a record naming them with size 0 would be wrong."""
    path = tmp_path / "busy"
    path.write_bytes(b"")
    reads: list[int] = []

    def read(p: Path) -> int:
        reads.append(1)
        return 4096  # as if 4096 bytes had been there while it was read

    with pytest.raises(UnreadableFile, match="busy"):
        read_stable(path, "busy", read, size_of=lambda n: n)
    assert len(reads) == TRIES  # read again each time, then refused
    # the same file read whole is accepted, with the stat that goes with it
    value, st = read_stable(path, "busy", lambda p: len(p.read_bytes()), size_of=lambda n: n)
    assert value == 0 == st.st_size


def libgit2_writes(repo: Repo) -> GitRepo:
    """The repository with libgit2 writing objects, as in a SHA-256 repository (which this
    libgit2 cannot open): gitcache's own object writer is not used."""
    gr = GitRepo.discover(repo.root)
    gr._writer_chosen = True  # decided: no writer
    assert gr.objects is None
    return gr


def test_through_libgit2_a_file_is_stored_as_read_with_the_size_read(
    make: Callable[..., Repo],
) -> None:
    """The libgit2 way stores the bytes read, unfiltered (as hash_file and the object
    writer take them), and says the size of what it stored: a file whose stat says 0
    bytes while reading gives more (as /proc's do, and as a file emptied, written and
    emptied again within a tick looks) is refused by read_stable, not stored as 0 bytes."""
    repo = make({".gitattributes": "* text\n"})
    gr = libgit2_writes(repo)
    crlf = repo.root / "crlf.txt"
    crlf.write_bytes(b"a\r\nb\r\n")  # the `text` attribute's clean filter would make it LF
    stored = gr.write_blob_file(crlf)
    assert (stored.oid, stored.size) == (git_blob(crlf), 6) and gr.blob_size(stored.oid) == 6

    proc = Path("/proc/self/status")
    assert os.stat(proc).st_size == 0
    stored = gr.write_blob_file(proc)
    assert stored.size == gr.blob_size(stored.oid) > 0
    with pytest.raises(UnreadableFile, match="keeps changing"):
        read_stable(proc, "status", gr.write_blob_file, size_of=lambda s: s.size)


def test_the_dirty_snapshot_knows_the_size_it_stored_unless_a_filter_applies(
    make: Callable[..., Repo],
) -> None:
    """read_stable checks the snapshot's blobs against the stat too: the blob's size is
    the bytes read when no clean filter applies (with one, the size may differ: None)."""
    repo = make({".gitattributes": "*.txt text\n", "plain.bin": "x\n", "text.txt": "y\n"})
    repo.write("plain.bin", "changed\n")
    repo.write("text.txt", "changed\r\n")
    gr = GitRepo.discover(repo.root)
    oid, size = gr._blob_from_workdir(repo.root / "plain.bin")
    assert (str(oid), size) == (repo.git("hash-object", "plain.bin").strip(), 8)
    oid, size = gr._blob_from_workdir(repo.root / "text.txt")
    assert (str(oid), size) == (repo.git("hash-object", "text.txt").strip(), None)
    tree = gr.worktree_tree(["plain.bin", "text.txt"])
    assert repo.git("rev-parse", f"{tree}:text.txt").strip() == str(oid)
