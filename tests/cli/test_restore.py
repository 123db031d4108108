"""`gitcache restore STEP|RECORD [--commit REV] [-p NAME=VALUE] [--force]`."""

from __future__ import annotations

from tests.helpers import Repo


def test_restore_by_params_then_back(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("run", "-p", "size=3").exit_code == 0
    assert chain.read("out/count.txt").strip() == "4"
    result = chain.run("restore", "count", "-p", "size=100")
    assert result.exit_code == 0, result.stderr
    assert "restored out/count.txt" in result.stdout
    assert chain.read("out/count.txt").strip() == "101"
    # upstream data.txt still holds size=3 content: count's record was found through the
    # overlay of make's record, not the worktree
    assert chain.read("out/data.txt").count("\n") == 4


def test_restore_by_record_id(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    old = chain.refs()["refs/gitcache/step/make"]
    assert chain.run("run", "make", "-p", "word=bye").exit_code == 0
    assert chain.read("out/data.txt").startswith("bye")
    assert chain.run("restore", old[:8]).exit_code == 0
    assert chain.read("out/data.txt").startswith("hello")


def test_restore_at_an_older_commit(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    first = chain.head()
    chain.write("gitcache.toml", chain.read("gitcache.toml").replace("size = 100", "size = 5"))
    chain.commit("smaller")
    assert chain.run("run", "make").exit_code == 0
    assert chain.read("out/data.txt").count("\n") == 6
    later = chain.commit("later, no record made here")
    result = chain.run("restore", "make", "--commit", first[:7])
    assert result.exit_code == 0, result.stderr
    assert chain.read("out/data.txt").count("\n") == 101
    assert chain.run("restore", "make", "--commit", later).exit_code == 0  # ancestor's record
    assert chain.read("out/data.txt").count("\n") == 6


def test_restore_commit_without_records(chain: Repo) -> None:
    result = chain.run("restore", "make", "--commit", "HEAD")
    assert result.exit_code == 2
    assert "gitcache: error: step 'make' has no record made at HEAD or before it" in result.stderr


def test_restore_over_modified_file_asks_for_force(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    chain.write("out/data.txt", "my precious edits\n")
    result = chain.run("restore", "make")
    assert result.exit_code == 2
    assert "gitcache: error: restore would overwrite out/data.txt" in result.stderr
    assert "--force" in result.stderr
    assert chain.read("out/data.txt") == "my precious edits\n"
    forced = chain.run("restore", "make", "--force")
    assert forced.exit_code == 0
    assert chain.read("out/data.txt").startswith("hello")


def test_restore_unknown_record(chain: Repo) -> None:
    result = chain.run("restore", "0123456789")
    assert result.exit_code == 2
    assert "gitcache: error: no record or step named '0123456789'" in result.stderr


def test_restore_step_without_current_record(chain: Repo) -> None:
    result = chain.run("restore", "make")
    assert result.exit_code == 2
    assert "step 'make' has no record for its current signature" in result.stderr


def test_restore_params_with_record_id_is_usage_error(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    sig = chain.refs()["refs/gitcache/step/make"]
    result = chain.run("restore", sig[:10], "-p", "size=3")
    assert result.exit_code == 2
    assert "is not a step" in result.stderr


def test_restore_brings_back_removed_outputs(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("remove", "--outputs", "make").exit_code == 0
    assert chain.run("restore", "make").exit_code == 0
    assert chain.read("out/data.txt").startswith("hello")
    status = chain.run("status")
    assert "removed" not in status.stdout
