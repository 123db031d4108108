"""Walking and removing directory trees of any depth.

Python 3.11's os.walk and shutil.rmtree recurse once per directory level, and a
step's output may nest deeper than the recursion limit (Linux allows any depth,
through relative paths): these keep an explicit stack instead.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def walk(top: str | Path, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(top, topdown) (symlinks to directories listed in dirnames, never walked
    into; a directory that cannot be listed left out), without recursion. Changing the
    dirnames yielded does not change the walk."""
    stack: list[str | tuple[str, list[str], list[str]]] = [os.fspath(top)]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):  # bottom-up: its subdirectories are done
            yield item
            continue
        dirs: list[str] = []
        names: list[str] = []
        below: list[str] = []
        try:
            with os.scandir(item) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()
                        walked = is_dir and not entry.is_symlink()
                    except OSError:
                        is_dir = walked = False
                    (dirs if is_dir else names).append(entry.name)
                    if walked:
                        below.append(entry.path)
        except OSError:
            continue
        if topdown:
            yield item, dirs, names
        else:
            stack.append((item, dirs, names))
        stack.extend(reversed(below))  # popped in listing order, as os.walk goes


def remove_tree(path: str | Path) -> None:
    """shutil.rmtree(path) without recursion, and as safe: each directory is opened from
    its parent's descriptor without following a symlink (a link swapped in meanwhile is
    removed, never followed), and only one descriptor is held at a time, so no depth
    runs out of descriptors or PATH_MAX. Going back up is by `..`, which is checked to be
    the very directory (device, inode) that was gone down from: a directory moved
    elsewhere meanwhile stops the removal (OSError) rather than lead it out of the tree.
    Raises OSError as rmtree does."""
    fd = os.open(path, _OPEN_DIR)
    # The directories entered below `path`, in order, each with its parent's identity.
    entered: list[tuple[str, tuple[int, int]]] = []
    try:
        while True:
            child = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if child is not None:  # go down; its files go first
                here = os.fstat(fd)
                down = os.open(child, _OPEN_DIR, dir_fd=fd)
                os.close(fd)
                fd = down
                entered.append((child, (here.st_dev, here.st_ino)))
                continue
            if not entered:  # `path` itself is empty now
                break
            name, parent = entered.pop()
            up = os.open("..", _OPEN_DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != parent:
                raise OSError(errno.ENOTEMPTY, f"{path}: moved while it was being removed")
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def make_dirs(path: str | Path) -> None:
    """os.makedirs(path, exist_ok=True) (and Path.mkdir(parents=True, exist_ok=True)),
    without recursion: the missing directories found going up, then made going down."""
    path = os.fspath(path)
    missing: list[str] = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:  # made meanwhile, or a file there (then an error)
            if not os.path.isdir(directory):
                raise
