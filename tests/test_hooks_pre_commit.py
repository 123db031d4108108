"""gitcache's hooks beside the pre-commit framework's, with pre-commit's real installer.

pre-commit moves a hook that is not its own to `<name>.legacy` (replacing whatever is
there) and runs that first; `pre-commit uninstall` puts `<name>.legacy` back. The
user's own hook must survive every order of installing and uninstalling the two,
keep running, and gitcache's post-rewrite must still record amends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pre_commit  # noqa: F401 (in the test extra: these tests need its real installer)
import pytest

from tests.helpers import Repo
from tests.hookutil import (  # noqa: F401 (the fixture is used through pytestmark)
    FILES,
    commit_and_record,
    hooks_import_this_checkout,
    mappings,
)

pytestmark = pytest.mark.usefixtures("hooks_import_this_checkout")


def _pre_commit(repo: Repo, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _install(repo: Repo, tool: str) -> None:
    if tool == "gitcache":
        result = repo.run("hooks", "install")
        assert result.exit_code == 0, result.output
    else:  # no config needed: its hooks then only run the legacy hook
        _pre_commit(
            repo, "install", "--allow-missing-config", "-t", "post-rewrite", "-t", "pre-rebase"
        )


def _uninstall(repo: Repo, tool: str) -> None:
    if tool == "gitcache":
        result = repo.run("hooks", "uninstall")
        assert result.exit_code == 0, result.output
    else:
        _pre_commit(repo, "uninstall", "-t", "post-rewrite", "-t", "pre-rebase")


def _user_hook(repo: Repo, log: Path) -> tuple[Path, str]:
    hook = repo.root / ".git" / "hooks" / "post-rewrite"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f'#!/bin/sh\necho "user hook: $*" >> {log}\n')
    hook.chmod(0o755)
    return hook, hook.read_text()


@pytest.mark.parametrize("uninstall_first", ["gitcache", "pre-commit"])
@pytest.mark.parametrize("install_first", ["gitcache", "pre-commit"])
def test_the_users_hook_survives_both_installers_in_any_order(
    make: Callable[..., Repo], tmp_path: Path, install_first: str, uninstall_first: str
) -> None:
    repo = make(FILES)
    log = tmp_path / "user-hook.log"
    hook, original = _user_hook(repo, log)
    other = "pre-commit" if install_first == "gitcache" else "gitcache"
    _install(repo, install_first)
    _install(repo, other)
    _install(repo, install_first)  # installing again (a setup script) changes nothing

    status = repo.run("hooks", "status").stdout
    assert (
        "post-rewrite           installed as post-rewrite.legacy, behind pre-commit's hook; "
        "runs post-rewrite.before-gitcache first"
    ) in status

    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "amended")
    assert log.read_text() == "user hook: amend\n"  # the user's hook still runs
    assert mappings(repo) == {(old, repo.head())}  # and so does gitcache's

    _uninstall(repo, uninstall_first)
    _uninstall(repo, "pre-commit" if uninstall_first == "gitcache" else "gitcache")
    assert hook.read_text() == original
    assert sorted(p.name for p in hook.parent.iterdir()) == ["post-rewrite"]


def test_reinstalling_pre_commit_over_gitcache_keeps_the_users_hook(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make(FILES)
    hook, original = _user_hook(repo, tmp_path / "user-hook.log")
    _install(repo, "pre-commit")
    _install(repo, "gitcache")
    _pre_commit(repo, "install", "-f", "--allow-missing-config", "-t", "post-rewrite")
    # `-f` deletes what pre-commit chains: gitcache's script, never the user's hook.
    saved = [p for p in hook.parent.iterdir() if p.read_text() == original]
    assert len(saved) == 1, sorted(p.name for p in hook.parent.iterdir())
    _install(repo, "gitcache")  # puts its script back behind pre-commit's
    _uninstall(repo, "gitcache")
    _uninstall(repo, "pre-commit")
    assert hook.read_text() == original
