"""Big inputs hashed ahead while gitcache starts (prefetch.py, filehash.hash_ahead): the
right files guessed, ids taken only for the very file they were read from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitcache import filehash
from gitcache.filehash import hash_ahead, hash_file
from gitcache.prefetch import MIN_SIZE, _candidates, _core_to_spare, _load, _targets
from tests.helpers import Repo

TOML = """\
[steps.copy]
inputs = ["data/big.bin", "data/small.txt", "data/*.glob", "made/part.bin", "data/dir"]
outputs = ["out/big.bin"]
run = "mkdir -p out && cat data/big.bin > out/big.bin"

[steps.make]
outputs = ["made"]
run = "mkdir -p made && head -c 9000000 data/big.bin > made/part.bin"

[steps.other]
inputs = ["data/other.bin"]
outputs = ["out/other.bin"]
run = "mkdir -p out && cp data/other.bin out/other.bin"
"""


def _big(path: Path, seed: int, size: int = MIN_SIZE + 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(16) * (size // 16) + bytes([seed]) * (size % 16))


@pytest.fixture
def repo(make: Callable[..., Repo]) -> Repo:
    r = make({"gitcache.toml": TOML, ".gitignore": "/data/\n/out/\n/made/\n"})
    _big(r.root / "data" / "big.bin", 1)
    _big(r.root / "data" / "other.bin", 2)
    _big(r.root / "data" / "x.glob", 3)
    _big(r.root / "made" / "part.bin", 4)
    _big(r.root / "data" / "dir" / "in.bin", 6)
    r.write("data/small.txt", "small\n")
    return r


@pytest.fixture
def reads() -> Iterator[list[str]]:
    """The names of the threads that read a file through filehash, in order."""
    seen: list[str] = []
    original = filehash._hash_open

    def spy(handle: object, size: int, block: int) -> tuple[str, int]:
        seen.append(threading.current_thread().name)
        return original(handle, size, block)  # type: ignore[arg-type]

    filehash._hash_open = spy  # type: ignore[assignment]
    yield seen
    filehash._hash_open = original


def _hashed_ahead() -> None:
    """Wait until the thread hashing ahead has finished its file."""
    (entry,) = filehash._ahead.values()
    assert entry.done.wait(60)


def test_the_arguments_of_run_decide_whether_to_guess() -> None:
    assert _targets([]) == []
    assert _targets(["copy", "-j", "2", "-q", "-p", "x=1", "other"]) == ["copy", "other"]
    assert _targets(["-s", "build", "copy"]) == ["copy"]
    for args in (["-s", "ignore"], ["-s", "skip"], ["-f", "x.toml"], ["t/a.json"], ["-n"]):
        assert _targets(args) is None, args
    assert _targets(["train[lr=0.1]"]) is None


def test_no_guess_without_an_idle_core() -> None:
    assert _core_to_spare(0.2, 2) and _core_to_spare(1.4, 2) and _core_to_spare(5.0, 8)
    assert not _core_to_spare(1.5, 2) and not _core_to_spare(3.4, 2)
    assert not _core_to_spare(0.0, 1)  # one CPU: nothing to hash beside


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="Linux's run queue figure")
def test_busy_cores_now_leave_no_core_to_spare() -> None:
    """The figure is the run queue now, not a minute's average: as many busy processes
    as CPUs leave none idle, the moment they run."""
    assert _load() >= 1  # this test's own process is running
    cpus = len(os.sched_getaffinity(0))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        time.sleep(0.3)
        assert _load() >= cpus + 1
        assert not _core_to_spare()
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_only_big_plain_inputs_no_step_writes_are_guessed(repo: Repo) -> None:
    root = os.path.realpath(repo.root)
    found = _candidates(root, [])
    assert found is not None
    paths, clock_dir = found
    assert paths == [f"{root}/data/big.bin", f"{root}/data/other.bin"]
    assert clock_dir == f"{root}/.git/gitcache"
    assert _candidates(root, ["other"]) == ([f"{root}/data/other.bin"], clock_dir)
    assert _candidates(f"{root}/data", ["make"]) is None  # it reads nothing


def test_nothing_is_guessed_once_the_stat_cache_knows_the_inputs(repo: Repo) -> None:
    result = repo.run("run")
    assert result.exit_code == 0, result.output
    root = os.path.realpath(repo.root)
    assert _candidates(root, []) is None
    time.sleep(0.01)
    _big(repo.root / "data" / "other.bin", 5)  # newer than the cache: hashed again
    assert _candidates(root, []) == ([f"{root}/data/other.bin"], f"{root}/.git/gitcache")


def test_an_id_hashed_ahead_is_taken_without_reading_again(
    repo: Repo, reads: list[str], tmp_path: Path
) -> None:
    path = repo.root / "data" / "big.bin"
    hash_ahead([str(path)], str(tmp_path / "clock"))
    _hashed_ahead()
    assert hash_file(path, "data/big.bin")[0] == repo.blob("data/big.bin")
    assert reads == ["gitcache-hash-ahead"]
    assert hash_file(path, "data/big.bin")[0] == repo.blob("data/big.bin")  # once only
    assert reads == ["gitcache-hash-ahead", "MainThread"]


def test_a_file_changed_after_it_was_hashed_ahead_is_read_again(
    repo: Repo, reads: list[str], tmp_path: Path
) -> None:
    path = repo.root / "data" / "big.bin"
    hash_ahead([str(path)], str(tmp_path / "clock"))
    _hashed_ahead()
    assert reads == ["gitcache-hash-ahead"]
    time.sleep(0.01)
    _big(path, 9)  # same size, same inode, new bytes and times
    assert hash_file(path, "data/big.bin")[0] == repo.blob("data/big.bin")
    assert reads == ["gitcache-hash-ahead", "MainThread"]


def test_a_file_not_older_than_the_clock_is_not_taken(
    repo: Repo, reads: list[str], tmp_path: Path
) -> None:
    """A file whose mtime is the clock's tick or later may change again within that
    tick without its stat moving: its id hashed ahead is not kept."""
    path = repo.root / "data" / "big.bin"
    later = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(later, later))
    hash_ahead([str(path)], str(tmp_path / "clock"))
    _hashed_ahead()
    assert hash_file(path, "data/big.bin")[0] == repo.blob("data/big.bin")
    assert reads == ["MainThread"]
    assert not list((tmp_path / "clock").iterdir())  # the clock file is gone


def test_a_run_records_the_ids_of_inputs_hashed_ahead(repo: Repo) -> None:
    done = repo.process("run", "copy", "other")  # a process: `run` not yet imported
    assert done.returncode == 0, done.stderr
    for step, name in (("copy", "data/big.bin"), ("other", "data/other.bin")):
        record = json.loads(repo.git("show", f"refs/gitcache/step/{step}:record.json"))
        assert record["components"]["inputs"][name] == repo.blob(name)
    assert "3 up to date" in repo.process("run", "copy", "other").stderr


def test_a_linked_worktree_guesses_against_its_own_stat_cache(repo: Repo) -> None:
    from gitcache.gitrepo import GitRepo
    from gitcache.prefetch import _repository

    linked = repo.root.parent / "linked"
    repo.git("worktree", "add", "-q", str(linked))
    found = _repository(os.path.realpath(linked / "data"))
    assert found is not None
    assert Path(found[1]) / "gitcache" == GitRepo.discover(linked).worktree_state_dir
    assert found[0] == os.path.realpath(linked)
