"""Keeping the installed hooks in step with `[hooks] rewrite` in gitcache.toml.

`reference-transaction` is installed only for `rewrite = "block"` (it runs on every
ref update: hooks.py). Where gitcache's hooks are installed, every command that
opens the project makes the hook set follow the policy, so that setting "block" in
gitcache.toml protects the next amend without another `gitcache hooks install`, and
leaving it removes the hook that would slow every commit.

Where none are installed, a `[hooks] rewrite` written in gitcache.toml ("protect"
or "block") installs them: the setting asks for what the hooks do. The default
alone installs nothing (`gitcache init` does), nor does any setting once the user
ran `gitcache hooks uninstall` (OPTED_OUT; `gitcache run` then says what is
missing).

The common case costs one config read and one lstat, and imports nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from gitcache.errors import HookError
from gitcache.gitrepo import GitRepo

MARKER = "gitcache-hook-template"  # hooks.MARKER, here to keep this module light
BLOCK_HOOK = "reference-transaction"
_ALWAYS = ("pre-rebase", "post-rewrite")
OPTED_OUT = "hooks-uninstalled"  # in the state dir: `gitcache hooks uninstall` ran

Change = tuple[Literal["note", "warning"], str]


def hooks_dir(repo: GitRepo) -> Path:
    """Where git looks for hooks: core.hooksPath, else the common git dir's hooks/.

    Linked worktrees share the common dir's hooks; a submodule has its own git dir.
    A relative core.hooksPath is relative to the worktree root, where hooks run.
    """
    configured = repo.config_value("core.hooksPath")
    if configured:
        path = Path(os.path.expanduser(configured))
        return path if path.is_absolute() else repo.root / path
    return repo.common_dir / "hooks"


def follow_policy(repo: GitRepo, rewrite: str, explicit: bool = False) -> Change | None:
    """Make the installed hooks what `rewrite` needs (see the module's docstring;
    `explicit`: gitcache.toml sets it); what changed (or could not), for one line."""
    directory = hooks_dir(repo)
    path = directory / BLOCK_HOOK
    wants_hooks = explicit and rewrite in ("protect", "block")
    if wants_hooks and not _installed(directory) and not opted_out(repo):
        return _install_all(repo, rewrite, directory)
    if rewrite == "block":
        if _marked(path):
            return None
        if not _installed(directory):
            return None
        from gitcache import hooks

        try:
            hooks.install(repo, "block")
        except HookError as exc:
            return ("warning", f'rewrite = "block" needs the {BLOCK_HOOK} hook: {exc.message}')
        return ("note", f'rewrite = "block" in gitcache.toml: installed the {BLOCK_HOOK} hook')
    if not os.path.lexists(path) or not _marked(path):
        return None
    from gitcache import hooks

    if hooks.block_in_another_worktree(repo):
        return None  # the hooks directory is shared: that worktree still needs it
    try:
        hooks.uninstall(repo, [BLOCK_HOOK])
    except HookError as exc:
        return ("warning", exc.message)
    return ("note", f'rewrite is not "block" in gitcache.toml: removed the {BLOCK_HOOK} hook')


def opted_out(repo: GitRepo) -> bool:
    """Whether the user removed gitcache's hooks (`gitcache hooks uninstall`): then no
    setting installs them again, and `gitcache run` says what a policy lacks."""
    return (repo.state_dir / OPTED_OUT).exists()


def _installed(directory: Path) -> bool:
    """Whether gitcache's hooks are installed: ours, possibly behind pre-commit's hook
    (as <name>.legacy: hooks.py)."""
    return any(_marked(directory / n) or _marked(directory / f"{n}.legacy") for n in _ALWAYS)


def _install_all(repo: GitRepo, rewrite: str, directory: Path) -> Change:
    from gitcache import hooks

    try:
        installed = hooks.install(repo, rewrite)
    except HookError as exc:
        return ("warning", f'rewrite = "{rewrite}" in gitcache.toml needs its hooks: {exc.message}')
    names = ", ".join(h.name for h in installed if h.state == "installed")
    return (
        "note",
        f'rewrite = "{rewrite}" in gitcache.toml: installed the {names} hooks in {directory}',
    )


def _marked(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return MARKER.encode() in f.read(4096)
    except OSError:
        return False
