"""RecordStore.load checks outputs/ against record.json with one tree walk."""

from __future__ import annotations

import pytest

from gitcache.errors import UnsafeRecord
from gitcache.gitrepo import MODE_FILE, GitRepo, TreeEntry
from gitcache.store import RecordStore
from tests.helpers import Repo
from tests.records import write_record


def test_load_rejects_outputs_tree_that_disagrees(chain: Repo) -> None:
    """Formats 1 and 2 list the outputs in record.json (format 3's tree is the list)."""
    good = write_record(chain.root, "make", "a" * 64, format=2)
    repo = GitRepo.discover(chain.root)
    store = RecordStore(repo)
    assert store.load(good.commit).record == good.record
    tree = repo.commit_tree(good.commit)
    entries = [e for e in repo.walk_tree(tree) if not e.path.startswith("outputs/")]
    entries.append(TreeEntry("outputs/out.txt", repo.write_blob(b"other\n"), MODE_FILE))
    bad = repo.write_commit(repo.write_tree(entries), [], "tampered")
    with pytest.raises(UnsafeRecord, match=r"outputs/out\.txt does not match record\.json"):
        store.load(bad)
    no_outputs = [e for e in entries if not e.path.startswith("outputs/")]
    missing = repo.write_commit(repo.write_tree(no_outputs), [], "no outputs")
    with pytest.raises(UnsafeRecord, match=r"outputs/out\.txt does not match"):
        store.load(missing)
