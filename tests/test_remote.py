"""remote.py: choosing a remote as git does, and reading git's answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitcache.errors import RemoteError
from gitcache.gitrepo import GitRepo
from gitcache.remote import _porcelain, _reason, _stage_name, choose_remote
from tests.helpers import Repo


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("origin", True),
        ("ci_2.mirror", True),
        ("a..b", False),
        ("team/ci", False),
        ("x.lock", False),
        ("git://host/r.git", False),
        ("host:r.git", False),
    ],
)
def test_stage_names_are_ref_safe(name: str, safe: bool) -> None:
    stage = _stage_name(name)
    assert (stage == name) is safe
    assert stage == name or (stage.startswith("url-") and len(stage) == 20)


def test_default_remotes_follow_git(make: Callable[..., Repo]) -> None:
    repo = make({"README": "x\n"})
    gr = GitRepo.discover(repo.root)
    with pytest.raises(RemoteError, match="no remote named 'origin'"):
        choose_remote(gr, None)
    for name in ("origin", "up", "pub"):
        repo.git("remote", "add", name, f"/nowhere/{name}.git")
    assert choose_remote(gr, None).name == "origin"
    repo.git("config", "branch.main.remote", "up")
    assert choose_remote(gr, None).name == "up"
    assert choose_remote(gr, None, for_push=True).name == "up"
    repo.git("config", "remote.pushDefault", "pub")
    assert choose_remote(gr, None).name == "up"
    assert choose_remote(gr, None, for_push=True).name == "pub"
    repo.git("config", "branch.main.pushRemote", "origin")
    assert choose_remote(gr, None, for_push=True).name == "origin"


def test_porcelain_lines() -> None:
    out = (
        b"To ../r.git\n*\trefs/gitcache/sig/ab/x:refs/gitcache/sig/ab/x\t[new reference]\n"
        b"!\trefs/gitcache/sig/cd/y:refs/gitcache/sig/cd/y\t[rejected] (fetch first)\n"
        b"=\trefs/gitcache/z:refs/gitcache/z\t[up to date]\nDone\n"
    )
    lines = _porcelain(out)
    assert [(p.flag, p.dst, p.diverged) for p in lines] == [
        ("*", "refs/gitcache/sig/ab/x", False),
        ("!", "refs/gitcache/sig/cd/y", True),
        ("=", "refs/gitcache/z", False),
    ]


def test_reason_is_git_s_fatal_line() -> None:
    err = b"Receiving objects: 10%\rReceiving\nfatal: unable to connect to x:\nmore\n"
    assert _reason(err) == "fatal: unable to connect to x:"
    assert _reason(b"") == "git failed without a message"
