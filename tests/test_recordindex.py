"""The record index: summaries cached by commit id, rebuilt from git when missing."""

from __future__ import annotations

import json
from collections.abc import Callable

from gitcache.gitrepo import GitRepo
from gitcache.recordindex import INDEX_FILE, INDEXED_OUTPUTS_MAX, RecordIndex
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
    assert index_file.read_text().startswith('{"version":2')


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


def _many_outputs(make: Callable[..., Repo], count: int) -> Repo:
    run = f"mkdir -p out && for i in $(seq {count}); do echo $i > out/f$i; done"
    return make({"gitcache.toml": f'[steps.gen]\noutputs = ["out"]\nrun = "{run}"\n'})


def test_a_record_of_many_outputs_keeps_them_out_of_the_index(make: Callable[..., Repo]) -> None:
    """Each recording run reads and rewrites the index whole: a 50,000-file record's
    outputs in it would make every run slower by ~3 MB of JSON per such record."""
    repo = _many_outputs(make, INDEXED_OUTPUTS_MAX + 1)
    assert repo.run("run").exit_code == 0
    git = GitRepo.discover(repo.root)
    store = RecordStore(git)
    (summary,) = store.summaries()
    assert summary.outputs is None
    assert (git.state_dir / INDEX_FILE).stat().st_size < 2000
    outputs = store.summary_outputs(summary)
    assert len(outputs) == INDEXED_OUTPUTS_MAX + 1
    assert outputs["out/f7"] == repo.blob("out/f7")
    (again,) = RecordStore(git).summaries()
    assert again == summary


def test_an_older_gitcache_never_reads_a_summary_without_outputs(
    make: Callable[..., Repo],
) -> None:
    """Versions before the limit read record-index-v1.json's rows' outputs as a dict
    (`restore` and `run` then failed with an AttributeError): a summary without them
    goes to a file of its own, and the old one (outputs and all) goes."""
    repo = _many_outputs(make, INDEXED_OUTPUTS_MAX + 1)
    git = GitRepo.discover(repo.root)
    old = git.state_dir / "record-index-v1.json"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text(json.dumps({"version": 1, "records": {}}))
    assert repo.run("run").exit_code == 0
    assert not old.exists()
    index = json.loads((git.state_dir / INDEX_FILE).read_text())
    assert index["version"] == 2 and [row[8] for row in index["records"].values()] == [None]
    assert RecordIndex(git.state_dir).get(next(iter(index["records"]))) is not None


def test_the_only_copy_of_removed_outputs_is_kept_for_a_record_of_many(
    make: Callable[..., Repo],
) -> None:
    repo = _many_outputs(make, INDEXED_OUTPUTS_MAX + 1)
    assert repo.run("run").exit_code == 0
    assert repo.run("remove", "--outputs", "gen").exit_code == 0
    refs = repo.refs()
    result = repo.run("remove", "gen")
    assert result.exit_code == 2
    assert "holds the only copy of out/f" in result.stderr
    assert repo.refs() == refs
    assert repo.run("restore", "gen").exit_code == 0
    assert repo.read("out/f1001") == "1001\n"


def test_a_record_of_many_outputs_with_a_bad_blob_id_is_not_listed(
    make: Callable[..., Repo],
) -> None:
    """Its summary drops the outputs, but only once they were checked: a record.json
    (of format 2, which lists them) whose outputs are not path -> blob id strings is as
    unreadable as with few."""
    repo = _many_outputs(make, INDEXED_OUTPUTS_MAX + 1)
    assert repo.run("run").exit_code == 0
    good = repo.refs("refs/gitcache/sig/")
    (commit,) = good.values()
    data = json.loads(repo.git("show", f"{commit}:record.json"))
    del data["chunked"]
    listed = repo.git("ls-tree", "-r", f"{commit}:outputs").splitlines()
    data["outputs"] = [
        {"path": line.split("\t")[1], "blob": line.split()[2], "mode": 33188, "size": 2}
        for line in listed
    ]
    data["format"] = 2
    data["outputs"][0]["blob"] = 5
    data["signature"] = "f" * 64
    blob = repo.git("hash-object", "-w", "--stdin", input=json.dumps(data)).strip()
    entries = [
        e for e in repo.git("ls-tree", commit).splitlines() if not e.endswith("\trecord.json")
    ]
    tree = repo.git(
        "mktree", input="\n".join([*entries, f"100644 blob {blob}\trecord.json"]) + "\n"
    )
    forged = repo.git("commit-tree", tree.strip(), "-m", "forged").strip()
    repo.git("update-ref", "refs/gitcache/sig/ff/" + "f" * 64, forged)
    listed = repo.run("log", "--json")
    assert [r["record"] for r in json.loads(listed.stdout)] == list(good.values())
    assert f"ignoring unreadable record: invalid record.json in record {forged[:12]}" in (
        listed.stderr
    )
