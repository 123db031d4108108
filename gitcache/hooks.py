"""Installing the git hooks: where they go, chaining a hook already there, undoing it.

As pre-commit does: the script is rendered from a template shipped as package data
with the installing interpreter baked in (so the hook works with no virtualenv
active), carries a marker naming it ours, moves a foreign hook aside to
`<name>.legacy` (the script runs it first) and `uninstall` puts it back.
Everything is checked before anything is written; files are replaced atomically.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from gitcache.errors import HookError
from gitcache.gitrepo import GitRepo

HOOK_NAMES: Final = ("reference-transaction", "pre-rebase", "post-rewrite")
# git runs reference-transaction twice for every ref update: even an empty hook there
# makes an ordinary commit some 15% slower, so it is installed only for the policy
# that needs it (rewrite = "block" refuses an amend there).
BLOCK_ONLY: Final = frozenset({"reference-transaction"})
MARKER: Final = "gitcache-hook-template"
PYTHON_PLACEHOLDER: Final = "@PYTHON@"
LEGACY_SUFFIX: Final = ".legacy"

State = Literal["installed", "outdated", "absent", "foreign"]


@dataclass(frozen=True)
class HookStatus:
    name: str
    path: Path
    state: State  # installed: ours and current; outdated: ours, older or another python
    legacy: bool  # a previous hook is kept and chained as <name>.legacy
    python: str | None  # the interpreter an installed hook runs


def template() -> str:
    return (resources.files("gitcache") / "hook_templates" / "hook").read_text()


def render(python: str) -> str:
    return template().replace(PYTHON_PLACEHOLDER, shlex.quote(python), 1)


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


def _ours(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return MARKER.encode() in f.read(4096)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    except OSError as exc:
        raise HookError(f"cannot read hook {path}: {exc.strerror}") from None


def _baked_python(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("GITCACHE_PYTHON="):
            words = shlex.split(line.partition("=")[2])
            return words[0] if words else None
    return None


def status(repo: GitRepo, python: str = sys.executable) -> list[HookStatus]:
    directory = hooks_dir(repo)
    wanted = render(python)
    found = []
    for name in HOOK_NAMES:
        path = directory / name
        legacy = os.path.lexists(str(path) + LEGACY_SUFFIX)
        if not os.path.lexists(path):
            found.append(HookStatus(name, path, "absent", legacy, None))
        elif not _ours(path):
            found.append(HookStatus(name, path, "foreign", legacy, None))
        else:
            text = path.read_text()
            state: State = "installed" if text == wanted else "outdated"
            found.append(HookStatus(name, path, state, legacy, _baked_python(text)))
    return found


def wanted(rewrite: str) -> list[str]:
    """The hooks a rewrite policy needs."""
    return [n for n in HOOK_NAMES if rewrite == "block" or n not in BLOCK_ONLY]


def missing(repo: GitRepo, rewrite: str) -> list[str]:
    """Hooks the policy needs that are not installed (as ours) in the hooks directory."""
    directory = hooks_dir(repo)
    return [n for n in wanted(rewrite) if not _ours(directory / n)]


# Git configuration gitcache adds lives in a file of its own, included from the
# repository's config, so that uninstall removes one include line and never edits
# the user's lines (as CONVENTIONS.md asks). The path is relative to the git dir.
CONFIG_INCLUDE = "gitcache/gitconfig"
CONFIG_TEXT = """\
# Written by `gitcache hooks install`; removed by `gitcache hooks uninstall`.
[log]
\t# Records are refs under refs/gitcache/: keep them out of `git log --decorate`.
\texcludeDecoration = refs/gitcache/
"""


def install_config(repo: GitRepo) -> None:
    """Write gitcache's own git config file and include it from the repository's config."""
    path = repo.common_dir / CONFIG_INCLUDE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != CONFIG_TEXT:
        path.write_text(CONFIG_TEXT)
    repo.add_config_include(CONFIG_INCLUDE)


def uninstall_config(repo: GitRepo) -> None:
    repo.remove_config_include(CONFIG_INCLUDE)
    (repo.common_dir / CONFIG_INCLUDE).unlink(missing_ok=True)


def install(repo: GitRepo, rewrite: str, python: str = sys.executable) -> list[HookStatus]:
    """Make the hooks match the policy (idempotent); a foreign hook is kept as <name>.legacy.

    A hook the policy does not need (reference-transaction unless "block") is removed
    if it is ours, and what it replaced put back.
    """
    directory = hooks_dir(repo)
    names = wanted(rewrite)
    before = [h for h in status(repo, python) if h.name in names]
    for hook in before:
        if hook.state == "foreign" and hook.legacy:
            raise HookError(
                f"{hook.path} is not gitcache's and {hook.path.name}{LEGACY_SUFFIX} exists too",
                hint="move one of them away, then install again",
            )
    uninstall(repo, [n for n in HOOK_NAMES if n not in names])
    install_config(repo)
    todo = [h for h in before if h.state != "installed"]
    if not todo:
        return status(repo, python)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HookError(f"cannot create hooks directory {directory}: {exc.strerror}") from None
    text = render(python)
    staged: list[tuple[Path, HookStatus]] = []
    try:
        for hook in todo:  # every file written before any is put in place
            staged.append((_stage(directory, text), hook))
    except HookError:
        for temp, _hook in staged:
            temp.unlink()
        raise
    for temp, hook in staged:
        if hook.state == "foreign":
            os.replace(hook.path, str(hook.path) + LEGACY_SUFFIX)
        os.replace(temp, hook.path)
    return status(repo, python)


def _stage(directory: Path, text: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=".gitcache-hook-", dir=directory)
    except OSError as exc:
        raise HookError(
            f"cannot write hooks into {directory}: {exc.strerror}",
            hint="make the directory writable, or set core.hooksPath to one that is",
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(name, 0o755)  # never group- or world-writable
    return Path(name)


def uninstall(repo: GitRepo, names: Sequence[str] = HOOK_NAMES) -> list[HookStatus]:
    """Remove our hooks and put back any <name>.legacy; a foreign hook stays as it is."""
    if set(names) == set(HOOK_NAMES):
        uninstall_config(repo)
    removed = []
    for hook in status(repo):
        if hook.name not in names or hook.state not in ("installed", "outdated"):
            continue
        legacy = Path(str(hook.path) + LEGACY_SUFFIX)
        try:
            if hook.legacy:
                os.replace(legacy, hook.path)
            else:
                hook.path.unlink()
        except OSError as exc:
            raise HookError(f"cannot remove {hook.path}: {exc.strerror}") from None
        removed.append(hook)
    return removed
