from __future__ import annotations

import json

from tests.helpers import Repo


def test_log_lists_newest_first_and_show_prints_a_record(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    assert chain.run("run", "-p", "size=5").exit_code == 0
    listed = json.loads(chain.run("log", "--json").stdout)
    assert len(listed) == 4
    assert [r["started_at"] for r in listed] == sorted(
        (r["started_at"] for r in listed), reverse=True
    )
    assert {r["source_commit"] for r in listed} == {chain.head()}
    only = json.loads(chain.run("log", "make", "--json", "-n", "1").stdout)
    assert len(only) == 1 and only[0]["step"] == "make"
    text = chain.run("log").stdout.splitlines()
    assert len(text) == 4 and text[0].split()[0] in ("make", "count")

    shown = chain.run("show", "make")
    assert shown.exit_code == 0
    assert "step       make" in shown.stdout
    assert "size = 5" in shown.stdout  # latest record of make used size=5
    as_json = json.loads(chain.run("show", "make", "--json").stdout)
    assert as_json["step"] == "make" and as_json["outputs"][0]["path"] == "out/data.txt"
    by_sig = chain.run("show", as_json["signature"][:8], "--json")
    assert json.loads(by_sig.stdout)["record"] == as_json["record"]


def test_show_unknown_record(chain: Repo) -> None:
    result = chain.run("show", "nothing-like-this")
    assert result.exit_code == 2
    assert "no record or step named 'nothing-like-this' (steps: make, count)" in result.stderr


def test_log_unknown_step(chain: Repo) -> None:
    result = chain.run("log", "nope")
    assert result.exit_code == 2
    assert "unknown step 'nope'" in result.stderr
