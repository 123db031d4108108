"""RefBatch: sweep items' records whose writing waits (`defer`) and whose refs wait
(`add`), written by `run_deferred`, by `flush`, or when a commit is asked for."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import GitcacheError
from gitcache.gitrepo import GitRepo
from gitcache.store import NewRecord, RecordStore, RefBatch, sig_ref
from tests import records
from tests.helpers import Repo


def _sig(n: int) -> str:
    return f"{n:064x}"


def _quick(repo: GitRepo, scratch: Path, n: int, duration: float = 0.01) -> NewRecord:
    """An item's record whose command took `duration` seconds."""
    (scratch / str(n)).mkdir()
    new = records.new_record(
        repo, scratch / str(n), "s", _sig(n), content=f"{n}\n".encode(), path=f"o/{n}"
    )
    return NewRecord(dataclasses.replace(new.record, duration=duration), new.logs)


@pytest.fixture
def store(make: Callable[..., Repo]) -> tuple[Repo, RecordStore]:
    repo = make({"README": "x"})
    return repo, RecordStore(GitRepo.discover(repo.root))


def test_a_deferred_record_is_written_by_run_deferred_and_its_refs_by_flush(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    repo, s = store
    batch = RefBatch(s, max_wait=60)
    sealed: list[str] = []
    new = _quick(s.repo, tmp_path, 1)
    stored = s.write(new, s.repo.head_commit(), batch=batch, then=sealed.append)
    # the logs are read at once: the next item's command reuses the capture files
    new.logs["stdout"].write_bytes(b"the next item's output")
    assert sealed == [] and repo.refs("refs/gitcache/") == {}
    batch.run_deferred()
    assert len(sealed) == 1 and repo.refs("refs/gitcache/") == {}  # its refs wait
    batch.flush()
    assert repo.refs("refs/gitcache/sig/") == {sig_ref(_sig(1)): sealed[0]}
    assert stored.commit == sealed[0]  # written once: asking for it writes nothing more
    assert sealed == [stored.commit]
    assert repo.git("show", f"{stored.commit}:logs/stdout") == "stdout"
    assert repo.git("show", f"{stored.commit}:outputs/o/1") == "1\n"
    assert repo.git("fsck", "--strict", "--no-progress") == ""


def test_asking_for_a_deferred_records_commit_writes_it(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    repo, s = store
    batch = RefBatch(s, max_wait=60)
    sealed: list[str] = []
    first = s.write(_quick(s.repo, tmp_path, 1), None, batch=batch, then=sealed.append)
    second = s.write(_quick(s.repo, tmp_path, 2), None, batch=batch, then=sealed.append)
    assert sealed == []
    commit = second.commit
    assert sealed == [commit] and s.repo.has_object(commit)
    batch.flush()  # the first is written now, the second not again
    assert sealed == [commit, first.commit]
    assert set(repo.refs("refs/gitcache/sig/").values()) == {first.commit, second.commit}


def test_a_slow_commands_record_is_written_at_once_with_its_refs(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    repo, s = store
    batch = RefBatch(s, max_wait=1.0)
    quick = s.write(_quick(s.repo, tmp_path, 1), None, batch=batch)
    sealed: list[str] = []
    slow = s.write(_quick(s.repo, tmp_path, 2, duration=1.5), None, batch=batch, then=sealed.append)
    # the slow one flushed the batch: both records and both refs are written
    assert sealed == [slow.commit]
    assert set(repo.refs("refs/gitcache/sig/").values()) == {quick.commit, slow.commit}


def test_a_failed_deferred_write_is_raised_after_the_others_refs_are_written(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    repo, s = store
    batch = RefBatch(s, max_wait=60)
    good = s.write(_quick(s.repo, tmp_path, 1), None, batch=batch)

    def fails() -> str:
        raise OSError(28, "No space left on device")

    broken = batch.defer(fails)
    after = s.write(_quick(s.repo, tmp_path, 3), None, batch=batch)
    with pytest.raises(OSError, match="No space left"):
        batch.flush()
    # the one before it has its refs; the one after is still waiting, not lost
    assert repo.refs("refs/gitcache/sig/") == {sig_ref(_sig(1)): good.commit}
    with pytest.raises(GitcacheError, match="failed earlier"):
        broken()  # never run twice
    batch.flush()
    assert repo.refs("refs/gitcache/sig/") == {
        sig_ref(_sig(1)): good.commit,
        sig_ref(_sig(3)): after.commit,
    }


def test_tick_flushes_once_the_first_record_has_waited_max_wait(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    repo, s = store
    batch = RefBatch(s, max_wait=0.2)
    stored = s.write(_quick(s.repo, tmp_path, 1), None, batch=batch)
    batch.tick()
    assert repo.refs("refs/gitcache/") == {}  # not waited long enough
    time.sleep(0.25)
    batch.tick()
    assert repo.refs("refs/gitcache/sig/") == {sig_ref(_sig(1)): stored.commit}


def test_due_counts_deferred_and_queued_records(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    batch = RefBatch(s, limit=3, max_wait=60)
    s.write(_quick(s.repo, tmp_path, 1), None, batch=batch)
    s.write(_quick(s.repo, tmp_path, 2), None, batch=batch)
    assert not batch.due
    batch.run_deferred()  # now queued, not deferred: still two
    assert not batch.due
    s.write(_quick(s.repo, tmp_path, 3), None, batch=batch)
    assert batch.due
    batch.flush()
    assert not batch.due and len(_repo.refs("refs/gitcache/sig/")) == 3


def test_a_long_backlog_of_deferred_records_is_written_without_recursing(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    # `-s build` over a big sweep defers every item's record (no command runs to write
    # them); once the first has waited max_wait, each record's `add` asked for a flush
    # from inside the flush writing them: one stack frame level per record.
    repo, s = store
    batch = RefBatch(s, max_wait=0.05)
    count = 400
    written = [s.write(_quick(s.repo, tmp_path, n), None, batch=batch) for n in range(count)]
    time.sleep(0.1)
    batch.tick()
    assert set(repo.refs("refs/gitcache/sig/").values()) == {w.commit for w in written}
    assert len(written) == count


def test_wait_left_counts_down_from_the_first_record_waiting(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    batch = RefBatch(s, max_wait=0.3)
    assert batch.wait_left() is None  # nothing waits: never call back for it
    s.write(_quick(s.repo, tmp_path, 1), None, batch=batch)
    left = batch.wait_left()
    assert left is not None and 0.2 < left <= 0.3
    time.sleep(0.35)
    assert batch.wait_left() == 0.0
    batch.tick()
    assert batch.wait_left() is None and len(_repo.refs("refs/gitcache/sig/")) == 1
