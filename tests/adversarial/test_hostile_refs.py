"""A remote (or a plain `git fetch`) that holds ref names gitcache never writes.

Only names of the shared shapes travel (`sig/<2>/<sig>`, `alt/<2>/<sig>/<commit>`,
`rewritten/<old>/<new>`, docs/sharing.md). Anything else is refused and reported:
it must never become a local ref, block one (a file `refs/gitcache/step` makes every
`refs/gitcache/step/<name>` impossible), or break the staging fetch (a remote may
hold both `x` and `x/y` when its packed-refs was written by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.adversarial.chain import IGNORE, TOML, with_origin
from tests.helpers import Repo, runs
from tests.remotes import bare, clone, git_daemon

# Names that collide with gitcache's own namespaces, or are prefix directories of them.
HOSTILE = [
    "refs/gitcache/step",
    "refs/gitcache/alt",
    "refs/gitcache/remotes",
    "refs/gitcache/rewritten",
    "refs/gitcache/junk",
    "refs/gitcache/rewritten/x/y",
]


def pack_by_hand(remote: Path, extra: dict[str, str]) -> None:
    """Add refs to the remote's packed-refs as a hostile server could, D/F conflicts and all.

    git itself never writes `x` beside `x/y`, but it reads and advertises what a
    packed-refs file holds (unsorted: no `sorted` trait in the header).
    """
    Repo(remote).git("pack-refs", "--all")
    packed = remote / "packed-refs"
    lines = [ln for ln in packed.read_text().splitlines() if ln and not ln.startswith("#")]
    lines += [f"{oid} {name}" for name, oid in extra.items()]
    packed.write_text("# pack-refs with: peeled \n" + "\n".join(lines) + "\n")


@pytest.fixture(params=["path", "daemon"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A remote's (path, URL): a bare repository, and the same through git://."""
    if request.param == "path":
        path = bare(tmp_path / "origin.git")
        yield path, str(path)
    else:
        with git_daemon(tmp_path / "served") as daemon:
            yield daemon.repo("origin.git")


def hostile_origin(make: Callable[..., Repo], served: tuple[Path, str]) -> tuple[Repo, Path]:
    """`a` pushed its records to a remote that someone then filled with hostile names."""
    path, url = served
    a = make({"gitcache.toml": TOML, ".gitignore": IGNORE}, name="a")
    a.git("remote", "add", "origin", url)
    a.git("push", "-q", "origin", "main")
    assert a.run("run").exit_code == 0
    assert a.run("push").exit_code == 0
    head = a.head()
    sig_name = next(iter(a.refs("refs/gitcache/sig/")))
    names = {name: head for name in HOSTILE}
    # Prefix directories and children of real names: only a hand-written packed-refs
    # can hold them beside those names.
    names["refs/gitcache/sig"] = head
    names[sig_name.rsplit("/", 1)[0]] = head  # refs/gitcache/sig/<2>
    names[sig_name + "/below"] = head
    names["refs/gitcache/x"] = head
    names["refs/gitcache/x/y"] = head
    pack_by_hand(path, names)
    return a, path


def test_fetch_takes_only_shared_names_and_everything_works_after(
    make: Callable[..., Repo], served: tuple[Path, str], tmp_path: Path
) -> None:
    a, path = hostile_origin(make, served)
    advertised = Repo(path).git("ls-remote", str(path), "refs/gitcache/*")
    assert "refs/gitcache/step\n" in advertised and "refs/gitcache/x/y\n" in advertised

    b = clone(served[1], tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert "2 new records" in fetched.stderr
    for name in HOSTILE:
        assert f"gitcache: warning: refused {name} from origin: not a valid" in fetched.stderr
    assert "refused 1 more refs from origin" in fetched.stderr  # 11 refused, 10 named
    assert set(b.refs()) == set(a.refs("refs/gitcache/sig/")) | {
        n.replace("refs/gitcache/", "refs/gitcache/remotes/origin/")
        for n in a.refs("refs/gitcache/sig/")
    }

    ran = b.run("run")  # restores what was fetched, and moves step/ refs
    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr.count("restored from git [") == 2 and runs(b) == 0
    assert set(b.refs("refs/gitcache/step/")) == {
        "refs/gitcache/step/make",
        "refs/gitcache/step/more",
    }
    b.write("gitcache.toml", TOML.replace("made", "made again"))
    assert b.run("run").exit_code == 0 and runs(b) == 2  # new records are written
    again = b.run("fetch")
    assert again.exit_code == 0, again.stderr
    assert "0 new records" in again.stderr
    listed = b.run("log")
    assert listed.exit_code == 0 and listed.stdout.count("make") == 2
    # The remote's own `refs/gitcache/sig` file blocks every new record there: git's
    # rejection is reported. A clean remote gets the records and nothing else.
    pushed = b.run("push")
    assert pushed.exit_code == 2
    assert "gitcache: error: 'origin' refused 2 ref(s), first refs/gitcache/sig/" in pushed.stderr
    clean = bare(tmp_path / "clean.git")
    assert b.run("push", str(clean)).exit_code == 0
    assert set(Repo(clean).refs()) == set(b.refs("refs/gitcache/sig/"))


def test_a_lookup_is_not_blocked_by_names_below_the_signature(
    make: Callable[..., Repo], served: tuple[Path, str], tmp_path: Path
) -> None:
    hostile_origin(make, served)
    b = clone(served[1], tmp_path / "b")
    ran = b.run("run", "--remote", "origin")
    assert ran.exit_code == 0, ran.stderr
    assert "going on without the remote" not in ran.stderr
    assert ran.stderr.count("restored from git [") == 2 and runs(b) == 0


def test_push_sends_only_shared_names(make: Callable[..., Repo], tmp_path: Path) -> None:
    origin = bare(tmp_path / "origin.git")
    a = make({"gitcache.toml": TOML, ".gitignore": IGNORE}, name="a")
    a.git("remote", "add", "origin", str(origin))
    a.run("run")
    records = set(a.refs("refs/gitcache/sig/"))
    head = a.head()
    # As a plain `git fetch 'refs/gitcache/*:refs/gitcache/*'` from a hostile remote leaves.
    prefix = next(iter(a.refs("refs/gitcache/sig/"))).rsplit("/", 2)[0]  # refs/gitcache/sig
    for name in ("refs/gitcache/junk", "refs/gitcache/alt/zz", f"{prefix}/zz/not-a-sig"):
        a.git("update-ref", name, head)
    pushed = a.run("push")
    assert pushed.exit_code == 0, pushed.stderr
    assert set(Repo(origin).refs()) == records


def test_a_mapping_must_be_a_child_of_its_two_commits(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin, a = with_origin(make, tmp_path)
    first = a.head()
    second = a.commit("second")
    forged = f"refs/gitcache/rewritten/{first}/{second}"
    a.git("update-ref", forged, second)  # names a pair, but is no mapping commit
    a.git("push", "-q", "origin", f"{forged}:{forged}")
    b = clone(str(origin), tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0
    assert f"refused {forged} from origin: {second[:12]} is not a mapping commit" in (
        fetched.stderr
    )
    assert not b.refs("refs/gitcache/rewritten/")


def test_names_left_in_the_staging_namespace_by_older_versions_are_cleared(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin, a = with_origin(make, tmp_path)
    a.run("run")
    a.run("push")
    b = clone(str(origin), tmp_path / "b")
    sig_name = next(iter(a.refs("refs/gitcache/sig/")))
    staged = sig_name.replace("refs/gitcache/", "refs/gitcache/remotes/origin/")
    # A file where a directory of staged names must go, and a hostile name once fetched.
    b.git("update-ref", staged.rsplit("/", 1)[0], b.head())
    b.git("update-ref", "refs/gitcache/remotes/origin/step", b.head())
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert set(b.refs("refs/gitcache/sig/")) == set(a.refs("refs/gitcache/sig/"))
    assert set(b.refs("refs/gitcache/remotes/")) == {
        n.replace("refs/gitcache/", "refs/gitcache/remotes/origin/")
        for n in a.refs("refs/gitcache/sig/")
    }


def test_a_pushed_name_that_shadows_a_local_namespace_is_refused(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    # Anyone who can push can create these on an ordinary git server.
    origin, a = with_origin(make, tmp_path)
    for name in ("refs/gitcache/step", "refs/gitcache/alt", "refs/gitcache/remotes"):
        a.git("push", "-q", "origin", f"main:{name}")
    b = clone(str(origin), tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert fetched.stderr.count("gitcache: warning: refused refs/gitcache/") == 3
    assert b.refs() == {}
    ran = b.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert set(b.refs("refs/gitcache/step/")) == {
        "refs/gitcache/step/make",
        "refs/gitcache/step/more",
    }
    assert b.run("fetch").exit_code == 0


def test_a_lookup_clears_a_staged_name_below_the_signature(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin, a = with_origin(make, tmp_path)
    assert a.run("run").exit_code == 0 and a.run("push").exit_code == 0
    b = clone(str(origin), tmp_path / "b")
    for name in a.refs("refs/gitcache/sig/"):
        staged = name.replace("refs/gitcache/", "refs/gitcache/remotes/origin/")
        b.git("update-ref", staged + "/below", b.head())  # as an older gitcache could stage
    ran = b.run("run", "--remote", "origin")
    assert ran.exit_code == 0, ran.stderr
    assert "going on without the remote" not in ran.stderr
    assert ran.stderr.count("restored from git [") == 2 and runs(b) == 0
