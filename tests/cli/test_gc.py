"""`gitcache gc`: by age, by count per step, protections, dry run."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from filelock import FileLock

from gitcache.locks import remove_unheld_signature_locks, signature_lock, signature_lock_path
from tests.helpers import Repo
from tests.records import write_record


def _sigs(repo: Repo) -> set[str]:
    return {k.rsplit("/", 1)[1] for k in repo.refs() if k.startswith("refs/gitcache/sig/")}


def _old(repo: Repo, n: int, step: str = "make") -> list[str]:
    sigs = []
    for i in range(n):
        sig = f"{i:02d}" + "e" * 62
        write_record(repo.root, step, sig, f"2020-01-0{i + 1}T00:00:00+00:00", content=b"%d" % i)
        sigs.append(sig)
    return sigs


def test_gc_older_than_keeps_recent_and_current(chain: Repo) -> None:
    old = _old(chain, 3)
    assert chain.run("run").exit_code == 0  # fresh records, current and latest
    current = _sigs(chain) - set(old)
    result = chain.run("gc", "--older-than", "30d")
    assert result.exit_code == 0, result.stderr
    assert "dropped 3 records" in result.stderr and "git gc --prune=now" in result.stderr
    assert _sigs(chain) == current


def test_gc_keep_n_per_step(chain: Repo) -> None:
    old = _old(chain, 4)
    assert chain.run("gc", "--keep", "2").exit_code == 0
    # newest two of make: the latest (step ref: the last written) and the one before
    assert _sigs(chain) == {old[3], old[2]}


def test_gc_never_drops_latest_or_current_without_all(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    before = _sigs(chain)
    result = chain.run("gc", "--keep", "0")
    assert result.exit_code == 0
    assert "dropped 0 records" in result.stderr
    assert _sigs(chain) == before
    assert chain.run("gc", "--keep", "0", "--all").exit_code == 0
    assert _sigs(chain) == set()


def test_gc_protects_record_matching_worktree_even_when_not_latest(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    current = _sigs(chain)
    _old(chain, 1)  # now make's latest is an old record, but the worktree matches another
    assert chain.run("gc", "--older-than", "1s", "--keep", "0").exit_code == 0
    assert current <= _sigs(chain)


def test_gc_dry_run_changes_nothing(chain: Repo) -> None:
    _old(chain, 3)
    refs = chain.refs()
    result = chain.run("gc", "--older-than", "1d", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.count("would drop record") == 2  # the latest stays
    assert chain.refs() == refs


def test_gc_prune_runs_git_gc_and_fsck_stays_clean(chain: Repo) -> None:
    _old(chain, 3)
    dropped = chain.refs()[f"refs/gitcache/sig/00/{'00' + 'e' * 62}"]
    result = chain.run("gc", "--older-than", "1d", "--prune")
    assert result.exit_code == 0, result.stderr
    assert "git gc --prune=now done" in result.stderr
    probe = chain.git("cat-file", "--batch-check", input=dropped + "\n")
    assert probe.strip().endswith("missing")
    chain.git("fsck", "--strict")


def test_gc_needs_a_policy(chain: Repo) -> None:
    result = chain.run("gc")
    assert result.exit_code == 2
    assert "gitcache: error: say which records to drop" in result.stderr


def test_gc_bad_age(chain: Repo) -> None:
    result = chain.run("gc", "--older-than", "soon")
    assert result.exit_code == 2
    assert "gitcache: error: --older-than 'soon': expected an age" in result.stderr


def test_an_age_beyond_the_calendar_drops_nothing_and_lists_everything(chain: Repo) -> None:
    old = _old(chain, 2)
    result = chain.run("gc", "--older-than", "1000000000000d")
    assert result.exit_code == 0, result.stderr
    assert "dropped 0 records" in result.stderr and "internal error" not in result.stderr
    listed = chain.run("log", "--since", "99999999999d")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.count("make") == len(old)


def test_gc_removes_the_signature_lock_files_no_run_holds(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("run", "-p", "size=2").exit_code == 0
    locks = chain.root / ".git" / "gitcache" / "locks"
    sig_locks = sorted(p.name for p in locks.glob("*.lock") if p.name != "objects.lock")
    assert len(sig_locks) >= 3  # one per signature ever run
    held = FileLock(str(locks / sig_locks[0]), thread_local=False)
    with held:  # a run of that signature under way (another process's, as far as gc knows)
        result = chain.run("gc", "--older-than", "0d")
        assert result.exit_code == 0, result.stderr
        assert (locks / sig_locks[0]).exists()
    left = sorted(p.name for p in locks.glob("*.lock") if p.name != "objects.lock")
    assert left == sig_locks[:1]
    assert chain.run("run", "-s", "force").exit_code == 0  # locks work as before


def test_only_unheld_signature_lock_files_go(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sig = "ab" * 32
    with signature_lock(state, sig, lambda _: None):
        assert remove_unheld_signature_locks(state) == 0  # held: it stays
        assert signature_lock_path(state, sig).exists()
    (state / "locks" / "objects.lock").touch()
    (state / "locks" / "other.lock").touch()
    assert remove_unheld_signature_locks(state) == 1
    assert sorted(p.name for p in (state / "locks").iterdir()) == ["objects.lock", "other.lock"]
    with signature_lock(state, sig, lambda _: None):  # made again when needed
        assert signature_lock_path(state, sig).exists()


def test_a_waiter_on_a_removed_lock_file_takes_the_lock_on_the_new_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sig = "cd" * 32
    path = signature_lock_path(state, sig)
    path.parent.mkdir(parents=True)
    old = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(old, fcntl.LOCK_EX)  # a run holds it
    entered = threading.Event()

    def waiter() -> None:
        with signature_lock(state, sig, lambda _: None):
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)  # the waiter has opened the old file and waits for it
    os.unlink(path)  # as gc does once it holds the lock (here: the run, as it ends)
    new = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(new, fcntl.LOCK_EX)  # a later run takes the path's new file
    os.close(old)
    assert not entered.wait(0.5)  # the old file's lock guards nothing: it waits on
    os.close(new)
    assert entered.wait(5)
    thread.join()
