"""Races between gitcache and git's own garbage collection.

`git gc --prune=now` (what `gitcache gc --prune` runs) deletes every object no ref
reaches, and any `git prune` removes empty fan-out directories (objects/ab/) while
libgit2 is about to rename an object into one. A run between its first object and
its refs must survive both: runs and `gitcache gc --prune` exclude each other through
the objects lock, and object writes are tried again when their directory vanished.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.engine import Engine, RunOptions, StepResult
from gitcache.gitrepo import GitRepo
from gitcache.locks import dropping_records, objects_lock_path, writing_objects
from gitcache.project import Project
from tests.helpers import Repo
from tests.records import write_record
from tests.test_noop import Silent

MANY = """\
[params]
n = 0

[steps.many]
outputs = ["out"]
run = "sleep 0.3; mkdir -p out && for i in $(seq 200); do echo {n} $i > out/f$i; done"
"""


def test_object_writes_survive_git_prune_removing_their_directory(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    Repo(root.parent).git("init", "-q", str(root))
    repo = GitRepo.discover(root)
    # The prune `git gc --auto` runs in the user's own git keeps fresh objects
    # (gc.pruneExpire) but removes every empty fan-out directory.
    pruner = subprocess.Popen(
        ["sh", "-c", "while :; do git prune --expire=2.weeks.ago; done"], cwd=root
    )
    written: list[str] = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            written.append(repo.write_blob(os.urandom(16)))
    finally:
        pruner.kill()
        pruner.wait()
    assert len(written) > 500  # enough tries to have met the race (~1 in 500 before)
    assert all(repo.has_object(oid) for oid in written)


def test_gc_prune_waits_for_a_run_between_objects_and_refs(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.slow]\noutputs = ["out/s.txt"]\n'
        'run = "touch started; sleep 1.5; echo made > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\nstarted\n"})
    assert repo.run("run").exit_code == 0
    (repo.root / "started").unlink()
    repo.write("gitcache.toml", toml.replace("made", "made again"))  # a new record to run
    run = repo.spawn("run")
    _wait_for(repo.root / "started")
    gc = repo.process("gc", "--keep", "1", "--prune")  # waits, then drops the first record
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert gc.returncode == 0, gc.stderr
    assert "waiting for lock on" in gc.stderr and "objects.lock" in gc.stderr
    assert "git gc --prune=now done" in gc.stderr
    assert repo.read("out/s.txt") == "made again\n"
    assert len([r for r in repo.refs() if "/sig/" in r]) == 1  # the new run's record
    repo.git("fsck", "--strict")


def test_a_run_waits_while_gc_prunes(chain: Repo) -> None:
    state = GitRepo.discover(chain.root).state_dir
    with dropping_records(state, None):
        run = chain.spawn("run")
        line = run.stderr.readline() if run.stderr else ""
        assert "waiting for lock on" in line and "gc --prune is running" in line, line
        assert not chain.refs()  # nothing recorded while the lock is held
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert len([r for r in chain.refs() if "/sig/" in r]) == 2
    chain.git("fsck", "--strict")


@pytest.mark.parametrize("command", [["gc", "--keep", "0", "--all"], ["remove", "--all"]])
def test_records_are_dropped_only_while_nobody_relies_on_them(
    chain: Repo, command: list[str]
) -> None:
    # `remove --outputs` holds the lock shared from checking that a record holds the
    # files to deleting them: a record dropped in between would take the only copy.
    assert chain.run("run").exit_code == 0
    refs = chain.refs()
    state = GitRepo.discover(chain.root).state_dir
    with writing_objects(state, None):
        dropper = chain.spawn(*command)
        line = dropper.stderr.readline() if dropper.stderr else ""
        assert "waiting for lock on" in line, line
        assert chain.refs() == refs
    _out, err = dropper.communicate(timeout=60)
    assert dropper.returncode == 0, err
    assert not [r for r in chain.refs() if "/sig/" in r]


@pytest.mark.slow
def test_runs_survive_gc_prune_in_a_loop(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": MANY, ".gitignore": "out/\n", "notes.txt": "v1\n"})
    # A dirty worktree: its snapshot is written before the command runs, and is kept
    # only by the record written after it.
    repo.write("notes.txt", "v2\n")
    stop = threading.Event()
    pruned: list[int] = []
    gc_errors: list[str] = []

    def gc_loop() -> None:
        while not stop.is_set():
            # Something to drop each time, so that every round prunes.
            write_record(repo.root, "old", os.urandom(32).hex(), content=os.urandom(8))
            done = repo.process("gc", "--keep", "0", "--all", "--prune")
            if done.returncode != 0:
                gc_errors.append(done.stderr)
            elif "git gc --prune=now done" in done.stderr:
                pruned.append(1)

    collector = threading.Thread(target=gc_loop)
    collector.start()
    try:
        for n in range(1, 7):
            done = repo.process("run", "-q", "-p", f"n={n}")
            assert done.returncode == 0, done.stderr
            assert repo.read("out/f200") == f"{n} 200\n"
    finally:
        stop.set()
        collector.join()
    assert not gc_errors, gc_errors[0]
    assert pruned, "gc never pruned: the loop tested nothing"
    repo.git("fsck", "--strict")


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_build_keeps_gc_prune_out_until_a_sweep_items_refs_are_written(
    make: Callable[..., Repo],
) -> None:
    # `-s build` names blobs it finds stored (perhaps only by a removed record's tree,
    # which `git gc --prune=now` deletes) in records whose refs wait in the run's batch:
    # between the item's step and that flush, no `gitcache gc --prune` may run.
    toml = "[steps.s]\nmatrix = { a = [1, 2] }\noutputs = ['o/{a}.txt']\nrun = 'echo {a} > {outputs}'\n"
    repo = make({"gitcache.toml": toml, ".gitignore": "o/\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("remove", "s").exit_code == 0  # the outputs' blobs: unreachable now
    project = Project.open(repo.root)
    engine = Engine(project, RunOptions(mode="build"), Silent())
    step_locked = engine._step_locked
    probes: list[tuple[str, bool, int]] = []

    def probe(name: str) -> StepResult:
        result = step_locked(name)
        # What `gitcache gc --prune` would try now, from another process's file.
        with open(objects_lock_path(project.repo.state_dir), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
        probes.append((result.outcome, free, len(repo.refs("refs/gitcache/sig/"))))
        return result

    engine._step_locked = probe  # type: ignore[method-assign]
    engine.run([])
    project.save()
    assert probes == [("recorded", False, 0), ("recorded", False, 0)]
    assert len(repo.refs("refs/gitcache/sig/")) == 2
    repo.git("fsck", "--strict")
