"""Hashing a run's big input files on a thread while gitcache starts up.

A first `gitcache run` of a step reading a big file must hash that file for the
signature (~0.17 s per 200 MB here) before anything else can happen, and Python's
imports take about as long on one core. So `gitcache run`, before it imports the
engine, reads gitcache.toml with tomllib alone and hands the big input files that
the stat cache cannot answer for to `filehash.hash_ahead`; `filehash.hash_file`
then takes their blob ids from there (or hashes a file itself if the thread has not
begun it). A guess that is wrong costs a wasted read, never a wrong id: an id hashed
ahead is used only for the very file (device, inode, size, times) it was read from.

Only what is certain to be hashed is guessed: plain files (no glob, no template, no
sweep) that no step produces, of steps the command runs, at least MIN_SIZE bytes,
changed since the stat cache was last written (the cache trusts no row of a file
newer than itself). Anything unusual (another workflow file, task files, an option
not listed here, a mode that may not hash inputs) skips the guess, and so does a
machine without an idle core now (`_core_to_spare`): the thread would only take turns
with the imports.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

MIN_SIZE: Final = 8 * 2**20  # bytes: smaller files hash in a few milliseconds
MAX_FILES: Final = 16
_FLAGS: Final = frozenset({"-q", "--quiet", "-k", "--keep-going"})
_VALUED: Final = frozenset({"-j", "--jobs", "-p", "--param", "--remote"})
_HASHING_MODES: Final = frozenset({"default", "force", "build", "assert"})


def run_arguments(params: Mapping[str, Any], args: Sequence[str]) -> None:
    """Start hashing ahead for `gitcache [global options] run ARGS` (never raises: a
    guess that cannot be made is no guess)."""
    try:
        targets = _targets(args)
        if targets is None or params.get("workflow_file") is not None or not _core_to_spare():
            return
        directory = params.get("directory") or Path(".")
        found = _candidates(os.path.realpath(directory), targets)
        if found:
            from gitcache.filehash import hash_ahead

            hash_ahead(*found)
    except Exception:  # an optimisation: the run itself reports problems
        return


def _core_to_spare(load: float | None = None, cpus: int | None = None) -> bool:
    """Whether a core is likely idle: two CPUs or more for this process, and the tasks
    running now (this one included: `_load`) at least half a CPU under their number.
    Without one, the two threads only take turns (measured on two cores busy with
    other jobs: the step's command started 0.06-0.11 s later than with the input
    hashed after the imports, in the medians of three series of 10-12 runs; 0.03 s
    sooner in a fourth)."""
    try:
        load = _load() if load is None else load
        cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    except (OSError, AttributeError):  # no load figure here: no guess either
        return False
    return cpus >= 2 and load < cpus - 0.5


def _load() -> float:
    """The tasks runnable now, this process included (Linux: /proc/loadavg's fourth
    field), else the 1-minute load average. The average still counts, for a minute,
    jobs that have ended: a run right after a build found no idle core and hashed
    its 200 MB input after the imports, 0.17 s later."""
    try:
        with open("/proc/loadavg", "rb") as handle:
            return float(handle.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0]


def _targets(args: Sequence[str]) -> list[str] | None:
    """The step names of `run ARGS`, or None when the guess should not be made."""
    targets: list[str] = []
    items = iter(args)
    for arg in items:
        if arg in _FLAGS:
            continue
        if arg in _VALUED:
            next(items, None)
        elif arg in ("-s", "--signature-mode"):
            if next(items, None) not in _HASHING_MODES:
                return None
        elif arg.startswith("-") or arg.endswith(".json") or "[" in arg:
            return None
        else:
            targets.append(arg)
    return targets


def _candidates(start: str, targets: Sequence[str]) -> tuple[list[str], str] | None:
    """(absolute paths of the files to hash ahead, the directory for a clock file)."""
    import tomllib

    found = _repository(start)
    if found is None:
        return None
    root, git_dir = found
    with open(os.path.join(root, "gitcache.toml"), "rb") as handle:
        steps = tomllib.load(handle).get("steps")
    if not isinstance(steps, dict):
        return None
    produced: list[str] = []
    wanted: list[str] = []
    for name, spec in steps.items():
        if not isinstance(spec, dict):
            return None
        outputs, inputs = spec.get("outputs", []), spec.get("inputs", [])
        if not isinstance(outputs, list) or not isinstance(inputs, list):
            return None
        produced += [_inside(root, p) or "" for p in outputs]
        if spec.get("matrix") is not None or spec.get("foreach") is not None:
            continue  # paths are templates
        if not targets or name in targets:
            wanted += [p for p in (_inside(root, p) for p in inputs) if p]
    from gitcache.filehash import STAT_CACHE_FILE

    try:
        reference = os.stat(os.path.join(git_dir, "gitcache", STAT_CACHE_FILE)).st_mtime_ns
    except OSError:
        reference = -1
    paths: list[str] = []
    for path in dict.fromkeys(wanted):
        if any(path == out or path.startswith(out + "/") for out in produced if out):
            continue  # some step writes it: not its content now
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size >= MIN_SIZE and st.st_mtime_ns >= reference:
            paths.append(path)
    return (paths[:MAX_FILES], os.path.join(git_dir, "gitcache")) if paths else None


def _repository(start: str) -> tuple[str, str] | None:
    """(worktree root, its git dir) of the repository holding `start`, found the plain
    way (gitread.find_repository is exact but costs a no-op run more to import): a
    `.git` directory, or a linked worktree's `.git` file, in start or a parent."""
    path = start
    while True:
        dot_git = os.path.join(path, ".git")
        if os.path.isdir(dot_git):
            return path, dot_git
        if os.path.isfile(dot_git):
            with open(dot_git, encoding="utf-8") as handle:
                text = handle.read(4096)
            if not text.startswith("gitdir: "):
                return None
            return path, os.path.normpath(os.path.join(path, text[8:].strip()))
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _inside(root: str, path: object) -> str | None:
    """The absolute form of a declared path, if it is a plain one inside root."""
    if not isinstance(path, str) or not path.strip() or any(c in path for c in "{}*?["):
        return None
    joined = os.path.normpath(os.path.join(root, path))
    return joined if joined.startswith(root.rstrip("/") + "/") else None
