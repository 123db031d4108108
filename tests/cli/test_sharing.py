"""Sharing records through git remotes: a bare repository and a real `git daemon`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Repo, runs
from tests.remotes import bare, clone, closed_url, git_daemon

COUNTED = """\
[params]
n = 1

[steps.make]
outputs = ["out/data.txt"]
run = "echo ran >> counter.log && echo {n} > {outputs}"

[steps.twice]
inputs = ["out/data.txt"]
outputs = ["out/twice.txt"]
run = "echo ran >> counter.log && cat {inputs} {inputs} > {outputs}"
"""

NOISY = """\
[steps.noise]
outputs = ["out/noise.txt"]
run = "echo ran >> counter.log && od -An -N16 -tx1 /dev/urandom > {outputs}"

[steps.calm]
outputs = ["out/calm.txt"]
run = "echo calm > {outputs}"
"""

IGNORE = "out/\ncounter.log\n"


def sig_refs(repo: Repo) -> dict[str, str]:
    return repo.refs("refs/gitcache/sig/")


def remote_refs(path: Path) -> dict[str, str]:
    return Repo(path).refs()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return bare(tmp_path / "origin.git")


@pytest.fixture(params=["bare", "daemon"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A remote's (path, URL): through a path and through git:// (a real network remote)."""
    if request.param == "bare":
        path = bare(tmp_path / "origin.git")
        yield path, str(path)
    else:
        with git_daemon(tmp_path / "served") as daemon:
            yield daemon.repo("origin.git")


@pytest.fixture
def origin_url(served: tuple[Path, str]) -> str:
    return served[1]


def member(make: Callable[..., Repo], url: str, toml: str = COUNTED, name: str = "a") -> Repo:
    """A team member's repository whose `origin` is url, with main pushed there."""
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE}, name=name)
    repo.git("remote", "add", "origin", url)
    repo.git("push", "-q", "origin", "main")
    return repo


def test_push_then_fetch_restores_without_running(
    make: Callable[..., Repo], origin_url: str, tmp_path: Path
) -> None:
    a = member(make, origin_url)
    assert a.run("run").exit_code == 0
    pushed = a.run("push")
    assert pushed.exit_code == 0, pushed.stderr
    assert "2 new" in pushed.stderr

    b = clone(origin_url, tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert "2 new records" in fetched.stderr
    assert "objects" not in fetched.stderr  # no progress display when not on a terminal
    assert sig_refs(b) == sig_refs(a)
    assert not b.refs("refs/gitcache/step/")
    tracking = b.refs("refs/gitcache/remotes/origin/")  # what origin held, like refs/remotes/
    assert sorted(tracking.values()) == sorted(sig_refs(a).values())

    ran = b.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr.count("restored from git [") == 2
    assert runs(b) == 0
    assert b.read("out/twice.txt") == "1\n1\n"

    again = b.run("fetch")
    assert "0 new records" in again.stderr and "2 unchanged" in again.stderr


def test_push_sends_records_but_not_local_refs(make: Callable[..., Repo], origin: Path) -> None:
    a = member(make, str(origin))
    a.run("run")
    assert a.refs("refs/gitcache/step/")
    a.run("push")
    on_remote = remote_refs(origin)
    assert set(on_remote) == set(sig_refs(a))
    assert a.run("push").stderr.count("2 already there") == 1


def test_run_remote_fetches_only_the_missing_signature(
    make: Callable[..., Repo], origin_url: str, tmp_path: Path
) -> None:
    a = member(make, origin_url)
    a.run("run", "-p", "n=2")
    a.run("run")
    a.run("push")
    assert len(sig_refs(a)) == 4

    b = clone(origin_url, tmp_path / "b")
    ran = b.run("run", "--remote", "origin")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr.count("restored from git [") == 2 and runs(b) == 0
    assert len(sig_refs(b)) == 2  # just the two signatures it needed
    assert len(b.refs("refs/gitcache/remotes/origin/sig/")) == 2


def test_config_remote_and_push_on_record(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    toml = 'remote = "origin"\npush_on_record = true\n' + COUNTED
    a = member(make, str(origin), toml)
    ran = a.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert "pushed to origin: 2 new" in ran.stderr
    assert set(remote_refs(origin)) == set(sig_refs(a))

    b = clone(str(origin), tmp_path / "b")
    again = b.run("run")
    assert again.exit_code == 0 and runs(b) == 0
    assert "pushed" not in again.stderr  # nothing new was recorded


def test_push_only_the_named_steps(make: Callable[..., Repo], origin: Path) -> None:
    a = member(make, str(origin))
    a.run("run")
    make_sig = a.refs("refs/gitcache/step/make")["refs/gitcache/step/make"]
    assert a.run("push", "make").exit_code == 0
    assert list(remote_refs(origin).values()) == [make_sig]
    assert a.run("push", "origin", "twice").exit_code == 0
    assert set(remote_refs(origin)) == set(sig_refs(a))


def test_divergent_records_are_both_kept_on_every_side(
    make: Callable[..., Repo], served: tuple[Path, str], tmp_path: Path
) -> None:
    origin, url = served
    a = member(make, url, NOISY, name="a")
    b = clone(url, tmp_path / "b")
    a.run("run", "noise")
    b.run("run")  # the same signature, other bytes; and a record `a` does not have
    (sig,) = [n for n, c in sig_refs(a).items()]
    mine_a, mine_b = sig_refs(a)[sig], sig_refs(b)[sig]
    assert mine_a != mine_b
    assert a.run("push").exit_code == 0

    pushed = b.run("push")
    assert pushed.exit_code == 0, pushed.stderr
    assert "has another record for signature" in pushed.stderr
    assert "1 new" in pushed.stderr and "1 diverged" in pushed.stderr  # calm went through
    on_remote = remote_refs(origin)
    assert on_remote[sig] == mine_a
    alt = sig.replace("/sig/", "/alt/") + "/"
    assert on_remote[alt + mine_b] == mine_b

    fetched = b.run("fetch")
    assert fetched.exit_code == 0 and "1 alternates" in fetched.stderr
    assert sig_refs(b)[sig] == mine_b  # the local record stays authoritative
    assert b.refs(alt) == {alt + mine_a: mine_a}
    assert a.run("fetch").exit_code == 0
    assert sig_refs(a)[sig] == mine_a and a.refs(alt) == {alt + mine_b: mine_b}

    listed = json.loads(b.run("log", "noise", "--json").stdout)
    assert {(r["record"], r["alternate"]) for r in listed} == {(mine_a, True), (mine_b, False)}
    assert "(alt" in b.run("log").stdout
    assert mine_a in b.run("show", mine_a[:10]).stdout
    assert b.run("run").exit_code == 0 and runs(b) == 1  # its own outputs are up to date


def mapping(repo: Repo, old: str, new: str, message: str = "gitcache: amend") -> str:
    """A rewrite mapping commit (parents old, new), stored at rewritten/<old>/<new>."""
    empty = repo.git("hash-object", "-t", "tree", "/dev/null").strip()
    commit = repo.git("commit-tree", empty, "-p", old, "-p", new, "-m", message).strip()
    repo.git("update-ref", f"refs/gitcache/rewritten/{old}/{new}", commit)
    return commit


def test_rewrite_mappings_travel_as_a_union(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run")
    first = a.head()
    second = a.commit("second")
    third = a.commit("third")
    one = f"refs/gitcache/rewritten/{first}/{second}"
    two = f"refs/gitcache/rewritten/{second}/{third}"
    theirs = mapping(a, first, second)
    mapping(a, second, third)
    a.run("push")
    assert {one, two} <= set(remote_refs(origin))

    b = clone(str(origin), tmp_path / "b")
    b.git("fetch", "-q", "origin", f"{first}", f"{second}")
    mine = mapping(b, first, second, "mine")
    assert mine != theirs
    fetched = b.run("fetch")
    assert fetched.exit_code == 0
    assert f"{one} differs on origin; kept the local one" in fetched.stderr
    assert b.refs("refs/gitcache/rewritten/") == {one: mine, two: a.refs()[two]}


def test_unreachable_remote_is_an_error_and_changes_nothing(
    make: Callable[..., Repo], origin: Path
) -> None:
    a = member(make, str(origin))
    a.run("run")
    before = a.refs()
    url = closed_url()
    fetched = a.run("fetch", url)
    assert fetched.exit_code == 2
    assert f"gitcache: error: cannot fetch from '{url}'" in fetched.stderr
    pushed = a.run("push", url)
    assert pushed.exit_code == 2
    assert f"gitcache: error: cannot push to '{url}'" in pushed.stderr
    assert a.refs() == before
    assert a.read("out/twice.txt") == "1\n1\n"


def test_run_with_an_unreachable_remote_runs_locally(
    make: Callable[..., Repo], origin: Path
) -> None:
    a = member(make, str(origin))
    ran = a.run("run", "--remote", closed_url())
    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr.count("going on without the remote") == 1  # asked once, not per step
    assert runs(a) == 2 and len(sig_refs(a)) == 2


def test_unknown_remote_name_is_a_usage_error(make: Callable[..., Repo], origin: Path) -> None:
    a = member(make, str(origin))
    for args in (("fetch", "nowhere"), ("push", "nowhere"), ("run", "--remote", "nowhere")):
        result = a.run(*args)
        assert result.exit_code == 2, args
        assert "gitcache: error: no remote named 'nowhere'" in result.stderr
    assert runs(a) == 0


def test_default_remote_follows_the_branch_upstream(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    other = bare(tmp_path / "other.git")
    a = member(make, str(origin))
    a.git("remote", "add", "team", str(other))
    a.git("push", "-q", "-u", "team", "main")
    a.run("run")
    assert a.run("push").exit_code == 0
    assert remote_refs(other) and not remote_refs(origin)


def test_fetch_and_push_need_no_workflow_file(make: Callable[..., Repo], origin: Path) -> None:
    a = member(make, str(origin))
    a.run("run")
    a.run("push")
    plain = make({"README": "x\n"}, name="plain")
    plain.git("remote", "add", "origin", str(origin))
    assert plain.run("fetch").exit_code == 0
    assert set(sig_refs(plain)) == set(sig_refs(a))


def test_records_gone_from_the_remote_stay_here(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run")
    a.run("push")
    b = clone(str(origin), tmp_path / "b")
    b.run("fetch")
    Repo(origin).git("update-ref", "-d", next(iter(sig_refs(a))))
    assert b.run("fetch").exit_code == 0
    assert len(b.refs("refs/gitcache/remotes/origin/")) == 1  # pruned like origin
    assert sig_refs(b) == sig_refs(a)  # but the local records are never dropped


def test_a_fetch_interrupted_before_its_merge_is_completed_by_the_next(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run")
    a.run("push")
    b = clone(str(origin), tmp_path / "b")
    # As if killed after git fetch wrote the staging refs and before the union.
    b.git("fetch", "-q", "origin", "refs/gitcache/*:refs/gitcache/remotes/origin/*")
    assert not sig_refs(b)
    assert "2 new records" in b.run("fetch").stderr
    assert sig_refs(b) == sig_refs(a)


def test_fetch_reports_records_it_refuses(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run", "make")
    (name,) = sig_refs(a)
    a.git("update-ref", name, a.head())  # a source commit, not a record
    a.git("update-ref", "refs/gitcache/sig/00/" + "1" * 64, a.head())  # prefix is wrong
    a.git("push", "-q", "origin", "refs/gitcache/sig/*:refs/gitcache/sig/*")
    b = clone(str(origin), tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0
    assert f"gitcache: warning: refused {name} from origin: record commit" in fetched.stderr
    assert "not a valid gitcache ref name" in fetched.stderr
    assert "2 refused" in fetched.stderr and not sig_refs(b)


def test_progress_is_passed_through_from_git(make: Callable[..., Repo], origin: Path) -> None:
    from gitcache.gitrepo import GitRepo
    from gitcache.remote import choose_remote, fetch

    a = member(make, str(origin))
    a.run("run")
    a.run("push")
    plain = make({"README": "x\n"}, name="plain")
    repo = GitRepo.discover(plain.root)
    chunks: list[bytes] = []
    fetch(repo, choose_remote(repo, str(origin)), ["refs/gitcache/*:refs/x/*"], chunks.append)
    assert b"objects" in b"".join(chunks)


def test_nothing_to_push_is_not_an_error(make: Callable[..., Repo], origin: Path) -> None:
    a = member(make, str(origin))
    pushed = a.run("push")
    assert pushed.exit_code == 0, pushed.stderr
    assert "pushed to origin: 0 new" in pushed.stderr
    assert a.run("push", "make").exit_code == 0  # no records of make yet


def test_a_relative_path_is_taken_from_where_gitcache_runs(
    make: Callable[..., Repo], origin: Path
) -> None:
    from click.testing import CliRunner

    from gitcache.cli.main import main

    a = member(make, str(origin))
    a.run("run")
    (a.root / "sub").mkdir()
    relative = Path("..") / ".." / origin.name  # from a/sub to the remote beside a
    result = CliRunner().invoke(main, ["-C", str(a.root / "sub"), "push", str(relative)])
    assert result.exit_code == 0, result.stderr
    assert set(remote_refs(origin)) == set(sig_refs(a))


def test_a_lookup_never_answers_from_a_stale_staging_ref(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run", "make")
    a.run("push")
    b = clone(str(origin), tmp_path / "b")
    assert b.run("run", "make", "--remote", "origin").stderr.count("restored from git [") == 1
    (name,) = sig_refs(b)
    b.git("update-ref", "-d", name)  # removed here ...
    Repo(origin).git("update-ref", "-d", name)  # ... and on the remote
    (b.root / "out/data.txt").unlink()
    ran = b.run("run", "make", "--remote", "origin")
    assert ran.exit_code == 0 and runs(b) == 1


def test_assert_mode_asks_the_remote_too(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.run("run", "make")
    a.run("push")
    b = clone(str(origin), tmp_path / "b")
    (b.root / "out").mkdir()
    (b.root / "out/data.txt").write_text("1\n")  # the outputs, made some other way
    checked = b.run("run", "make", "-s", "assert", "--remote", "origin")
    assert checked.exit_code == 0, checked.stderr
    assert "verified" in checked.stderr and runs(b) == 0


def test_a_ref_the_server_refuses_is_an_error_after_the_rest_went_through(
    make: Callable[..., Repo], origin: Path
) -> None:
    hook = origin / "hooks" / "update"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text('#!/bin/sh\ncase "$1" in refs/gitcache/rewritten/*) exit 1;; esac\n')
    hook.chmod(0o755)
    a = member(make, str(origin))
    a.run("run")
    first = a.head()
    second = a.commit("second")
    mapping(a, first, second)
    pushed = a.run("push")
    assert pushed.exit_code == 2
    assert (
        f"gitcache: error: 'origin' refused 1 ref(s), first refs/gitcache/rewritten/{first}"
        in pushed.stderr
    )
    assert set(remote_refs(origin)) == set(sig_refs(a))


def test_only_gitcache_refs_travel_whatever_the_git_config(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    a.git("tag", "-a", "-m", "v1", "v1")
    a.git("config", "push.followTags", "true")
    a.run("run")
    assert a.run("push").exit_code == 0
    assert not Repo(origin).refs("refs/tags/")
    b = clone(str(origin), tmp_path / "b")
    b.git("tag", "mine")
    b.git("config", "fetch.pruneTags", "true")
    b.git("config", "fetch.prune", "true")
    assert b.run("fetch").exit_code == 0
    assert b.refs("refs/tags/") and b.refs("refs/remotes/origin/")


def test_fetched_records_are_indexed_for_listing(
    make: Callable[..., Repo], origin: Path, tmp_path: Path
) -> None:
    a = member(make, str(origin))
    assert a.run("run").exit_code == 0
    assert a.run("push").exit_code == 0
    b = clone(str(origin), tmp_path / "b")
    assert b.run("fetch").exit_code == 0
    # fetch validated every record already: their summaries are in the record index, so
    # `gitcache log` reads no record.json of them again.
    index = json.loads((b.root / ".git/gitcache/record-index-v2.json").read_text())
    assert set(index["records"]) == set(sig_refs(a).values())
    listed = json.loads(b.run("log", "--json").stdout)
    assert {r["record"] for r in listed} == set(sig_refs(a).values())
