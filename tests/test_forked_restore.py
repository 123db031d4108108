"""A restore of many small files writes a share of them in a second, forked process
(forkedwriter.py, worktree.Worktree._apply): the same files, modes, stat cache rows and
journal as one process writes; a child that dies leaves its files to the parent; a
parent killed with SIGKILL leaves a child that finishes under the locks it inherited;
Ctrl-C stops both and leaves no half-written file.

The threshold (forkedwriter.MIN_FILES) is lowered in each gitcache these tests start,
so that a few hundred files take the forked way."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitcache import forkedwriter
from gitcache.objects.loose import blob_id
from gitcache.project import Project
from gitcache.restoring import restore_outputs
from gitcache.statcache import StatCache, stat_numbers
from tests.helpers import (
    Repo,
    assert_restored_exactly,
    gitcache_env,
    many_file_text,
    many_files_project,
    output_files,
    restore_journals,
)

FILES = 600

# gitcache with the threshold lowered, saying when it forks; CHILD_DIES_AT=k: the
# child writes part of its k-th file, then is killed with SIGKILL.
WRAPPER = """\
import os, signal, sys
from gitcache import forkedwriter, worktree

forkedwriter.MIN_FILES = 8
PARENT = os.getpid()
original_start = forkedwriter.ForkedWriter.start

def start(self, write):
    sys.stderr.write(f"forked for {self.count} files\\n")
    sys.stderr.flush()
    original_start(self, write)

forkedwriter.ForkedWriter.start = start
dies_at = int(os.environ.get("CHILD_DIES_AT", "0"))
original = worktree.write_pieces
count = 0

def partial(fd, pieces):
    global count
    if os.getpid() != PARENT:
        count += 1
        if count == dies_at:
            os.write(fd, b"fil")
            os.kill(os.getpid(), signal.SIGKILL)
    return original(fd, pieces)

worktree.write_pieces = partial
from gitcache.cli.main import main
main(sys.argv[1:], prog_name="gitcache")
"""


def _want() -> dict[str, tuple[bytes, int]]:
    return {f"out/d{i % 8}/f{i:04d}.txt": (many_file_text(i), 0o644) for i in range(FILES)}


def _repo(make: Callable[..., Repo]) -> Repo:
    os.umask(0o022)
    repo = make(many_files_project(FILES, 8))
    done = repo.process("run")
    assert done.returncode == 0, done.stderr
    return repo


def _wrapped(repo: Repo, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, "run"],
        cwd=repo.root,
        env={**gitcache_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_second_process_writes_half_the_files_as_the_first_would(
    make: Callable[..., Repo],
) -> None:
    repo = _repo(make)
    shutil.rmtree(repo.root / "out")
    done = _wrapped(repo)
    assert done.returncode == 0, done.stderr
    assert f"forked for {FILES // 2} files" in done.stderr
    assert "restored" in done.stderr
    # Every file has its stat cache row, the child's as well as the parent's: the
    # numbers of the file as it is, and its blob id (before _outputs, whose chmod
    # changes the files' ctime).
    cache = StatCache(repo.root / ".git" / "gitcache")
    for rel, (data, _mode) in _want().items():
        row = cache._saved(rel)
        assert row == [*stat_numbers(os.lstat(repo.root / rel)), blob_id(data)], rel
    assert output_files(repo) == _want()
    assert restore_journals(repo) == []
    done = repo.process("run")
    assert done.returncode == 0 and "up to date" in done.stderr, done.stderr


def test_files_a_killed_second_process_left_are_written_by_the_first(
    make: Callable[..., Repo],
) -> None:
    repo = _repo(make)
    shutil.rmtree(repo.root / "out")
    done = _wrapped(repo, CHILD_DIES_AT="40")
    assert done.returncode == 0, done.stderr
    assert "forked for" in done.stderr and "restored" in done.stderr
    assert_restored_exactly(repo, _want())  # the half-written one replaced, none of mode 000


def test_kill_9_of_the_first_process_leaves_the_second_to_finish_under_its_locks(
    make: Callable[..., Repo],
) -> None:
    """SIGKILL of gitcache alone (not its group): its child goes on writing while it
    holds the inherited output locks and journal lock, so the run right after waits
    for it, recovers the journal and restores exactly."""
    repo = _repo(make)
    rng = random.Random()
    forked = 0
    for _ in range(6):
        shutil.rmtree(repo.root / "out", ignore_errors=True)
        proc = repo.spawn("run", script=WRAPPER)
        deadline = time.monotonic() + 60
        while not (repo.root / "out").exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.03))
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        _out, err = proc.communicate(timeout=60)
        forked += "forked for" in err
        done = repo.process("run")
        assert done.returncode == 0, done.stderr
        assert output_files(repo) == _want()
        assert restore_journals(repo) == []
    assert forked >= 1


def test_ctrl_c_stops_both_processes_and_leaves_no_half_written_file(
    make: Callable[..., Repo],
) -> None:
    repo = _repo(make)
    interrupted = 0
    for _ in range(3):
        shutil.rmtree(repo.root / "out", ignore_errors=True)
        proc = repo.spawn("run", script=WRAPPER, start_new_session=True)
        assert proc.stderr is not None
        said = ""
        while "forked for" not in said and (line := proc.stderr.readline()):
            said += line
        time.sleep(random.uniform(0, 0.005))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group
        _out, err = proc.communicate(timeout=60)
        err = said + err
        if proc.returncode == 0:
            continue  # done before the signal came
        assert proc.returncode == 130, err
        interrupted += "forked for" in err
        with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
            for _wait in range(200):
                os.killpg(proc.pid, 0)
                time.sleep(0.01)
            pytest.fail("a process of the interrupted restore is still running")
        left = output_files(repo)
        assert not [p for p, (_d, mode) in left.items() if mode == 0], left
        assert all(left[p] == _want()[p] for p in left)
        assert restore_journals(repo) == []
    assert interrupted >= 1, "no restore was interrupted while its second process ran"
    done = repo.process("run")
    assert done.returncode == 0, done.stderr
    assert output_files(repo) == _want()


def test_an_exception_in_the_first_process_stops_the_second_before_recovery(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the parent (raised where a handler raises it) while the child writes:
    the child is killed and waited for, then the journal is undone: no mode-000 file
    of either process is left, and no journal."""
    repo = _repo(make)
    shutil.rmtree(repo.root / "out")
    project = Project.open(repo.root)
    stored = project.store.latest("many")
    assert stored is not None
    monkeypatch.setattr(forkedwriter, "MIN_FILES", 8)
    monkeypatch.setattr(forkedwriter, "_allowed", True)  # as the gitcache command
    parent = os.getpid()
    real_open = os.open
    opened: list[str] = []

    def interrupted_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(path, flags, mode, **kw)
        if flags & os.O_EXCL and str(path).endswith(".txt") and os.getpid() == parent:
            opened.append(str(path))
            if len(opened) == 100:
                raise KeyboardInterrupt  # as a signal handler raises it, here
        return fd

    monkeypatch.setattr(os, "open", interrupted_open)
    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted_fork)
    if threading.active_count() != 1:
        pytest.skip("another thread runs in this test process: no fork")
    with pytest.raises(KeyboardInterrupt):
        restore_outputs(project, stored)
    monkeypatch.undo()
    assert len(forks) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forks[0], os.WNOHANG)  # waited for already
    stuck = [p for p in (repo.root / "out").rglob("*") if stat.S_IMODE(p.lstat().st_mode) == 0]
    assert stuck == []
    assert restore_journals(repo) == []
    assert repo.process("run").returncode == 0
    assert output_files(repo) == _want()


def test_no_second_process_in_a_library_call_beside_another_thread_or_for_few_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forkedwriter, "_allowed", False)  # a program calling gitcache
    assert not forkedwriter.usable(10 * forkedwriter.MIN_FILES)
    monkeypatch.setattr(forkedwriter, "_allowed", True)  # the gitcache command
    if threading.active_count() == 1 and len(os.sched_getaffinity(0)) >= 2:
        assert forkedwriter.usable(10 * forkedwriter.MIN_FILES)
    assert not forkedwriter.usable(forkedwriter.MIN_FILES - 1)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not forkedwriter.usable(10 * forkedwriter.MIN_FILES)
    finally:
        stop.set()
        other.join()


def test_a_full_disk_stops_a_forked_restore_cleanly(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    """The repository on a tmpfs with room for about a third of the files: the
    restore (both processes) stops with one line saying so, leaves no half-written
    file and no journal, and the same command restores every file once there is room."""
    from tests.test_store_reliability import _tmpfs

    with _tmpfs(tmp_path / "disk", 64 * 2**20) as resize:
        os.umask(0o022)
        repo = make(many_files_project(FILES, 8), name="disk/repo")
        done = repo.process("run")
        assert done.returncode == 0, done.stderr
        shutil.rmtree(repo.root / "out")
        fs = os.statvfs(repo.root)
        used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        resize(used + FILES // 3 * fs.f_frsize)  # each small file takes a page
        done = _wrapped(repo)
        errors = [line for line in done.stderr.splitlines() if line.startswith("gitcache:")]
        assert done.returncode == 2, done.stderr
        assert "forked for" in done.stderr
        # Names the file it could not write (a write to a descriptor carries no name).
        assert "gitcache: error: cannot restore out/d" in done.stderr, done.stderr
        assert "No space left on device" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert len([e for e in errors if "error:" in e]) == 1, done.stderr
        left = output_files(repo)
        assert 0 < len(left) < FILES
        assert not [p for p, (_d, mode) in left.items() if mode == 0], left
        assert all(left[p] == _want()[p] for p in left)
        assert restore_journals(repo) == []
        resize(64 * 2**20)
        done = _wrapped(repo)
        assert done.returncode == 0, done.stderr
        assert output_files(repo) == _want()
