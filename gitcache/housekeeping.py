"""Letting git reclaim the space of dropped records (`gitcache gc --prune`).

gitcache only removes refs; the objects of a dropped record stay in the repository
until git's own garbage collection prunes them. This is the one place outside the
remote module that runs the git executable: libgit2 (pygit2) has no equivalent of
`git gc` (repacking and pruning unreachable objects), and re-implementing it would
risk the user's data, so we hand the job to git itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitcache.errors import RepositoryError
from gitcache.processes import stopping_children


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
