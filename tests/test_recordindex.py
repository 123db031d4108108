"""The record index: summaries cached by commit id, rebuilt from git when missing."""

from __future__ import annotations

from gitcache.gitrepo import GitRepo
from gitcache.recordindex import INDEX_FILE
from gitcache.store import RecordStore
from tests.helpers import Repo
from tests.records import write_record


def test_summaries_match_records_and_survive_a_lost_index(chain: Repo) -> None:
    one = write_record(chain.root, "make", "a" * 64, params={"size": 1})
    write_record(chain.root, "count", "b" * 64)
    repo = GitRepo.discover(chain.root)
    index_file = repo.state_dir / INDEX_FILE
    assert index_file.exists()
    first = {s.commit: s for s in RecordStore(repo).summaries()}
    assert first[one.commit].params == {"size": 1}
    assert first[one.commit].outputs == {"out.txt": one.record.outputs[0].blob}
    index_file.write_text("{not json")
    again = {s.commit: s for s in RecordStore(repo).summaries()}
    assert again == first
    assert index_file.read_text().startswith('{"version":1')


def test_index_drops_removed_records(chain: Repo) -> None:
    one = write_record(chain.root, "make", "a" * 64)
    write_record(chain.root, "make", "b" * 64)
    chain.git("update-ref", "-d", "refs/gitcache/sig/aa/" + "a" * 64)
    repo = GitRepo.discover(chain.root)
    store = RecordStore(repo)
    assert one.commit not in {s.commit for s in store.summaries()}


def test_record_under_the_wrong_ref_is_ignored(chain: Repo) -> None:
    one = write_record(chain.root, "make", "a" * 64)
    chain.git("update-ref", "refs/gitcache/sig/cc/" + "c" * 64, one.commit)
    warnings: list[str] = []
    store = RecordStore(GitRepo.discover(chain.root), warnings.append)
    assert [s.signature for s in store.summaries()] == ["a" * 64]
    assert "does not match its ref" in warnings[0]
