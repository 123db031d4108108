from __future__ import annotations

from tests.helpers import Repo


def test_first_run_records_then_skips(chain: Repo) -> None:
    first = chain.run("run")
    assert first.exit_code == 0, first.stderr
    assert chain.read("out/count.txt").strip() == "101"
    refs = chain.refs()
    assert "refs/gitcache/step/make" in refs and "refs/gitcache/step/count" in refs
    assert len([r for r in refs if r.startswith("refs/gitcache/sig/")]) == 2
    second = chain.run("run")
    assert second.exit_code == 0
    assert "up to date" in second.stderr and "running" not in second.stderr
    assert chain.refs() == refs
