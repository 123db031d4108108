"""Writing one loose object (`objects/ab/cdef...`) as git does.

The zlib stream goes to a temporary file in the object's fan-out directory (named
`tmp_obj_gitcache-<pid>-*`, which `git prune` removes once two weeks old, should we be
killed: looking for them in 256 directories on every run would cost more), is made
read-only (0444, as git makes its objects) and linked to its final name; an object
already there is left alone (its name is its content). A `git prune` may remove the
empty fan-out directory at any moment: then the directory is made again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from gitcache.objects.deflate import Bytes, deflate

_ATTEMPTS: Final = 20
_PREFIX: Final = "tmp_obj_gitcache-{}-"  # git's kind of name: `git gc` removes old ones
_IOV: Final = 512  # pieces per writev (Linux allows 1024)


def header(kind: str, size: int) -> bytes:
    """A loose object's header: `blob 123\\0`."""
    return b"%s %d\0" % (kind.encode(), size)


def blob_hasher(size: int) -> hashlib._Hash:
    """A SHA-1 fed the header of a blob of `size` bytes: fed those bytes, its hex digest
    is their blob id (for content that comes in pieces)."""
    return hashlib.sha1(header("blob", size))


def blob_id(content: Bytes) -> str:
    """The git blob id of `content` (`git hash-object`), by hashlib's SHA-1."""
    return object_id("blob", content)


def object_id(kind: str, content: Bytes) -> str:
    """The git id of an object of that kind and content (SHA-1)."""
    digest = hashlib.sha1(header(kind, len(content)))
    digest.update(content)
    return digest.hexdigest()


def object_path(objects: Path, oid: str) -> Path:
    return objects / oid[:2] / oid[2:]


def write_loose(objects: Path, oid: str, kind: str, content: Bytes) -> None:
    """Write `content` as the loose object `oid` (its id, computed by the caller)."""
    final = object_path(objects, oid)
    if final.exists():
        return
    pieces = deflate([header(kind, len(content)), content], content)
    write_compressed(final, pieces)


def write_compressed(final: Path, pieces: Sequence[Bytes]) -> None:
    """Put already compressed bytes at `final` (temporary file, then link)."""
    for attempt in range(_ATTEMPTS):
        try:
            final.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=_PREFIX.format(os.getpid()))
        except FileNotFoundError:  # objects/ab/ pruned between the two calls
            if attempt + 1 == _ATTEMPTS:
                raise
            continue
        try:
            try:
                write_pieces(fd, pieces)
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
            _publish(tmp, final)
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_pieces(fd: int, pieces: Sequence[Bytes]) -> None:
    """Write the pieces in order, up to _IOV of them per system call."""
    if len(pieces) == 1:  # a small restored file: one write, no list to build
        done = os.write(fd, pieces[0])
        if done != len(pieces[0]):
            write_all(fd, memoryview(pieces[0])[done:])
        return
    for start in range(0, len(pieces), _IOV):
        batch = pieces[start : start + _IOV]
        done = os.writev(fd, batch)
        if done != sum(len(p) for p in batch):  # a short write: finish piece by piece
            for piece in batch:
                if done >= len(piece):
                    done -= len(piece)
                    continue
                write_all(fd, memoryview(piece)[done:])
                done = 0


def write_all(fd: int, data: Bytes) -> None:
    """os.write until every byte is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _publish(tmp: str, final: Path) -> None:
    """Give the temporary file its final name, unless an object is there already."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        pass
    except OSError as exc:  # no hard links here (some network file systems)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if not final.exists():
            os.replace(tmp, final)
