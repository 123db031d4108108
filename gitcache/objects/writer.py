"""`ObjectWriter`: where each object gitcache writes goes, and what it remembers.

- A blob of up to PACKED_MAX bytes, and every tree and commit (`write_object`), waits
  in memory as it is; once PACK_MIN objects wait, a pack is opened and they go into it
  (deflated and appended) when `pack_waiting` is called — a sweep calls it while its
  next item's command runs, so deflating a record's objects costs the item nothing —
  or as soon as WAIT_BUDGET bytes wait. `flush` publishes the pack, or writes the few
  waiting objects loose:
  GitRepo flushes before it updates any ref and before it reads an object, so an object
  is always in the store before a ref makes anything that names it reachable, and
  always readable once written. The records of a sweep's items, whose refs wait in a
  batch (store.RefBatch), so go into one pack per batch.
- A bigger blob (a chunk, a big file) is written loose at once.
- An object the repository already has (loose, packed or through
  `objects/info/alternates`: `exists` asks libgit2) is not written again.
- `chunks_of(oid)`: the chunk ids of each file stored in chunks by this writer, which
  the record store names in the record's tree.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from gitcache.errors import RepositoryError
from gitcache.objects.deflate import Bytes
from gitcache.objects.loose import object_id, write_loose
from gitcache.objects.pack import PackWriter
from gitcache.objects.stored import StoredFile
from gitcache.objects.stream import Progress, blob_id, store_buffer, store_path

PACKED_MAX: Final = 256 * 2**10  # bytes: a blob up to this size may go into a pack
PACK_MIN: Final = 64  # waiting blobs that make a pack worth it
WAIT_BUDGET: Final = 4 * 2**20  # bytes waiting undeflated: beyond, packed at once


class ObjectWriter:
    """Writes blobs into one repository's object store (see the module's docstring)."""

    def __init__(self, objects: Path, exists: Callable[[str], bool]) -> None:
        self.objects = objects
        self._exists = exists
        # Objects not yet in the pack, in the order they came (id -> (kind, content)).
        self._waiting: dict[str, tuple[str, bytes]] = {}
        self._waiting_bytes = 0
        self._pack: PackWriter | None = None
        self._chunks: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # the chunk-writing thread and the caller's

    @property
    def pending(self) -> bool:
        return bool(self._waiting) or self._pack is not None

    def write_blob(self, data: Bytes) -> str:
        oid = blob_id(data)
        self._put(oid, data)
        return oid

    def write_object(self, kind: str, data: bytes, check: bool = True) -> str:
        """Write a tree or commit (its content as git hashes it); it waits as small blobs
        do. `check=False`: do not ask whether the repository has it (a look-up costs
        more than writing a small object again; a second copy in a pack is harmless)."""
        oid = object_id(kind, data)
        self._put(oid, data, kind, check)
        return oid

    def write_file(self, path: Path, progress: Progress = None) -> StoredFile:
        """Store a file whole or in chunks (stream.py); raises OSError as reads do."""
        stored = store_path(path, self._put, progress)
        if stored.chunks is not None:
            self._chunks[stored.oid] = stored.chunks
        return stored

    def write_buffer(self, data: Bytes) -> StoredFile:
        """Store bytes whole or in chunks, as write_file does a file."""
        stored = store_buffer(data, self._put)
        if stored.chunks is not None:
            self._chunks[stored.oid] = stored.chunks
        return stored

    def chunks_of(self, oid: str) -> tuple[str, ...] | None:
        return self._chunks.get(oid)

    def _put(self, oid: str, content: Bytes, kind: str = "blob", check: bool = True) -> None:
        with self._lock, self._writing():
            if oid in self._waiting or (self._pack is not None and oid in self._pack):
                return
            if check and self._exists(oid):
                return
            big = len(content) > PACKED_MAX
            if not big:
                self._waiting[oid] = (kind, bytes(content))
                self._waiting_bytes += len(content)
                if self._waiting_bytes >= WAIT_BUDGET:
                    self._pack_waiting()
        if big:  # outside the lock: chunk writers deflate side by side
            with self._writing():
                write_loose(self.objects, oid, kind, content)  # no-op if another did

    def has(self, oid: str) -> bool:
        """Whether the object is stored: waiting here, in the open pack, or in the
        repository (nothing is published to find out)."""
        with self._lock:
            if oid in self._waiting or (self._pack is not None and oid in self._pack):
                return True
        return self._exists(oid)

    def pack_waiting(self) -> None:
        """Deflate the waiting objects into the pack, if they are enough for one (or it
        is open): work to do while a command runs (the objects stay unpublished)."""
        with self._lock, self._writing():
            self._pack_waiting()

    def _pack_waiting(self) -> None:
        if self._pack is None:
            if len(self._waiting) < PACK_MIN:
                return
            self._pack = PackWriter(self.objects / "pack")
        for oid, (kind, data) in self._waiting.items():
            self._pack.add(oid, kind, data)
        self._waiting.clear()
        self._waiting_bytes = 0

    def flush(self) -> None:
        """Publish what waits: the pack (with every waiting object), or the few waiting
        objects as loose ones."""
        with self._lock, self._writing():
            self._pack_waiting()
            pack, self._pack = self._pack, None
            waiting, self._waiting = self._waiting, {}
            self._waiting_bytes = 0
            if pack is not None:
                # libgit2 lists objects/pack/ again when it misses an object, so it
                # finds this pack's objects on first use (tests/test_objects.py).
                pack.finish()
            for oid, (kind, data) in waiting.items():
                write_loose(self.objects, oid, kind, data)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (disk full, say) as one line naming the object store: an
        OSError would pass for a read error of the file being stored."""
        try:
            yield
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise RepositoryError(
                f"cannot write git objects in {self.objects}: {exc.strerror or exc}",
                hint="free some disk space and run again" if full else None,
            ) from exc

    def mark(self) -> int:
        """How many objects wait now: `discard(mark)` drops only those that came after
        (the objects of records whose refs wait in a batch stay)."""
        with self._lock:
            return (len(self._pack) if self._pack is not None else 0) + len(self._waiting)

    def discard(self, mark: int = 0) -> None:
        """Drop what came to wait after `mark` (nothing names it yet); with nothing
        left, remove the temporary pack. Objects wait in order: those in the pack, then
        those not yet in it."""
        with self._lock, self._writing():
            packed = len(self._pack) if self._pack is not None else 0
            for oid in list(self._waiting)[max(mark - packed, 0) :]:
                self._waiting_bytes -= len(self._waiting.pop(oid)[1])
            if self._pack is not None and mark < packed:
                if mark:
                    self._pack.truncate(mark)
                else:
                    self._pack.abandon()
                    self._pack = None
