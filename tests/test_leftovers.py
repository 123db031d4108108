"""Temporary files of killed restores: which go before the next restore, which stay."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from gitcache.leftovers import remove_restore_leftovers


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _file(path: Path, data: bytes = b"partial", old: bool = True) -> Path:
    """A file last written 5 s ago (or now)."""
    path.write_bytes(data)
    if old:
        then = time.time() - 5
        os.utime(path, (then, then))
    return path


def test_only_abandoned_temporary_files_under_and_beside_outputs_go(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "out" / "sub").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "other").mkdir()
    dead = _dead_pid()
    abandoned = [
        _file(root / "out" / "sub" / ".gitcache-tmp-ab12cd_3"),  # in a directory output
        _file(root / "files" / ".gitcache-tmp-zz9_0a1b"),  # beside a file output
    ]
    os.symlink("x", root / "out" / f".gitcache-tmp-{dead}-link")  # a dead writer's link
    abandoned.append(root / "out" / f".gitcache-tmp-{dead}-link")
    live_link = root / "out" / f".gitcache-tmp-{os.getppid()}-link"  # a live writer's
    os.symlink("x", live_link)
    kept = [
        live_link,
        _file(root / "other" / ".gitcache-tmp-elsewhere"),  # not under or beside an output
        _file(root / "out" / "gitcache-tmp-mine"),  # not the prefix
        _file(root / "files" / ".gitcache-tmp-justnow1", old=False),  # written a moment ago
    ]
    writing = _file(root / "out" / ".gitcache-tmp-writing1")  # held open below
    with open(writing, "rb"):
        removed = remove_restore_leftovers(root, ["out", "files/a.bin"])
    assert sorted(removed) == sorted(p.relative_to(root).as_posix() for p in abandoned)
    assert not any(os.path.lexists(p) for p in abandoned)
    assert all(os.path.lexists(p) for p in [*kept, writing])


def test_nothing_is_removed_through_a_symlinked_directory(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = _file(outside / ".gitcache-tmp-victim")
    os.symlink(outside, root / "out")
    assert remove_restore_leftovers(root, ["out", "out/x.bin"]) == []
    assert victim.exists()


def test_a_users_file_or_directory_that_merely_has_the_prefix_stays(tmp_path: Path) -> None:
    # Beside a file output: these were once removed (the user's notes, silently) or
    # unlinked as files (a directory: IsADirectoryError, an internal error).
    root = tmp_path / "repo"
    (root / "res").mkdir(parents=True)
    dead = _dead_pid()
    kept = [
        _file(root / "res" / ".gitcache-tmp-notes.txt", b"my notes"),
        _file(root / "res" / f".gitcache-tmp-{dead}-mine", b"a file, not a link"),
        _file(root / "res" / ".gitcache-tmp-abcdefghi"),  # 9 characters: not mkstemp's
    ]
    (root / "res" / ".gitcache-tmp-dir12345").mkdir()
    kept.append(root / "res" / ".gitcache-tmp-dir12345")
    os.symlink("x", root / "res" / ".gitcache-tmp-nopid")
    kept.append(root / "res" / ".gitcache-tmp-nopid")
    abandoned = _file(root / "res" / ".gitcache-tmp-k3_9xq0z")  # mkstemp's, as restores make
    assert remove_restore_leftovers(root, ["res/out.txt"]) == ["res/.gitcache-tmp-k3_9xq0z"]
    assert not abandoned.exists()
    assert all(os.path.lexists(p) for p in kept)
    assert (root / "res" / ".gitcache-tmp-notes.txt").read_bytes() == b"my notes"
