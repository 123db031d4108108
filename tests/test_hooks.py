"""The installed hooks under real git: refusing rewrites, chaining, failing open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache import hooks
from gitcache.gitrepo import GitRepo
from tests.helpers import Repo
from tests.hookutil import (  # noqa: F401 (the fixture is used through pytestmark)
    TOML,
    assert_survives_gc,
    commit_and_record,
    git_status,
    hooks_import_this_checkout,
    mappings,
    project,
    record_of,
    records_for,
)

pytestmark = pytest.mark.usefixtures("hooks_import_this_checkout")


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


AMENDS = {
    "-m": (["commit", "--amend", "-m", "reworded"], {}),
    "--no-edit": (["commit", "--amend", "--no-edit"], {}),
    "editor": (["commit", "--amend"], {"GIT_EDITOR": "sed -i 1s/.*/edited/"}),
}


# -- rewrite = "block" -------------------------------------------------------------------


@pytest.mark.parametrize("how", list(AMENDS))
def test_block_refuses_amend_of_a_commit_with_records(make: Callable[..., Repo], how: str) -> None:
    repo = project(make, policy="block")
    old = commit_and_record(repo, "v1\n")
    record = record_of(repo, old)
    repo.write("more.txt", "staged\n")
    repo.git("add", "more.txt")
    args, env = AMENDS[how]
    status, stderr = git_status(repo, *args, env=_env(**env))
    assert status != 0
    assert repo.head() == old
    message = next(line for line in stderr.splitlines() if line.startswith("gitcache:"))
    assert message.startswith('gitcache: error: refusing to amend: rewrite = "block"')
    signature = json.loads(repo.git("show", f"{record}:record.json"))["signature"]
    assert message == (
        f'gitcache: error: refusing to amend: rewrite = "block" in gitcache.toml and these '
        f"commits have records: {old[:12]} (build {signature[:12]}) "
        "(set GITCACHE_ALLOW_REWRITE=1 to rewrite anyway)"
    )
    # the override lets it through, and the records are carried over
    status, stderr = git_status(repo, *args, env=_env(GITCACHE_ALLOW_REWRITE="1", **env))
    assert status == 0, stderr
    assert mappings(repo) == {(old, repo.head())}
    assert records_for(repo, "HEAD") == [(record, True)]
    assert_survives_gc(repo)


def test_block_refuses_amend_of_carried_over_records(make: Callable[..., Repo]) -> None:
    repo = project(make, policy="block")
    old = commit_and_record(repo, "v1\n")
    env = _env(GITCACHE_ALLOW_REWRITE="1")
    assert git_status(repo, "commit", "--amend", "-m", "once", env=env)[0] == 0
    status, stderr = git_status(repo, "commit", "--amend", "-m", "twice")
    assert status != 0 and "refusing to amend" in stderr
    assert (old, repo.head()) in mappings(repo)


def test_block_refuses_rebase_before_anything_changes(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make, policy="block")
    base = repo.head()
    a = commit_and_record(repo, "a\n")
    b = repo.commit("no records")
    monkeypatch.setenv("GIT_SEQUENCE_EDITOR", "sed -i 1s/^pick/reword/")
    monkeypatch.setenv("GIT_EDITOR", "sed -i 1s/.*/reworded/")
    status, stderr = git_status(repo, "rebase", "-i", base)
    assert status != 0
    assert "refusing to rebase" in stderr and f"{a[:12]} (build " in stderr
    assert b[:12] not in stderr.split("records:")[1]
    assert repo.head() == b and not (repo.root / ".git" / "rebase-merge").exists()
    status, stderr = git_status(repo, "rebase", "-i", base, env=_env(GITCACHE_ALLOW_REWRITE="1"))
    assert status == 0, stderr
    assert (a, repo.git("rev-parse", "HEAD^").strip()) in mappings(repo)


def test_block_allows_rebasing_commits_without_records(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make, policy="block")
    commit_and_record(repo, "a\n")
    base = repo.head()
    for name in ("one", "two"):
        repo.write(f"{name}.txt", name)
        repo.commit(name)
    monkeypatch.setenv("GIT_SEQUENCE_EDITOR", "sed -i 1s/^pick/reword/")
    monkeypatch.setenv("GIT_EDITOR", "sed -i 1s/.*/reworded/")
    status, stderr = git_status(repo, "rebase", "-i", base)
    assert status == 0, stderr
    assert repo.git("log", "-1", "--format=%s", "HEAD^").strip() == "reworded"


def test_block_lets_ordinary_work_through(make: Callable[..., Repo]) -> None:
    repo = project(make, policy="block")
    commit_and_record(repo, "v1\n")
    repo.commit("ordinary")  # parent has records: a child is no rewrite
    commit_and_record(repo, "v2\n")
    repo.git("checkout", "-q", "-b", "feature")
    commit_and_record(repo, "feature\n")
    repo.git("checkout", "-q", "main")
    commit_and_record(repo, "main\n")
    repo.git("merge", "-q", "--no-edit", "-X", "ours", "feature")  # a merge commit
    repo.git("checkout", "-q", "feature")
    repo.git("merge", "-q", "--ff-only", "main")  # a fast-forward
    repo.git("checkout", "-q", "--detach", "HEAD~2")
    repo.git("checkout", "-q", "main")
    repo.git("reset", "-q", "--hard", "HEAD~1")  # back to an ancestor
    repo.git("branch", "-q", "-D", "feature")
    assert repo.refs("refs/gitcache/rewritten/") == {}
    assert_survives_gc(repo)


def test_block_cherry_pick_passes(make: Callable[..., Repo]) -> None:
    repo = project(make, policy="block")
    repo.git("checkout", "-q", "-b", "side")
    picked = commit_and_record(repo, "side\n")
    repo.git("checkout", "-q", "main")
    repo.commit("main moves on")
    repo.git("cherry-pick", picked)
    assert records_for(repo, picked) == [(record_of(repo, picked), False)]


def test_block_in_gitcache_toml_holds_without_installing_again(make: Callable[..., Repo]) -> None:
    repo = project(make)  # installed for "protect": no reference-transaction
    hook = repo.root / ".git" / "hooks" / "reference-transaction"
    old = commit_and_record(repo, "v1\n")
    repo.write("gitcache.toml", TOML + '\n[hooks]\nrewrite = "block"\n')
    result = repo.run("status")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        'gitcache: rewrite = "block" in gitcache.toml: installed the reference-transaction hook'
    )
    status, stderr = git_status(repo, "commit", "--amend", "-m", "reworded")
    assert status != 0 and "refusing to amend" in stderr
    assert repo.head() == old
    assert "reference-transaction" not in repo.run("status").stderr  # once
    # Back to the default: ordinary commits run no reference-transaction hook again.
    repo.write("gitcache.toml", TOML)
    result = repo.run("log")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        'gitcache: rewrite is not "block" in gitcache.toml: removed the reference-transaction hook'
    )
    assert not hook.exists()
    assert repo.run("run").stderr.count("reference-transaction") == 0


def test_a_policy_in_gitcache_toml_installs_the_hooks_it_needs(
    make: Callable[..., Repo],
) -> None:
    # The setting is the step: no `gitcache hooks install` after writing it.
    repo = make({"gitcache.toml": TOML + '\n[hooks]\nrewrite = "block"\n', "src/code.txt": "0"})
    directory = repo.root / ".git" / "hooks"
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        'gitcache: rewrite = "block" in gitcache.toml: installed the reference-transaction, '
        f"pre-rebase, post-rewrite hooks in {directory}"
    )
    assert "warning" not in result.stderr
    assert "installed" not in repo.run("status").stderr  # once
    old = repo.head()
    status, stderr = git_status(repo, "commit", "--amend", "-m", "reworded")
    assert status != 0 and "refusing to amend" in stderr
    assert repo.head() == old


def test_hooks_that_cannot_be_installed_are_said_once(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML + '\n[hooks]\nrewrite = "block"\n', "src/code.txt": "0"})
    repo.write("hooksfile", "")  # core.hooksPath names a file: no hook can go there
    repo.git("config", "core.hooksPath", "hooksfile")
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "hook" in line]
    assert said == [
        'gitcache: warning: rewrite = "block" in gitcache.toml needs its hooks: cannot create '
        f"hooks directory {repo.root / 'hooksfile'}: File exists"
    ], result.stderr


def test_the_default_policy_alone_installs_nothing(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, "src/code.txt": "0"})
    assert repo.run("run").exit_code == 0
    directory = repo.root / ".git" / "hooks"
    assert not any(hooks._ours(directory / n) for n in hooks.HOOK_NAMES)


def test_after_uninstall_a_policy_installs_nothing_again(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML + '\n[hooks]\nrewrite = "protect"\n', "src/code.txt": "0"})
    assert "installed the pre-rebase, post-rewrite hooks" in repo.run("status").stderr
    assert repo.run("hooks", "uninstall").exit_code == 0
    repo.write("gitcache.toml", TOML + '\n[hooks]\nrewrite = "block"\n')
    result = repo.run("run")
    assert result.exit_code == 0
    assert (
        'gitcache: warning: rewrite = "block" needs the reference-transaction, pre-rebase, '
        "post-rewrite hook: run `gitcache hooks install`"
    ) in result.stderr
    directory = repo.root / ".git" / "hooks"
    assert not any(hooks._ours(directory / n) for n in hooks.HOOK_NAMES)
    assert repo.run("hooks", "install").exit_code == 0  # opting in again
    repo.run("hooks", "uninstall")
    repo.run("hooks", "install")
    assert not (repo.root / ".git" / "gitcache" / "hooks-uninstalled").exists()


def test_another_worktree_under_block_keeps_its_hook(make: Callable[..., Repo]) -> None:
    repo = project(make)
    linked = Repo(repo.root.parent / "linked")
    repo.git("worktree", "add", "-q", "--detach", str(linked.root))
    repo.write("gitcache.toml", TOML + '\n[hooks]\nrewrite = "block"\n')
    assert "installed the reference-transaction hook" in repo.run("status").stderr
    result = linked.run("status")  # its own gitcache.toml says "protect"
    assert result.exit_code == 0
    assert "reference-transaction" not in result.stderr
    assert (repo.root / ".git" / "hooks" / "reference-transaction").exists()


# -- chaining a hook that was there before ------------------------------------------------


def _user_hook(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_existing_hook_is_kept_chained_with_its_stdin_and_restored(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "0"})
    hook = repo.root / ".git" / "hooks" / "post-rewrite"
    log = tmp_path / "user-hook.log"
    _user_hook(hook, f'echo "args: $*" >> {log}\ncat >> {log}\n')
    original = hook.read_text()
    assert repo.run("hooks", "install").exit_code == 0
    assert (hook.parent / "post-rewrite.before-gitcache").read_text() == original
    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "amended")
    new = repo.head()
    assert log.read_text() == f"args: amend\n{old} {new}\n"
    assert mappings(repo) == {(old, new)}
    assert_survives_gc(repo)
    status = repo.run("hooks", "status").stdout
    assert "post-rewrite           installed; runs post-rewrite.before-gitcache first" in status
    assert repo.run("hooks", "uninstall").exit_code == 0
    assert hook.read_text() == original
    assert sorted(p.name for p in hook.parent.iterdir()) == ["post-rewrite"]


def test_a_hook_kept_by_an_older_gitcache_moves_out_of_pre_commits_way(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    # Older gitcache kept the previous hook as <name>.legacy, where `pre-commit install`
    # would put gitcache's script, replacing it.
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "0"})
    directory = repo.root / ".git" / "hooks"
    log = tmp_path / "user-hook.log"
    _user_hook(directory / "post-rewrite.legacy", f'echo "args: $*" >> {log}\n')
    original = (directory / "post-rewrite.legacy").read_text()
    (directory / "post-rewrite").write_text(
        hooks.template().replace("@PYTHON@", sys.executable).replace("before-gitcache", "legacy")
    )
    assert "outdated" in repo.run("hooks", "status").stdout
    assert repo.run("hooks", "install").exit_code == 0
    assert (directory / "post-rewrite.before-gitcache").read_text() == original
    assert not (directory / "post-rewrite.legacy").exists()
    commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "amended")
    assert log.read_text() == "args: amend\n"
    assert repo.run("hooks", "uninstall").exit_code == 0
    assert (directory / "post-rewrite").read_text() == original


def test_existing_hook_refusal_stands(make: Callable[..., Repo]) -> None:
    repo = project(make)
    base = repo.head()
    repo.commit("one")
    hook = repo.root / ".git" / "hooks" / "pre-rebase"
    hooks.uninstall(GitRepo.discover(repo.root))
    _user_hook(hook, 'echo "user hook says no" >&2\nexit 3\n')
    assert repo.run("hooks", "install").exit_code == 0
    status, stderr = git_status(repo, "rebase", "--force-rebase", base)
    assert status != 0 and "user hook says no" in stderr


def test_existing_reference_transaction_hook_gets_every_state(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make({"gitcache.toml": TOML + '\n[hooks]\nrewrite = "block"\n'})
    log = tmp_path / "rt.log"
    _user_hook(
        repo.root / ".git" / "hooks" / "reference-transaction",
        f'echo "$1" >> {log}\ncat >> {log}\n',
    )
    assert repo.run("hooks", "install").exit_code == 0
    before = repo.head()
    repo.commit("ordinary")
    lines = log.read_text().splitlines()
    assert lines[0] == "prepared" and f"{before} {repo.head()} HEAD" in lines
    assert "committed" in lines


# -- failing open, and no virtualenv needed ----------------------------------------------


def test_hook_needs_no_active_virtualenv(make: Callable[..., Repo]) -> None:
    repo = project(make)
    old = commit_and_record(repo, "v1\n")
    bare_path = "/usr/bin:/bin"  # no pyenv shims, no venv: python3 here lacks pygit2
    env = _env(PATH=bare_path, VIRTUAL_ENV=None)
    status, stderr = git_status(repo, "commit", "--amend", "-m", "x", env=env)
    assert status == 0 and "warning" not in stderr, stderr
    assert mappings(repo) == {(old, repo.head())}


def _gone(tmp_path: Path) -> dict[str, str]:
    """An environment where the hook's python cannot import gitcache, even if installed."""
    shadow = tmp_path / "shadow" / "gitcache"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("raise ImportError('gitcache is gone')\n")
    return _env(PYTHONPATH=str(shadow.parent))


def test_gitcache_not_importable_fails_open_with_one_line(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = project(make)
    commit_and_record(repo, "v1\n")
    status, stderr = git_status(repo, "commit", "--amend", "-m", "x", env=_gone(tmp_path))
    assert status == 0
    assert stderr.splitlines() == [
        f"gitcache: warning: post-rewrite hook: cannot run gitcache with {sys.executable}; "
        "skipped (reinstall gitcache, then run `gitcache hooks install`)"
    ]
    assert mappings(repo) == set()


def test_gitcache_not_importable_under_block_refuses(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = project(make, policy="block")
    old = commit_and_record(repo, "v1\n")
    status, stderr = git_status(repo, "commit", "--amend", "-m", "x", env=_gone(tmp_path))
    assert status != 0 and repo.head() == old
    assert stderr.splitlines()[0].startswith(
        "gitcache: error: reference-transaction hook: cannot run gitcache with"
    )
    # an ordinary commit does not need gitcache at all
    assert git_status(repo, "commit", "--allow-empty", "-m", "y", env=_gone(tmp_path))[0] == 0


def test_interpreter_gone_fails_open(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML})
    hooks.install(GitRepo.discover(repo.root), "protect", python="/nonexistent/python")
    commit_and_record(repo, "v1\n")
    status, stderr = git_status(repo, "commit", "--amend", "-m", "x")
    assert status == 0
    assert "cannot run gitcache with /nonexistent/python; skipped" in stderr
    assert "its python /nonexistent/python is gone" in repo.run("hooks", "status").stdout


def test_the_shell_decides_without_python_on_the_common_path(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    """With a python that logs every start, ordinary work never starts it."""
    spy = tmp_path / "python-spy"
    starts = tmp_path / "starts"
    spy.write_text(f'#!/bin/sh\necho "$@" >> {starts}\nexec {sys.executable} "$@"\n')
    spy.chmod(0o755)
    repo = make({"gitcache.toml": TOML + '[hooks]\nrewrite = "block"\n'})
    hooks.install(GitRepo.discover(repo.root), "block", python=str(spy))
    commit_and_record(repo, "v1\n")
    repo.commit("ordinary")
    repo.git("checkout", "-q", "-b", "other")
    repo.commit("on other")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "other")
    repo.git("tag", "t1")
    assert not starts.exists()
    repo.git("commit", "-q", "--amend", "--allow-empty", "-m", "amend: gitcache decides")
    assert starts.read_text().count("reference-transaction") == 1


# -- where hooks go ------------------------------------------------------------------------


def test_read_only_hooks_directory_is_a_clear_error(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    directory = repo.root / ".git" / "hooks"
    directory.mkdir()
    directory.chmod(0o555)
    immutable = False
    try:
        if os.access(directory, os.W_OK):  # root ignores permissions: make it immutable
            done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
            if done.returncode != 0:
                pytest.skip("cannot make a directory read-only here")
            immutable = True
        result = repo.run("hooks", "install")
        assert result.exit_code == 2
        assert result.stderr.startswith(f"gitcache: error: cannot write hooks into {directory}: ")
        assert len(result.stderr.splitlines()) == 1
        assert list(directory.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o755)


def test_foreign_hook_and_legacy_both_present_is_refused(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    directory = repo.root / ".git" / "hooks"
    _user_hook(directory / "post-rewrite", "exit 0\n")
    _user_hook(directory / "post-rewrite.legacy", "exit 0\n")
    result = repo.run("hooks", "install")
    assert result.exit_code == 2
    assert result.stderr == (
        f"gitcache: error: {directory / 'post-rewrite'} is not gitcache's and "
        "post-rewrite.legacy exists too (move one of them away, then install again)\n"
    )
    assert not (directory / "pre-rebase").exists()


def test_hooks_dir_follows_core_hooks_path_and_submodules(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    git = GitRepo.discover(repo.root)
    assert hooks.hooks_dir(git) == repo.root / ".git" / "hooks"
    repo.git("config", "core.hooksPath", "custom/hooks")
    assert hooks.hooks_dir(GitRepo.discover(repo.root)) == repo.root / "custom" / "hooks"
    repo.git("config", "core.hooksPath", "~/shared-hooks")
    assert hooks.hooks_dir(GitRepo.discover(repo.root)) == Path.home() / "shared-hooks"
    repo.git("config", "--unset", "core.hooksPath")
    sub = make({"b": "2"}, name="sub")
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.root), "sub")
    inner = GitRepo.discover(repo.root / "sub")
    assert hooks.hooks_dir(inner) == repo.root / ".git" / "modules" / "sub" / "hooks"
    hooks.install(inner, "protect")
    assert (repo.root / ".git" / "modules" / "sub" / "hooks" / "post-rewrite").exists()
    assert not (repo.root / ".git" / "hooks" / "post-rewrite").exists()
