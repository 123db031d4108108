"""`gitcache log` filters, `gitcache show`, `gitcache diff`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.helpers import Repo
from tests.records import write_record


def _iso(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def test_log_newest_first_and_step_filter(chain: Repo) -> None:
    write_record(chain.root, "make", "a" * 64, _iso(3))
    write_record(chain.root, "make", "b" * 64, _iso(1))
    write_record(chain.root, "count", "c" * 64, _iso(2))
    lines = chain.run("log").stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["b" * 12, "c" * 12, "a" * 12]
    only = chain.run("log", "make").stdout.splitlines()
    assert [line.split()[0] for line in only] == ["make", "make"]
    assert len(chain.run("log", "-n", "1").stdout.splitlines()) == 1


def test_log_since(chain: Repo) -> None:
    write_record(chain.root, "make", "a" * 64, _iso(10))
    write_record(chain.root, "make", "b" * 64, _iso(1))
    recent = chain.run("log", "--since", "2d").stdout
    assert "b" * 12 in recent and "a" * 12 not in recent
    dated = chain.run("log", "--since", (datetime.now(UTC) - timedelta(days=20)).date().isoformat())
    assert dated.stdout.count("make") == 2


def test_log_param_filter_typed_like_the_workflow(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    assert chain.run("run", "make", "-p", "size=3").exit_code == 0
    result = chain.run("log", "--param", "size=3", "--json")
    found = json.loads(result.stdout)
    assert [r["params"]["size"] for r in found] == [3]
    both = json.loads(chain.run("log", "--param", "word=hello", "--json").stdout)
    assert len(both) == 2
    assert json.loads(chain.run("log", "--param", "size=4", "--json").stdout) == []


def test_log_json_fields(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    found = json.loads(chain.run("log", "--json").stdout)
    assert {r["step"] for r in found} == {"make", "count"}
    assert set(found[0]) >= {"record", "signature", "source_commit", "started_at", "duration"}
    assert all(r["source_commit"] == chain.head() for r in found)


def test_log_bad_filters(chain: Repo) -> None:
    bad_since = chain.run("log", "--since", "yesterday-ish")
    assert bad_since.exit_code == 2
    assert "gitcache: error: --since 'yesterday-ish'" in bad_since.stderr
    bad_param = chain.run("log", "--param", "size")
    assert bad_param.exit_code == 2
    assert "gitcache: error: --param 'size': expected NAME=VALUE" in bad_param.stderr
    bad_type = chain.run("log", "--param", "size=big")
    assert bad_type.exit_code == 2 and "expected int" in bad_type.stderr
    unknown = chain.run("log", "nosuchstep")
    assert unknown.exit_code == 2 and "unknown step 'nosuchstep'" in unknown.stderr


def test_log_lists_records_of_a_step_no_longer_in_the_workflow(chain: Repo) -> None:
    write_record(chain.root, "retired", "d" * 64, _iso(1))
    result = chain.run("log", "retired")
    assert result.exit_code == 0 and "retired" in result.stdout


def test_log_skips_a_corrupt_record_with_a_warning(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    tree = chain.git("mktree", input="").strip()
    bogus = chain.git("commit-tree", tree, "-m", "not a record").strip()
    chain.git("update-ref", "refs/gitcache/sig/ff/" + "f" * 64, bogus)
    result = chain.run("log")
    assert result.exit_code == 0
    assert result.stdout.count("make") == 1
    assert "ignoring unreadable record" in result.stderr


def test_show_components_outputs_and_logs(make) -> None:  # type: ignore[no-untyped-def]
    repo = make(
        {
            "gitcache.toml": '[params]\nn = 2\n[steps.hi]\noutputs = ["hi.txt"]\n'
            'run = "echo to-out; echo to-err >&2; seq {n} > hi.txt"\nenv = ["LC_ALL"]\n'
        }
    )
    assert repo.run("run").exit_code == 0
    shown = repo.run("show", "hi")
    assert shown.exit_code == 0
    out = shown.stdout
    blob = repo.blob("hi.txt")
    assert f"  {blob}           4  hi.txt" in out
    assert "  n = 2" in out and "LC_ALL = 'C'" in out
    assert "stdout     7 bytes" in out and "stderr     7 bytes" in out
    assert repo.run("show", "hi", "--stdout").stdout == "to-out\n"
    assert repo.run("show", "hi", "--stderr").stdout == "to-err\n"
    data = json.loads(repo.run("show", "hi", "--json").stdout)
    assert data["outputs"][0]["blob"] == blob and data["components"]["params"] == {"n": 2}


def test_show_unknown_and_ambiguous(chain: Repo) -> None:
    write_record(chain.root, "make", "abcd1" + "0" * 59)
    write_record(chain.root, "make", "abcd2" + "0" * 59)
    ambiguous = chain.run("show", "abcd")
    assert ambiguous.exit_code == 2 and "record id 'abcd' is ambiguous" in ambiguous.stderr
    unknown = chain.run("show", "beef0000")
    assert unknown.exit_code == 2 and "no record or step named 'beef0000'" in unknown.stderr
    never = chain.run("show", "count")
    assert never.exit_code == 2 and "step 'count' has no record yet" in never.stderr


def test_diff_params_and_outputs(chain: Repo) -> None:
    assert chain.run("run", "make").exit_code == 0
    first = chain.refs()["refs/gitcache/step/make"]
    assert chain.run("run", "make", "-p", "size=3").exit_code == 0
    result = chain.run("diff", first[:10], "make")
    assert result.exit_code == 0, result.stderr
    assert "param size changed (100 -> 3)" in result.stdout
    assert "output out/data.txt differs" in result.stdout
    data = json.loads(chain.run("diff", first[:10], "make", "--json").stdout)
    assert data["same"] is False and data["signature"] == ["param size changed (100 -> 3)"]
    same = chain.run("diff", "make", "make")
    assert "same signature components and outputs" in same.stdout


def test_diff_unknown_record(chain: Repo) -> None:
    result = chain.run("diff", "make", "count")
    assert result.exit_code == 2
    assert "step 'make' has no record yet" in result.stderr
