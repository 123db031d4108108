"""packedrefs.py: a batch of refs as one rewrite of packed-refs, under git's own locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import RepositoryError
from gitcache.gitrepo import GitRepo, RefConflict, RefUpdate
from gitcache.packedrefs import Conflict, Unsuitable, update_packed
from tests.helpers import Repo, make_repo


def _repo(tmp_path: Path) -> tuple[Repo, GitRepo, str]:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    return repo, GitRepo.discover(repo.root), repo.head()


def _names(count: int) -> list[str]:
    return [f"refs/gitcache/sig/{i:02x}/{i:02x}{'0' * 62}" for i in range(count)] + [
        f"refs/gitcache/item/s/{i:016x}" for i in range(count)
    ]


def _fsck(repo: Repo) -> None:
    assert repo.git("fsck", "--strict", "--no-progress") == ""


def _no_locks(repo: Repo) -> None:
    assert list((repo.root / ".git").rglob("*.lock")) == []


def test_a_batch_of_refs_is_one_packed_refs_that_git_reads(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    names = _names(30)
    gr.update_refs([RefUpdate(n, head, None) for n in names])
    assert repo.refs() == dict.fromkeys(names, head)
    for name in names:  # packed, not loose: no new file per ref
        assert not (repo.root / ".git" / name).exists()
        assert repo.git("rev-parse", "--verify", name).strip() == head
    packed = (repo.root / ".git" / "packed-refs").read_text().splitlines()
    assert packed[0] == "# pack-refs with: peeled fully-peeled sorted "
    assert packed[1:] == sorted(packed[1:], key=lambda line: line.split(" ")[1].encode())
    _no_locks(repo)
    _fsck(repo)
    # libgit2 (our own reads, a later transaction) sees them too
    assert gr.ref_target(names[0]) == head
    gr.update_refs([RefUpdate(names[0], None, head)])
    assert names[0] not in repo.refs()


def test_compare_and_swap_holds_and_a_conflict_changes_nothing(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    other = repo.commit("second")
    taken = "refs/gitcache/sig/aa/" + "a" * 64
    repo.git("update-ref", taken, other)  # a loose ref, as git or libgit2 writes one
    before = repo.refs()
    fresh = "refs/gitcache/sig/bb/" + "b" * 64
    with pytest.raises(RefConflict) as caught:
        gr.update_refs([RefUpdate(fresh, head, None), RefUpdate(taken, head, None)])
    assert (caught.value.name, caught.value.found) == (taken, other)
    assert repo.refs() == before
    _no_locks(repo)
    # a packed value is compared as well, and `expected` moves it
    repo.git("pack-refs", "--all")
    with pytest.raises(RefConflict):
        gr.update_refs([RefUpdate(taken, head, None)])
    gr.update_refs([RefUpdate(taken, head, other)])
    assert repo.refs()[taken] == head


def test_a_loose_ref_updated_goes_and_peeled_tags_are_kept(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    repo.git("tag", "-a", "-m", "annotated", "v1")
    repo.git("pack-refs", "--all")
    second = repo.commit("second")
    step = "refs/gitcache/step/s"
    repo.git("update-ref", step, head)  # loose, hiding nothing yet
    gr.update_refs([RefUpdate(step, second), RefUpdate(_names(1)[0], second, None)])
    assert not (repo.root / ".git" / step).exists()  # the packed value is the ref now
    assert repo.git("rev-parse", step).strip() == second
    peeled = repo.git("show-ref", "-d", "v1").splitlines()
    assert len(peeled) == 2 and peeled[1].startswith(f"{head} refs/tags/v1^{{}}")
    _fsck(repo)


def test_a_lock_someone_holds_falls_back_to_a_transaction_that_waits(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    name = _names(1)[0]
    lock = repo.root / ".git" / f"{name}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # as git holds it while it updates the ref
    with pytest.raises(Unsuitable):
        update_packed(gr.common_dir, gr.state_dir, [RefUpdate(name, head, None)], "any")
    assert lock.exists() and not (repo.root / ".git" / "packed-refs").exists()
    release = threading.Timer(0.3, lock.unlink)
    release.start()
    start = time.monotonic()
    gr.update_refs([RefUpdate(name, head, None)])  # waits, then writes it loose
    assert time.monotonic() - start >= 0.25
    assert repo.refs() == {name: head}
    _no_locks(repo)


@pytest.mark.parametrize("pack", [False, True])
def test_a_ref_in_the_way_is_reported_as_by_a_transaction(tmp_path: Path, pack: bool) -> None:
    repo, gr, head = _repo(tmp_path)
    repo.git("update-ref", "refs/gitcache/step", head)
    if pack:
        repo.git("pack-refs", "--all")
    with pytest.raises(RepositoryError, match="the ref refs/gitcache/step is in the way"):
        gr.update_refs([RefUpdate("refs/gitcache/step/s", head)])
    assert repo.refs() == {"refs/gitcache/step": head}
    _no_locks(repo)
    repo.git("update-ref", "-d", "refs/gitcache/step")
    repo.git("update-ref", "refs/gitcache/item/s/x", head)
    repo.git("pack-refs", "--all")
    with pytest.raises(RepositoryError, match="the ref refs/gitcache/item/s/x is in the way"):
        gr.update_refs([RefUpdate("refs/gitcache/item/s", head)])


def test_deletions_and_reflogs_of_every_ref_are_left_to_libgit2(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    name = _names(1)[0]
    with pytest.raises(Unsuitable):
        update_packed(gr.common_dir, gr.state_dir, [RefUpdate(name, None)], "any")
    repo.git("config", "core.logAllRefUpdates", "always")
    logged = GitRepo.discover(repo.root)
    logged.update_refs([RefUpdate(name, head, None)])
    assert (repo.root / ".git" / name).is_file()  # loose, with its reflog
    assert (repo.root / ".git" / "logs" / name).is_file()


def test_conflict_leaves_the_packed_file_as_it_was(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    names = _names(3)
    gr.update_refs([RefUpdate(n, head, None) for n in names])
    packed = (repo.root / ".git" / "packed-refs").read_bytes()
    with pytest.raises(Conflict):
        update_packed(gr.common_dir, gr.state_dir, [RefUpdate(names[1], head, None)], "any")
    assert (repo.root / ".git" / "packed-refs").read_bytes() == packed
    _no_locks(repo)


def test_other_refs_keep_their_bytes_and_git_finds_every_ref_after(tmp_path: Path) -> None:
    repo, gr, head = _repo(tmp_path)
    for name in ("refs/heads/\u00e9t\u00e9", "refs/heads/zz", "refs/heads/a\u0301"):
        repo.git("update-ref", name, head)
    repo.git("pack-refs", "--all")
    names = _names(20)
    gr.update_refs([RefUpdate(n, head, None) for n in names])
    for name in (*names, "refs/heads/\u00e9t\u00e9", "refs/heads/a\u0301", "refs/heads/zz"):
        # git reads a sorted packed-refs by binary search: a wrong order would hide refs
        assert repo.git("rev-parse", "--verify", "--quiet", name).strip() == head
    _fsck(repo)


def test_a_big_packed_refs_is_left_to_a_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitcache import packedrefs

    repo, gr, head = _repo(tmp_path)
    gr.update_refs([RefUpdate(n, head, None) for n in _names(5)])
    monkeypatch.setattr(packedrefs, "MAX_REWRITE", 100)
    name = "refs/gitcache/sig/ff/" + "f" * 64
    gr.update_refs([RefUpdate(name, head, None)])
    assert (repo.root / ".git" / name).is_file()  # a loose ref, as a transaction writes it
    assert repo.refs()[name] == head


def test_locks_a_killed_gitcache_left_are_taken_over_and_a_live_ones_are_not(
    tmp_path: Path,
) -> None:
    import os
    import subprocess

    repo, gr, head = _repo(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is gone: as a gitcache killed while it wrote a batch
    name = _names(1)[0]
    state = gr.state_dir
    state.mkdir(parents=True, exist_ok=True)
    template = state / f"ref-lock-{dead.pid}"
    template.write_text("")
    git_dir = repo.root / ".git"
    (git_dir / name).parent.mkdir(parents=True)
    os.link(template, git_dir / f"{name}.lock")
    os.link(template, git_dir / "packed-refs.lock")
    (git_dir / f"packed-refs.gitcache-{dead.pid}").write_text("half written\n")
    start = time.monotonic()
    gr.update_refs([RefUpdate(name, head, None)])
    assert time.monotonic() - start < 5  # taken over, not waited for
    assert repo.refs() == {name: head} and not (git_dir / name).exists()  # packed
    _no_locks(repo)
    assert not (git_dir / f"packed-refs.gitcache-{dead.pid}").exists()
    # a lock linked to the template of a process that is alive is someone's lock
    live = state / f"ref-lock-{os.getppid()}"
    live.write_text("")
    other = _names(2)[1]
    (git_dir / other).parent.mkdir(parents=True)
    os.link(live, git_dir / f"{other}.lock")
    with pytest.raises(Unsuitable):
        update_packed(gr.common_dir, state, [RefUpdate(other, head, None)], "any")
    assert (git_dir / f"{other}.lock").exists()


def test_a_plain_steps_record_takes_over_the_locks_a_killed_gitcache_left(
    make: Callable[..., Repo],
) -> None:
    # Killed while it wrote a plain step's refs: before, its libgit2 `.lock` files made
    # every later run wait 10 s and fail until a person removed them.
    import json
    import os
    import subprocess

    repo = make({"gitcache.toml": '[steps.s]\noutputs = ["o.txt"]\nrun = "echo o > o.txt"\n'})
    signature = json.loads(repo.run("status", "--json").stdout)[0]["signature"]
    name = f"refs/gitcache/sig/{signature[:2]}/{signature}"
    dead = subprocess.Popen(["true"])
    dead.wait()
    state = repo.root / ".git" / "gitcache"
    state.mkdir(parents=True, exist_ok=True)
    template = state / f"ref-lock-{dead.pid}"
    template.write_text("")
    lock = repo.root / ".git" / f"{name}.lock"
    lock.parent.mkdir(parents=True)
    os.link(template, lock)
    start = time.monotonic()
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - start < 5
    assert name in repo.refs()
    assert list((repo.root / ".git" / "refs").rglob("*.lock")) == []
    assert not (repo.root / ".git" / "packed-refs.lock").exists()
