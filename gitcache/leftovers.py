"""Temporary files that a killed restore left in the worktree.

A restore writes each file under a temporary name beside its target (`.gitcache-tmp-*`,
worktree.py) and renames it into place. kill -9 (or a crash, a power cut) between the
two leaves the temporary file behind: beside a declared file output it is litter, and
inside a declared directory output it looks like a file of the user's, which the next
restore then refuses to remove. So before restoring a step's outputs, the temporary
files under and beside them that no live process is writing go.

Only what a restore makes counts, never a user's file that merely has the prefix: a
symlink named `.gitcache-tmp-<pid>-<name>` belongs to that process; a regular file
named by `tempfile.mkstemp` (8 random characters after the prefix) is taken as abandoned when no
process holds it open (Linux: /proc/<pid>/fd) and it was not written in the last
`_QUIET_S` seconds (the writer closes it just before renaming it). Without /proc, such a
file goes only once it is an hour old.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from gitcache.dirtree import walk
from gitcache.scratch import process_alive

TEMP_PREFIX = ".gitcache-tmp-"
_MKSTEMP_NAME = re.compile(r"[a-z0-9_]{8}")  # tempfile's random part of a name
_QUIET_S = 0.1  # a live writer renames the file this soon after its last write
_NO_PROC_AGE_S = 3600  # without /proc: abandoned after an hour


def remove_restore_leftovers(root: Path, outputs: Iterable[str]) -> list[str]:
    """Remove the abandoned temporary files of restores under the declared `outputs`
    (directories, walked without following links) and beside them (a file output's
    directory); the paths removed, relative to `root`."""
    found = _candidates(root, outputs)
    if not found:
        return []  # the common case: one lstat and one listing per output
    held = _held_open() if os.path.isdir("/proc/self/fd") else None
    now = time.time()
    removed = []
    for path in found:
        if _abandoned(path, held, now):
            with contextlib.suppress(OSError):  # gone, or not ours to remove: left
                os.unlink(path)
                removed.append(path.relative_to(root).as_posix())
    return removed


def _candidates(root: Path, outputs: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    seen: set[Path] = set()
    for rel in outputs:
        path = root / rel
        for directory in (path, path.parent):
            if directory in seen or not _real_directory(root, directory):
                continue
            seen.add(directory)
            if directory == path:  # a directory output: everything under it
                for dirpath, _dirs, names in walk(directory):
                    found += [Path(dirpath, n) for n in names if n.startswith(TEMP_PREFIX)]
            else:
                with contextlib.suppress(OSError), os.scandir(directory) as entries:
                    found += [Path(e.path) for e in entries if e.name.startswith(TEMP_PREFIX)]
    return found


def _real_directory(root: Path, directory: Path) -> bool:
    """A directory inside the worktree reached through no symlink (never clean elsewhere)."""
    if not directory.is_dir() or directory.is_symlink():
        return False
    real = Path(os.path.realpath(directory))
    return real == Path(os.path.realpath(root)) / directory.relative_to(root)


def _abandoned(path: Path, held: set[tuple[int, int]] | None, now: float) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    suffix = path.name[len(TEMP_PREFIX) :]
    # Only what a restore makes: a link as `<pid>-<name>`, a file by mkstemp (8 random
    # characters). Anything else with the prefix (`.gitcache-tmp-notes.txt`, a directory)
    # is the user's, and stays.
    pid_text, dash, rest = suffix.partition("-")
    if stat.S_ISLNK(info.st_mode):
        if not (pid_text.isdigit() and dash and rest):
            return False
        return int(pid_text) != os.getpid() and not process_alive(int(pid_text))
    if not stat.S_ISREG(info.st_mode) or _MKSTEMP_NAME.fullmatch(suffix) is None:
        return False
    if held is None:
        return now - info.st_mtime > _NO_PROC_AGE_S
    return (info.st_dev, info.st_ino) not in held and now - info.st_mtime > _QUIET_S


def _held_open() -> set[tuple[int, int]]:
    """(device, inode) of every file some process we can see holds open."""
    held: set[tuple[int, int]] = set()
    with os.scandir("/proc") as procs:
        pids = [p.name for p in procs if p.name.isdigit()]
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or not ours to look at
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                info = os.stat(f"/proc/{pid}/fd/{fd}")
                held.add((info.st_dev, info.st_ino))
    return held
