"""Restores that write files in place, killed: the journal lets the next command remove
the half-written files (and nothing else), and the restore after it is exact."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitcache.journal import JOURNAL_DIR, Journal, recover
from gitcache.project import Project
from gitcache.restoring import restore_outputs
from tests.helpers import (
    Repo,
    assert_restored_exactly,
    gitcache_env,
    many_file_text,
    many_files_project,
    output_files,
    restore_journals,
)

FILES = 200

# gitcache as a process whose restore writes part of its KILL_AT-th file, then is
# killed with SIGKILL: a deterministic kill -9 in the middle of a file written in place.
KILLED_MIDWAY = """\
import os, signal, sys
from gitcache import worktree

original = worktree.write_pieces
count = 0

def partial(fd, pieces):
    global count
    count += 1
    if count == int(os.environ["KILL_AT"]):
        os.write(fd, b"fil")
        os.kill(os.getpid(), signal.SIGKILL)
    return original(fd, pieces)

worktree.write_pieces = partial
from gitcache.cli.main import main
main(sys.argv[1:], prog_name="gitcache")
"""


def _repo(make: Callable[..., Repo]) -> Repo:
    repo = make(many_files_project(FILES, 4))
    done = repo.process("run")
    assert done.returncode == 0, done.stderr
    return repo


def _path(repo: Repo, i: int) -> Path:
    return repo.root / "out" / f"d{i % 4}" / f"f{i:04d}.txt"


def _want() -> dict[str, tuple[bytes, int]]:
    return {f"out/d{i % 4}/f{i:04d}.txt": (many_file_text(i), 0o644) for i in range(FILES)}


def _exact(repo: Repo) -> bool:
    return output_files(repo) == _want()


def _killed_restore(repo: Repo, kill_at: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MIDWAY, "run"],
        cwd=repo.root,
        env={**gitcache_env(), "KILL_AT": str(kill_at)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def _half_written(repo: Repo) -> list[str]:
    """The files of out/ with mode 000: made by the killed restore, not whole (the one it
    was writing, and any another thread had just made)."""
    return sorted(p for p, (_data, mode) in output_files(repo).items() if mode == 0)


def test_a_restore_killed_in_the_middle_of_a_file_is_undone_by_the_next_run(
    make: Callable[..., Repo],
) -> None:
    repo = _repo(make)
    os.umask(0o022)
    subprocess.run(["rm", "-rf", str(repo.root / "out")], check=True)
    _killed_restore(repo, kill_at=50)
    left = output_files(repo)
    half = _half_written(repo)
    assert [p for p in half if left[p][0] == b"fil"], left  # killed in its middle
    assert 50 <= len(left) < FILES
    assert len(restore_journals(repo)) == 1
    done = repo.process("run")
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stderr
    assert_restored_exactly(repo, _want())


def test_files_the_user_put_there_meanwhile_are_never_removed(
    make: Callable[..., Repo],
) -> None:
    repo = _repo(make)
    os.umask(0o022)
    subprocess.run(["rm", "-rf", str(repo.root / "out")], check=True)
    _killed_restore(repo, kill_at=10)
    left = output_files(repo)
    (half,) = [repo.root / p for p in _half_written(repo) if left[p][0] == b"fil"]
    order = sorted(range(FILES), key=lambda i: _path(repo, i).relative_to(repo.root).as_posix())
    later, empty = _path(repo, order[180]), _path(repo, order[181])
    assert not later.exists() and not empty.exists()  # not reached by the restore
    # The user replaces the half-written file (its inode may well be reused), and
    # writes files where the restore had not come yet.
    half.unlink()
    half.write_bytes(b"mine\n")
    later.write_bytes(b"also mine\n")
    empty.touch(mode=0o000)  # even an empty file of mode 000: not ours, no journal says so
    done = repo.process("run")
    assert done.returncode == 2, done.stderr  # the restore refuses to drop them
    assert "in no record" in done.stderr
    assert half.read_bytes() == b"mine\n"
    assert later.read_bytes() == b"also mine\n"
    assert empty.exists()
    assert restore_journals(repo) == []
    assert _half_written(repo) == [empty.relative_to(repo.root).as_posix()]
    for path in (half, later, empty):
        path.unlink()
    done = repo.process("run")
    assert done.returncode == 0, done.stderr
    assert _exact(repo)


def test_kill_9_at_random_moments_of_a_restore_of_many_files(
    make: Callable[..., Repo],
) -> None:
    """A real kill -9 (no help from the restore) at random moments: the next run always
    restores the exact files, and leaves no journal and no temporary file."""
    repo = _repo(make)
    rng = random.Random()
    killed = 0
    for _ in range(8):
        subprocess.run(["rm", "-rf", str(repo.root / "out")], check=True)
        proc = repo.spawn("run")
        deadline = time.monotonic() + 60
        while not (repo.root / "out").exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.02))
        alive = proc.poll() is None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.communicate(timeout=60)
        killed += alive and proc.returncode == -signal.SIGKILL
        done = repo.process("run")
        assert done.returncode == 0, done.stderr
        assert _exact(repo)
        assert restore_journals(repo) == []
    assert killed >= 2, f"only {killed} of 8 restores were running when killed"


def test_a_running_restores_journal_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "out").mkdir(parents=True)
    state = tmp_path / "state"
    journal = Journal(state, ["out/a", "out/b"])
    journal.begin(0)
    fd = os.open(root / "out" / "a", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
    journal.created(0, os.fstat(fd))
    os.close(fd)
    assert recover(root, state) == []  # its lock is held: the restore runs
    assert (root / "out" / "a").exists()
    journal.abandon()  # as if killed: the lock goes, the journal stays
    assert recover(root, state) == ["out/a"]
    assert not (root / "out" / "a").exists()
    assert os.listdir(state / JOURNAL_DIR) == []


def test_recovery_never_goes_through_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    state = tmp_path / "state"
    (root / "out").mkdir()
    journal = Journal(state, ["out/a"])
    journal.begin(0)
    fd = os.open(root / "out" / "a", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
    journal.created(0, os.fstat(fd))
    os.close(fd)
    journal.abandon()
    # out/ replaced by a link to a directory holding a file of the same name and inode.
    os.rename(root / "out", outside / "out")
    os.symlink(outside / "out", root / "out")
    assert recover(root, state) == []
    assert (outside / "out" / "a").exists()


def test_a_signal_right_after_a_file_is_created_leaves_no_mode_000_file(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM, which gitcache raises as Terminated) between the open that
    creates a file in place and the bookkeeping after it: the empty mode-000 file is
    removed before the exception leaves the restore. Its journal was once removed at
    once, so no later command could tell it from the user's."""
    repo = _repo(make)
    shutil.rmtree(repo.root / "out")
    project = Project.open(repo.root)
    stored = project.store.latest("many")
    assert stored is not None
    real_open = os.open
    opened: list[str] = []

    def interrupted_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(path, flags, mode, **kw)
        if flags & os.O_EXCL and str(path).endswith(".txt"):
            opened.append(str(path))
            if len(opened) == 50:
                raise KeyboardInterrupt  # as a signal handler raises it, here
        return fd

    monkeypatch.setattr(os, "open", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        restore_outputs(project, stored)
    monkeypatch.undo()
    assert not os.path.lexists(opened[-1])
    stuck = [p for p in (repo.root / "out").rglob("*") if stat.S_IMODE(p.lstat().st_mode) == 0]
    assert stuck == []
    assert restore_journals(repo) == []
    assert repo.process("run").returncode == 0
    assert len(list((repo.root / "out").rglob("*.txt"))) == FILES
