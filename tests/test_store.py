"""The record store: objects first, refs last, compare-and-swap, validation on load."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import RecordNotFound, UnsafeRecord
from gitcache.gitrepo import MODE_FILE, GitRepo, RefConflict, RefUpdate, TreeEntry
from gitcache.store import NewRecord, RecordStore, sig_ref, step_ref
from tests import records
from tests.helpers import Repo


def new_record(
    repo: GitRepo, tmp: Path, sig: str, content: bytes = b"x\n", step: str = "a"
) -> NewRecord:
    return records.new_record(repo, tmp, step, sig, content=content, path="o.txt")


SIG = "ab" + "0" * 62
SIG2 = "cd" + "1" * 62


@pytest.fixture
def store(make: Callable[..., Repo]) -> tuple[Repo, RecordStore]:
    repo = make({"README": "x"})
    return repo, RecordStore(GitRepo.discover(repo.root))


def test_write_then_lookup(store: tuple[Repo, RecordStore], tmp_path: Path) -> None:
    repo, s = store
    stored = s.write(new_record(s.repo, tmp_path, SIG), s.repo.head_commit())
    assert repo.refs() == {sig_ref(SIG): stored.commit, step_ref("a"): stored.commit}
    assert sig_ref(SIG) == f"refs/gitcache/sig/ab/{SIG}"
    found = s.lookup(SIG)
    assert found is not None and found.record == stored.record
    assert s.log(found, "stdout") == b"stdout"
    assert s.lookup(SIG2) is None
    repo.git("fsck", "--strict")


def test_an_existing_record_wins_without_force(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    first = s.write(new_record(s.repo, tmp_path, SIG, b"first\n"), None)
    second = s.write(new_record(s.repo, tmp_path, SIG, b"second\n"), None)
    assert second.commit == first.commit
    replaced = s.write(new_record(s.repo, tmp_path, SIG, b"third\n"), None, replace=True)
    assert replaced.commit != first.commit
    assert s.repo.ref_target(sig_ref(SIG)) == replaced.commit


def test_compare_and_swap_refuses_a_lost_update(store: tuple[Repo, RecordStore]) -> None:
    _repo, s = store
    head = s.repo.head_commit()
    assert head is not None
    s.repo.update_refs([RefUpdate("refs/gitcache/test", head, None)])
    with pytest.raises(RefConflict):
        s.repo.update_refs([RefUpdate("refs/gitcache/test", head, None)])
    with pytest.raises(RefConflict):
        s.repo.update_refs(
            [
                RefUpdate("refs/gitcache/other", head, None),
                RefUpdate("refs/gitcache/test", None, "0" * 40),
            ]
        )
    # All or nothing: the first update of the failed transaction did not happen.
    assert s.repo.ref_target("refs/gitcache/other") is None


def test_corrupt_record_is_a_miss_with_a_warning(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    warnings: list[str] = []
    s2 = RecordStore(s.repo, warnings.append)
    blob = s.repo.write_blob(b'{"step": "../x"}')
    tree = s.repo.write_tree([TreeEntry("record.json", blob, MODE_FILE)])
    commit = s.repo.write_commit(tree, [], "bad")
    s.repo.update_refs([RefUpdate(sig_ref(SIG), commit, None)])
    assert s2.lookup(SIG) is None
    assert warnings and "invalid record.json" in warnings[0]


def test_record_whose_tree_disagrees_is_refused(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    """Formats 1 and 2 list every output in record.json: the tree must agree (from
    format 3 on the tree is the list, and cannot disagree)."""
    _repo, s = store
    record = dataclasses.replace(new_record(s.repo, tmp_path, SIG).record, format=2)
    listed = s.repo.write_blob(record.to_json())
    assert b'"outputs"' in s.repo.read_blob(listed)
    other = s.repo.write_blob(b"not what record.json says\n")
    tree = s.repo.write_tree(
        [TreeEntry("record.json", listed, MODE_FILE), TreeEntry("outputs/o.txt", other, MODE_FILE)]
    )
    commit = s.repo.write_commit(tree, [], "tampered")
    with pytest.raises(UnsafeRecord, match=r"does not match record\.json"):
        s.load(commit)


def test_resolve_by_step_prefix_and_ambiguity(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    a = s.write(new_record(s.repo, tmp_path, "abcd1" + "0" * 59), None)
    s.write(new_record(s.repo, tmp_path, "abcd2" + "0" * 59, b"y", step="b"), None)
    assert s.resolve("a", ["a", "b"]).commit == a.commit
    assert s.resolve("abcd1", ["a", "b"]).commit == a.commit
    assert s.resolve(a.commit[:10], []).commit == a.commit
    with pytest.raises(RecordNotFound, match="ambiguous"):
        s.resolve("abcd", ["a", "b"])
    with pytest.raises(RecordNotFound, match="no record or step named 'zzz' \\(steps: a, b\\)"):
        s.resolve("zzz", ["a", "b"])


def test_a_corrupt_record_is_replaced_by_a_good_one(
    store: tuple[Repo, RecordStore], tmp_path: Path
) -> None:
    _repo, s = store
    blob = s.repo.write_blob(b"{}")
    commit = s.repo.write_commit(
        s.repo.write_tree([TreeEntry("record.json", blob, MODE_FILE)]), [], "bad"
    )
    s.repo.update_refs([RefUpdate(sig_ref(SIG), commit, None)])
    stored = s.write(new_record(s.repo, tmp_path, SIG), None)
    assert stored.commit != commit
    assert s.repo.ref_target(sig_ref(SIG)) == stored.commit
    assert s.lookup(SIG) is not None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("signature", "a" * 64 + "\n", "signature: Value error, not a signature"),
        ("signature", "A" * 64, "signature: Value error, not a signature"),
        ("signature", "a" * 63, "signature: Value error, not a signature"),
        ("source_commit", "b" * 40 + "\n", "source_commit: Value error, not a git object id"),
        ("source_commit", "b" * 41, "source_commit: Value error, not a git object id"),
        ("source_commit", "B" * 40, "source_commit: Value error, not a git object id"),
    ],
)
def test_record_ids_must_be_exact_lowercase_hex(field: str, value: str, message: str) -> None:
    import json

    from gitcache.errors import UnsafeRecord
    from gitcache.record import parse_record

    good = {
        "step": "make",
        "signature": "a" * 64,
        "components": {
            "format": 2,
            "kind": "shell",
            "code": "true",
            "params": {},
            "inputs": {"in.txt": "c" * 64},
            "outputs": [],
            "env": {},
        },
        "command": "true",
        "outputs": [],
        "source_commit": "b" * 40,
        "dirty": False,
        "started_at": "2026-01-01T00:00:00+00:00",
        "duration": 0.0,
        "exit_status": 0,
        "host": "h",
        "gitcache_version": "0",
    }
    assert (
        parse_record(json.dumps(good).encode(), "r", list).signature == "a" * 64
    )  # sha256 ids too
    with pytest.raises(UnsafeRecord, match=message.replace("(", r"\(")):
        parse_record(json.dumps({**good, field: value}).encode(), "r", list)
