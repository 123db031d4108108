"""`gitcache remove`: signatures (refs) only, and `--outputs` (SoS `remove -z`)."""

from __future__ import annotations

from tests.helpers import Repo
from tests.records import write_record


def _sig_refs(repo: Repo) -> dict[str, str]:
    return {k: v for k, v in repo.refs().items() if k.startswith("refs/gitcache/sig/")}


def test_remove_step_drops_its_records_and_keeps_files(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("run", "-p", "size=3").exit_code == 0
    before = chain.read("out/data.txt")
    result = chain.run("remove", "make")
    assert result.exit_code == 0, result.stderr
    assert "removed 2 records" in result.stderr
    refs = chain.refs()
    assert "refs/gitcache/step/make" not in refs and "refs/gitcache/step/count" in refs
    assert len(_sig_refs(chain)) == 2  # count's two records stay
    assert chain.read("out/data.txt") == before
    assert "make: running" in chain.run("run").stderr


def test_remove_one_record_moves_step_ref_to_newest_remaining(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    first = chain.refs()["refs/gitcache/step/make"]
    assert chain.run("run", "make", "-p", "size=3").exit_code == 0
    second = chain.refs()["refs/gitcache/step/make"]
    assert chain.run("remove", second[:10]).exit_code == 0
    assert chain.refs()["refs/gitcache/step/make"] == first
    assert second not in chain.refs().values()


def test_remove_dry_run_lists_and_keeps(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    refs = chain.refs()
    result = chain.run("remove", "--all", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.count("would remove record") == 2
    assert chain.refs() == refs
    assert chain.run("remove", "--all").exit_code == 0
    assert chain.refs() == {}
    assert (chain.root / "out/count.txt").exists()


def test_remove_needs_a_target(chain: Repo) -> None:
    result = chain.run("remove")
    assert result.exit_code == 2
    assert "gitcache: error: name the steps or records to remove, or give --all" in result.stderr


def test_remove_unknown_record_id(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    result = chain.run("remove", "abcdef12")
    assert result.exit_code == 2
    assert "gitcache: error: no record or step named 'abcdef12'" in result.stderr


def test_remove_ambiguous_short_id_lists_candidates(chain: Repo) -> None:
    one = write_record(chain.root, "make", "abcd1" + "0" * 59)
    two = write_record(chain.root, "make", "abcd2" + "0" * 59)
    refs = chain.refs()
    result = chain.run("remove", "abcd")
    assert result.exit_code == 2
    assert "gitcache: error: record id 'abcd' is ambiguous" in result.stderr
    assert one.commit[:12] in result.stderr and two.commit[:12] in result.stderr
    assert chain.refs() == refs
    assert chain.run("remove", "abcd2").exit_code == 0
    assert len(_sig_refs(chain)) == 1


def test_remove_outputs_deletes_files_and_run_does_not_restore(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    refs = chain.refs()
    result = chain.run("remove", "--outputs", "make")
    assert result.exit_code == 0, result.stderr
    assert "deleted out/data.txt" in result.stdout
    assert not (chain.root / "out/data.txt").exists()
    assert chain.refs() == refs  # signatures stay
    status = chain.run("status")
    assert "make   up to date" in status.stdout and "removed from the worktree" in status.stdout
    assert "count  up to date" in status.stdout
    again = chain.run("run")
    assert again.exit_code == 0
    assert "outputs kept in the store" in again.stderr and "count: up to date" in again.stderr
    assert not (chain.root / "out/data.txt").exists()  # not needed, not restored


def test_removed_outputs_come_back_when_a_reader_must_run(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    data = chain.read("out/data.txt")
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    (chain.root / "out/count.txt").unlink()
    # count's record still matches: restoring count needs no input
    assert chain.run("run").exit_code == 0
    assert not (chain.root / "out/data.txt").exists()
    assert chain.run("remove", "count").exit_code == 0  # now count must run
    result = chain.run("run")
    assert result.exit_code == 0, result.stderr
    assert "count: restoring its inputs" in result.stderr and "count: running" in result.stderr
    assert chain.read("out/data.txt") == data
    assert chain.read("out/count.txt").strip() == "101"


def test_run_naming_the_step_restores_its_removed_outputs(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    result = chain.run("run", "make")
    assert result.exit_code == 0
    assert "make: restored from git" in result.stderr
    assert (chain.root / "out/data.txt").exists()


def test_remove_outputs_refuses_without_record(chain: Repo) -> None:
    chain.write("out/data.txt", "by hand\n")
    result = chain.run("remove", "--outputs", "make")
    assert result.exit_code == 2
    assert "gitcache: error: step 'make': its outputs are not in the store" in result.stderr
    assert chain.read("out/data.txt") == "by hand\n"


def test_remove_outputs_refuses_modified_output(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    chain.write("out/count.txt", "edited\n")
    result = chain.run("remove", "--outputs", "count")
    assert result.exit_code == 2
    assert "output out/count.txt differs from its record" in result.stderr
    assert chain.read("out/count.txt") == "edited\n"


def test_remove_outputs_dry_run_deletes_nothing(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    result = chain.run("remove", "--outputs", "--all", "-n")
    assert result.exit_code == 0
    assert "would delete out/data.txt" in result.stdout
    assert "would delete out/count.txt" in result.stdout
    assert (chain.root / "out/data.txt").exists()


def test_manually_deleted_output_is_restored_eagerly(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    (chain.root / "out/data.txt").unlink()  # not through gitcache: a normal restore
    result = chain.run("run")
    assert "make: restored from git" in result.stderr
    assert (chain.root / "out/data.txt").exists()


def test_assert_accepts_outputs_removed_on_purpose(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    result = chain.run("run", "-s", "assert")
    assert result.exit_code == 0, result.stderr
    assert not (chain.root / "out/data.txt").exists()


def test_remove_refuses_to_drop_the_only_copy_of_removed_outputs(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    refs = chain.refs()
    result = chain.run("remove", "make")
    assert result.exit_code == 2
    assert "holds the only copy of out/data.txt" in result.stderr
    assert chain.refs() == refs
    gc = chain.run("gc", "--keep", "0", "--all")
    assert gc.exit_code == 0
    assert chain.refs()["refs/gitcache/step/make"] == refs["refs/gitcache/step/make"]
    assert chain.run("restore", "make").exit_code == 0
    assert chain.run("remove", "make").exit_code == 0


def test_dry_run_and_status_json_with_removed_outputs(chain: Repo) -> None:
    import json

    assert chain.run("run").exit_code == 0
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    dry = chain.run("run", "-n")
    assert "make: up to date (outputs kept in the store)" in dry.stderr
    assert "count: up to date" in dry.stderr
    states = {s["step"]: s for s in json.loads(chain.run("status", "--json").stdout)}
    assert states["make"]["state"] == "up-to-date" and states["count"]["state"] == "up-to-date"
    assert "kept in the store" in states["make"]["reasons"][0]
    chain.write("out/data.txt", "made again by hand\n")  # the registry no longer applies
    status = chain.run("status")
    assert "make   restorable from cache" in status.stdout
