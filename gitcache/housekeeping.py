"""Letting git reclaim the space of dropped records (`gitcache gc --prune`).

gitcache only removes refs; the objects of a dropped record stay in the repository
until git's own garbage collection prunes them. This is the one place outside the
remote module that runs the git executable: libgit2 (pygit2) has no equivalent of
`git gc` (repacking and pruning unreachable objects), and re-implementing it would
risk the user's data, so we hand the job to git itself.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Final

from gitcache.errors import RepositoryError
from gitcache.processes import stopping_children

AUTO_PACK_LIMIT: Final = 50  # git's gc.autoPackLimit default


def too_many_packs(objects: Path, limit: int = AUTO_PACK_LIMIT) -> bool:
    """Whether `objects/pack` holds more packs than git's `gc --auto` lets be."""
    count = 0
    try:
        with os.scandir(objects / "pack") as entries:
            for entry in entries:
                if entry.name.endswith(".pack"):
                    count += 1
                    if count > limit:
                        return True
    except FileNotFoundError:
        pass
    return False


def start_auto_gc(root: Path) -> None:
    """`git gc --auto --quiet` as git runs it after a commit: each run that records
    writes packs (a 1,000-item sweep, ten) and libgit2 looks an object up in each, so
    without a repack every run gets slower. git decides (gc.auto, gc.autoPackLimit),
    repacks in the background (autoDetach: this returns once it has checked) and prunes
    only objects two weeks old, never a running step's."""
    # Without git, or stuck: the packs stay until the user's next git command repacks.
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            ["git", "-c", "gc.autoDetach=true", "gc", "--auto", "--quiet"],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the detached repack outlives us, and our Ctrl-C
            timeout=60,
            check=False,
        )


def run_git_gc(root: Path, prune: str = "now") -> None:
    """`git gc --prune=<prune> --quiet` in the repository; raise RepositoryError on failure.

    Call it under `locks.dropping_records` (the objects lock held exclusive): then no
    gitcache process has written objects its refs do not hold yet, and none starts
    until git is done; `--prune=now` would otherwise delete a running step's outputs.
    So git must not outlive the lock: a signal that stops gitcache stops git too.
    """
    with stopping_children() as children:
        try:
            proc = subprocess.Popen(
                ["git", "gc", f"--prune={prune}", "--quiet"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise RepositoryError(f"could not run git gc: {exc}") from None
        children.add(proc)
        _out, err = proc.communicate()
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip() or proc.returncode
        raise RepositoryError(f"git gc failed: {message}")
