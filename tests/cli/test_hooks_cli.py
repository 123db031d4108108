"""`gitcache hooks install|uninstall|status`, `gitcache init`, and `gitcache hook NAME`."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from gitcache import hooks
from gitcache.cli.main import main
from tests.helpers import PACKAGE_ROOT, Repo
from tests.hookutil import BLOCK, TOML, commit_and_record, mappings


def _hooks(repo: Repo) -> Path:
    return repo.root / ".git" / "hooks"


def test_install_writes_the_hooks_the_policy_needs(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML})
    result = repo.run("hooks", "install")
    assert result.exit_code == 0
    assert result.stdout == (
        f"installed {_hooks(repo) / 'pre-rebase'}\ninstalled {_hooks(repo) / 'post-rewrite'}\n"
    )
    for name in ("pre-rebase", "post-rewrite"):
        path = _hooks(repo) / name
        assert path.stat().st_mode & 0o777 == 0o755
        assert path.read_text() == hooks.template().replace("@PYTHON@", shlex.quote(sys.executable))
    assert not (_hooks(repo) / "reference-transaction").exists()


def test_installing_twice_changes_nothing(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML + BLOCK})
    assert repo.run("hooks", "install").exit_code == 0
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _hooks(repo).iterdir()}
    again = repo.run("hooks", "install")
    assert again.exit_code == 0
    assert again.stdout == f"hooks already installed in {_hooks(repo)}\n"
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _hooks(repo).iterdir()}
    assert after == before and len(after) == 3


def test_policy_change_adds_and_removes_reference_transaction(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML})
    repo.run("hooks", "install")
    repo.write("gitcache.toml", TOML + BLOCK)
    assert "(needed: run `gitcache hooks install`)" in repo.run("hooks", "status").stdout
    result = repo.run("hooks", "install")
    assert result.stdout == f"installed {_hooks(repo) / 'reference-transaction'}\n"
    repo.write("gitcache.toml", TOML)
    result = repo.run("hooks", "install")
    assert result.stdout == (
        f'removed {_hooks(repo) / "reference-transaction"} (needed only with rewrite = "block")\n'
    )


def test_status(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML})
    assert repo.run("hooks", "status").stdout == (
        f"hooks directory: {_hooks(repo)}\n"
        "rewrite policy:  protect\n"
        'reference-transaction  not installed (needed only with rewrite = "block")\n'
        "pre-rebase             not installed (needed: run `gitcache hooks install`)\n"
        "post-rewrite           not installed (needed: run `gitcache hooks install`)\n"
    )
    repo.run("hooks", "install")
    (_hooks(repo) / "post-rewrite").write_text("#!/bin/sh\n# gitcache-hook-template 0\n")
    lines = repo.run("hooks", "status").stdout.splitlines()
    assert lines[3:] == [
        "pre-rebase             installed",
        "post-rewrite           installed, outdated (run `gitcache hooks install`) "
        "(needed: run `gitcache hooks install`)",
    ]


def test_uninstall_when_nothing_is_installed(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    result = repo.run("hooks", "uninstall")
    assert result.exit_code == 0
    assert result.stdout == f"no gitcache hooks in {_hooks(repo)}\n"


def test_uninstall_leaves_a_foreign_hook(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    repo.run("hooks", "install")
    foreign = _hooks(repo) / "post-rewrite"
    foreign.write_text("#!/bin/sh\nexit 0\n")
    result = repo.run("hooks", "uninstall")
    assert result.stdout == f"removed {_hooks(repo) / 'pre-rebase'}\n"
    assert foreign.read_text() == "#!/bin/sh\nexit 0\n"


def test_readable_copies_match_what_install_writes(make: Callable[..., Repo]) -> None:
    shipped = PACKAGE_ROOT / "hooks" / "gitcache-hook"
    assert shipped.read_text() == hooks.template()
    assert os.access(shipped, os.X_OK)
    for name in hooks.HOOK_NAMES:
        assert (PACKAGE_ROOT / "hooks" / name).resolve() == shipped.resolve()
    repo = make({"gitcache.toml": TOML + BLOCK})
    repo.run("hooks", "install")
    for name in hooks.HOOK_NAMES:
        installed = (_hooks(repo) / name).read_text()
        baked = f"GITCACHE_PYTHON={shlex.quote(sys.executable)}\n"
        assert installed.replace(baked, "GITCACHE_PYTHON=@PYTHON@\n") == shipped.read_text()


def test_init_installs_the_hooks(make: Callable[..., Repo]) -> None:
    repo = make({}, commit=False)
    result = repo.run("init")
    assert result.exit_code == 0
    assert f"installed {_hooks(repo) / 'post-rewrite'}" in result.stdout
    assert (_hooks(repo) / "pre-rebase").exists()


def test_hook_command_is_hidden() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert " hooks " in result.stdout and " hook " not in result.stdout


def _flat_yaml_list(text: str) -> list[dict[str, str]]:
    """The manifest is a flat list of `key: value` mappings; read it without PyYAML."""
    items: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("- "):
            items.append({})
            line = line[2:]
        key, _, value = line.strip().partition(":")
        items[-1][key] = value.strip()
    return items


def test_pre_commit_manifest() -> None:
    manifest = _flat_yaml_list((PACKAGE_ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in manifest}
    assert set(by_id) == {"gitcache-post-rewrite", "gitcache-pre-rebase"}
    assert by_id["gitcache-post-rewrite"]["entry"] == "gitcache hook post-rewrite"
    assert by_id["gitcache-post-rewrite"]["stages"] == "[post-rewrite]"
    assert by_id["gitcache-pre-rebase"]["stages"] == "[pre-rebase]"
    assert all(h["always_run"] == "true" and h["pass_filenames"] == "false" for h in manifest)
    assert all(h["language"] == "python" for h in manifest)


# -- `gitcache hook NAME` in process, as the pre-commit framework calls it ------------------


def _hook(repo: Repo, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
    return CliRunner().invoke(
        main, ["-C", str(repo.root), "hook", *args], input=stdin, env=env or {}
    )


def test_post_rewrite_without_stdin_reads_the_reflog(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "0"})
    old = commit_and_record(repo, "v1\n")
    repo.git("commit", "-q", "--amend", "-m", "amended without our hooks")
    result = _hook(repo, "post-rewrite", env={"PRE_COMMIT_REWRITE_COMMAND": "amend"})
    assert result.exit_code == 0
    assert mappings(repo) == {(old, repo.head())}


def test_pre_rebase_from_pre_commit_environment(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML + BLOCK, ".gitignore": "out/\n", "src/code.txt": "0"})
    base = repo.head()
    old = commit_and_record(repo, "v1\n")
    env = {"PRE_COMMIT_PRE_REBASE_UPSTREAM": base}
    result = _hook(repo, "pre-rebase", env=env)
    assert result.exit_code == 1
    assert "refusing to rebase" in result.stderr and old[:12] in result.stderr
    allowed = _hook(repo, "pre-rebase", env={**env, "GITCACHE_ALLOW_REWRITE": "1"})
    assert allowed.exit_code == 0


def test_hook_with_a_broken_workflow_fails_open(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "0"})
    base = repo.head()
    commit_and_record(repo, "v1\n")
    repo.write("gitcache.toml", "[hooks]\nrewrite = 'sometimes'\n")
    result = _hook(repo, "pre-rebase", base)
    assert result.exit_code == 0
    assert result.stderr.startswith("gitcache: warning: gitcache.toml: hooks.rewrite: ")
    assert result.stderr.rstrip().endswith("using the default rewrite policy")


def test_unknown_hook_name_warns(make: Callable[..., Repo]) -> None:
    repo = make({"a": "1"})
    result = _hook(repo, "pre-push")
    assert result.exit_code == 0
    assert result.stderr == "gitcache: warning: unknown hook 'pre-push'; nothing to do\n"


def test_pre_rebase_root_covers_every_commit(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML + BLOCK, ".gitignore": "out/\n", "src/code.txt": "0"})
    old = commit_and_record(repo, "v1\n")
    repo.commit("later")
    result = _hook(repo, "pre-rebase", "--root")
    assert result.exit_code == 1 and old[:12] in result.stderr
    assert _hook(repo, "pre-rebase", "HEAD~1").exit_code == 0  # only "later" is rewritten


def test_install_hides_records_from_log_decorate_in_a_file_of_our_own(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "0"})
    repo.git("config", "user.note", "mine")
    commit_and_record(repo, "v1\n")
    head = repo.head()
    # A gitcache ref at HEAD: shown where all refs decorate (--clear-decorations, old git).
    repo.git("update-ref", "refs/gitcache/test/at-head", head)
    assert "refs/gitcache/" in repo.git("log", "--clear-decorations", "-1", "--format=%D", head)
    assert repo.run("hooks", "install").exit_code == 0
    assert repo.git("config", "--get-all", "include.path").split() == [hooks.CONFIG_INCLUDE]
    assert "refs/gitcache/" not in repo.git("log", "--clear-decorations", "-1", "--format=%D", head)
    assert repo.run("hooks", "install").exit_code == 0  # idempotent: still one include line
    assert repo.git("config", "--get-all", "include.path").split() == [hooks.CONFIG_INCLUDE]
    assert repo.run("hooks", "uninstall").exit_code == 0
    assert repo.git("config", "--get-all", "include.path", check=False) == ""
    assert "refs/gitcache/" in repo.git("log", "--clear-decorations", "-1", "--format=%D", head)
    assert repo.git("config", "user.note").strip() == "mine"  # the user's lines untouched
    assert not (repo.root / ".git" / hooks.CONFIG_INCLUDE).exists()


def test_a_state_dir_that_is_no_directory_is_one_line_and_changes_nothing(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": TOML})
    assert repo.run("hooks", "install").exit_code == 0
    state = repo.root / ".git" / "gitcache"
    for child in state.iterdir():
        child.unlink()
    state.rmdir()
    state.write_text("")  # a file where gitcache keeps its state
    for command, path in (("uninstall", "hooks-uninstalled"), ("install", "gitconfig")):
        result = repo.run("hooks", command)
        assert result.exit_code == 2, result.stderr
        assert result.stderr == f"gitcache: error: cannot write {state / path}: File exists\n"
        assert (_hooks(repo) / "post-rewrite").exists()  # uninstall removed nothing
