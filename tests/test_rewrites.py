"""post-rewrite: records made at a rewritten commit answer for the new one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitcache.gitrepo import GitRepo
from gitcache.rewrites import CommitRecords, Rewrite, RewriteMap, record_rewrites, rewritten_ref
from tests.helpers import Repo
from tests.hookutil import (  # noqa: F401 (the fixture is used through pytestmark)
    FILES,
    assert_survives_gc,
    commit_and_record,
    hooks_import_this_checkout,
    mappings,
    project,
    record_of,
    records_for,
)

pytestmark = pytest.mark.usefixtures("hooks_import_this_checkout")


AMENDS = {
    "-m": (["commit", "-q", "--amend", "-m", "reworded"], {}),
    "--no-edit": (["commit", "-q", "--amend", "--no-edit"], {}),
    "editor": (["commit", "-q", "--amend"], {"GIT_EDITOR": "sed -i 1s/.*/edited/"}),
}


@pytest.mark.parametrize("how", list(AMENDS))
def test_amend_carries_records_over(
    make: Callable[..., Repo], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make)
    old = commit_and_record(repo, "v1\n")
    record = record_of(repo, old)
    args, env = AMENDS[how]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    repo.write("more.txt", "amended in\n")  # so that even --no-edit makes a new commit
    repo.git("add", "more.txt")
    repo.git(*args)
    new = repo.head()
    assert new != old
    assert mappings(repo) == {(old, new)}
    assert records_for(repo, "HEAD") == [(record, True)]
    assert records_for(repo, old) == [(record, False)]
    line = repo.run("log", "--commit", "HEAD").stdout.strip()
    assert line.startswith("build") and line.endswith("carried over") and old[:7] in line
    assert f"rewritten  as {new[:12]}" in repo.run("show", record[:12]).stdout
    assert_survives_gc(repo)
    assert records_for(repo, "HEAD") == [(record, True)]


def test_amend_twice_chains_the_carry_over(make: Callable[..., Repo]) -> None:
    repo = project(make)
    first = commit_and_record(repo, "v1\n")
    record = record_of(repo, first)
    repo.git("commit", "-q", "--amend", "-m", "second")
    second = repo.head()
    repo.git("commit", "-q", "--amend", "-m", "third")
    third = repo.head()
    assert mappings(repo) == {(first, second), (second, third)}
    assert records_for(repo, third) == [(record, True)]
    assert_survives_gc(repo)
    assert records_for(repo, third) == [(record, True)]


def test_amend_of_a_commit_without_records_stores_nothing(make: Callable[..., Repo]) -> None:
    repo = project(make)
    commit_and_record(repo, "v1\n")
    repo.commit("no records here")
    repo.git("commit", "-q", "--amend", "--allow-empty", "-m", "reworded")
    assert mappings(repo) == set()


def test_allow_policy_stores_no_mapping(make: Callable[..., Repo]) -> None:
    repo = project(make, policy="allow")
    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "reworded")
    assert mappings(repo) == set()
    assert records_for(repo, "HEAD") == []
    assert [r for r, _ in records_for(repo, old)] == [record_of(repo, old)]


def test_rebase_reword_squash_drop(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make)
    base = repo.head()
    a = commit_and_record(repo, "a\n")
    b = commit_and_record(repo, "b\n")
    c = commit_and_record(repo, "c\n")
    records = {x: record_of(repo, x) for x in (a, b, c)}
    monkeypatch.setenv(
        "GIT_SEQUENCE_EDITOR", "sed -i -e 1s/^pick/reword/ -e 2s/^pick/squash/ -e 3s/^pick/drop/"
    )
    monkeypatch.setenv("GIT_EDITOR", "sed -i 1s/.*/squashed/")
    repo.git("rebase", "-q", "-i", base)
    new = repo.head()
    assert repo.git("rev-parse", "HEAD^").strip() == base
    # one mapping per rewritten commit, to the final commit: none for the rebase's own amends
    assert mappings(repo) == {(a, new), (b, new)}
    assert sorted(records_for(repo, new)) == sorted([(records[a], True), (records[b], True)])
    assert records_for(repo, c) == [(records[c], False)]  # dropped, still listed at its commit
    assert_survives_gc(repo)
    assert sorted(records_for(repo, new)) == sorted([(records[a], True), (records[b], True)])
    assert len(repo.run("log").stdout.splitlines()) == 3


def test_fixup_and_autosquash(make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = project(make)
    base = repo.head()
    a = commit_and_record(repo, "a\n")
    record = record_of(repo, a)
    repo.write("extra.txt", "fix\n")
    repo.git("add", "extra.txt")
    repo.git("commit", "-q", "--fixup", a)
    fixup = repo.head()
    monkeypatch.setenv("GIT_SEQUENCE_EDITOR", ":")
    repo.git("rebase", "-q", "-i", "--autosquash", base)
    new = repo.head()
    assert repo.git("rev-parse", "HEAD^").strip() == base
    assert mappings(repo) == {(a, new)}  # the fixup commit had no records of its own
    assert fixup != new
    assert records_for(repo, new) == [(record, True)]
    assert_survives_gc(repo)


def test_rebase_edit_then_amend_uses_the_final_mapping(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make)
    base = repo.head()
    a = commit_and_record(repo, "a\n")
    record = record_of(repo, a)
    commit_and_record(repo, "b\n")
    monkeypatch.setenv("GIT_SEQUENCE_EDITOR", "sed -i 1s/^pick/edit/")
    repo.git("rebase", "-q", "-i", base)
    repo.git("commit", "-q", "--amend", "-m", "a amended while editing")
    assert mappings(repo) == set()  # the amend inside the rebase is not final
    repo.git("rebase", "--continue")
    a_new = repo.git("rev-parse", "HEAD^").strip()
    assert (a, a_new) in mappings(repo)
    assert records_for(repo, a_new) == [(record, True)]


def test_cherry_pick_is_not_a_rewrite(make: Callable[..., Repo]) -> None:
    repo = project(make)
    repo.git("checkout", "-q", "-b", "side")
    picked = commit_and_record(repo, "side\n")
    record = record_of(repo, picked)
    repo.git("checkout", "-q", "main")
    repo.commit("main moves on")
    repo.git("cherry-pick", picked)
    assert mappings(repo) == set()
    assert records_for(repo, picked) == [(record, False)]
    assert records_for(repo, "HEAD") == []
    assert_survives_gc(repo)


def test_linked_worktree(make: Callable[..., Repo]) -> None:
    repo = project(make)
    repo.git("worktree", "add", "-q", "-b", "wt", str(repo.root.parent / "linked"))
    linked = Repo(repo.root.parent / "linked")
    assert "installed" in linked.run("hooks", "status").stdout
    old = commit_and_record(linked, "in the worktree\n")
    record = record_of(linked, old)
    linked.git("commit", "-q", "--amend", "-m", "amended in the worktree")
    assert records_for(linked, "HEAD") == [(record, True)]
    assert records_for(repo, "wt") == [(record, True)]
    assert_survives_gc(repo)


def test_core_hooks_path(make: Callable[..., Repo]) -> None:
    repo = make(FILES)
    repo.git("config", "core.hooksPath", ".githooks")
    assert repo.run("hooks", "install").exit_code == 0
    assert (repo.root / ".githooks" / "post-rewrite").exists()
    assert not (repo.root / ".git" / "hooks" / "post-rewrite").exists()
    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "reworded")
    assert (old, repo.head()) in mappings(repo)
    assert records_for(repo, "HEAD") == [(record_of(repo, old), True)]
    assert_survives_gc(repo)


# -- in process ------------------------------------------------------------------------


def test_rewrite_map_origins_are_transitive() -> None:
    a, b, c, d, x = (ch * 40 for ch in "abcdx")
    rewrites = RewriteMap([Rewrite(a, b), Rewrite(b, c), Rewrite(d, c), Rewrite(x, a)])
    assert rewrites.origins(c) == {a, b, d, x}
    assert rewrites.origins(a) == {x}
    assert rewrites.successors(b) == [c]


def test_rewrite_map_ignores_refs_that_are_not_pairs(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    head = repo.head()
    repo.git("update-ref", "refs/gitcache/rewritten/junk/x", head)
    repo.git("update-ref", rewritten_ref(head, head), head)
    assert RewriteMap.load(GitRepo.discover(repo.root)).pairs == [Rewrite(head, head)]


def test_record_rewrites_keeps_both_commits_reachable(make: Callable[..., Repo]) -> None:
    repo = make(FILES)  # no hooks: the pairs are given by hand
    base = repo.head()
    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "no hooks installed here")
    new = repo.head()
    git = GitRepo.discover(repo.root)
    pairs = [Rewrite(old, new), Rewrite(base, new)]  # the second: `base` has no records
    assert record_rewrites(git, pairs, "amend") == [Rewrite(old, new)]
    assert record_rewrites(git, pairs, "amend") == []  # idempotent
    target = repo.refs()[rewritten_ref(old, new)]
    assert repo.git("rev-list", "--parents", "-n1", target).split()[1:] == [old, new]
    assert '"kind": "amend"' in repo.git("show", f"{target}:rewrite.json")
    index = CommitRecords(git)
    assert index.sources(new) == [old] and index.records(new) == [record_of(repo, old)]


def test_log_commit_unknown_revision(make: Callable[..., Repo]) -> None:
    repo = make(FILES)
    result = repo.run("log", "--commit", "no-such-rev")
    assert result.exit_code == 2
    assert result.stderr == "gitcache: error: unknown revision: no-such-rev\n"
