"""Storing a file in one pass: its whole-file blob id and its objects from one read.

A file of up to CHUNK_THRESHOLD bytes is read whole and becomes one blob. A bigger
one is cut into chunks as it is read (chunking.py): the calling thread reads, cuts
and feeds the whole-file SHA-1 (of `blob <size>\\0` and the bytes, so it is the id
`git hash-object` gives), while two more threads hash, deflate and write the chunk
blobs (hashlib, zlib, isal and os.write release the GIL, so they overlap on two
cores). Memory is bounded by a few chunks whatever the file's size. Bytes already in
memory (a Python step's array result) go the same way, their chunks as views of them.

The size comes from fstat before reading; a file that yields another number of bytes
changed under us (`FileChanged`, an OSError: filehash.read_stable then stats the file
again and reads it once more).
"""

from __future__ import annotations

import errno
import io
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from gitcache.objects.chunking import MAX_CHUNK, chunker, is_chunked
from gitcache.objects.deflate import Bytes
from gitcache.objects.loose import blob_hasher
from gitcache.objects.loose import blob_id as blob_id  # re-exported
from gitcache.objects.stored import StoredFile

_WRITERS: Final = 2  # threads deflating and writing chunks (ISA-L and zlib release the
# GIL): compressible data deflates at ~350 MB/s a core, below what reading goes at
_COPIES: Final = _WRITERS + 1  # chunks copied out of the chunker's buffer at once: one
# being hashed by the reading thread while the writing threads write the others

# (blob id, content): write this blob (whole file or chunk); chunks of one file may be
# written by two threads at once, in any order.
PutBlob = Callable[[str, Bytes], None]
# Bytes read so far, as they go by (a progress line: transfer.Meter.add).
Progress = Callable[[int], None] | None


class FileChanged(OSError):
    """The file's size moved while it was read."""


def store_path(path: Path, put: PutBlob, progress: Progress = None) -> StoredFile:
    """Store the regular file at `path` (opened without blocking: never a fifo)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        return store_fd(fd, st.st_size, put, progress)
    finally:
        os.close(fd)


def store_fd(fd: int, size: int, put: PutBlob, progress: Progress = None) -> StoredFile:
    """Store `size` bytes read from `fd` (FileChanged if it holds another number)."""
    reader = io.FileIO(fd, closefd=False)
    if not is_chunked(size):
        content = bytearray(size + 1)  # one more: a file that grew is noticed
        view = memoryview(content)
        done = 0
        while done <= size and (n := reader.readinto(view[done:])):
            done += n
        if done != size:
            raise FileChanged(errno.EAGAIN, "the file changed while it was read")
        data = view[:size]
        oid = blob_id(data)
        put(oid, data)
        if progress is not None:
            progress(size)
        return StoredFile(oid, size)
    return _store_chunked(reader, size, put, progress)


def store_buffer(data: Bytes, put: PutBlob) -> StoredFile:
    """Store bytes already in memory (a Python step's result) as store_fd would: the
    chunks are views of `data`, hashed and written by the writing threads while this
    one hashes the whole."""
    view = memoryview(data).cast("B")
    if not is_chunked(len(view)):
        oid = blob_id(view)
        put(oid, view)
        return StoredFile(oid, len(view))
    pieces = (view[c.offset : c.offset + c.length] for c in chunker().cut_buf(view))
    return _store_chunks(pieces, len(view), put, copy=False)


def _store_chunked(
    reader: io.FileIO, size: int, put: PutBlob, progress: Progress = None
) -> StoredFile:
    pieces = (memoryview(c.data) for c in chunker().cut_stream(reader))
    return _store_chunks(pieces, size, put, progress, copy=True)


def _store_chunks(
    pieces: Iterator[memoryview],
    size: int,
    put: PutBlob,
    progress: Progress = None,
    copy: bool = True,
) -> StoredFile:
    """Write the chunks `pieces` gives, in order, and hash the whole they make. `copy`:
    each piece is copied out first (the chunker's buffer moves on at the next one)."""
    whole = blob_hasher(size)
    chunks: dict[int, str] = {}  # index -> chunk blob id, as the writers finish them
    failed: list[BaseException] = []
    # Buffers of the largest chunk's size, taken in turn: one being hashed by the
    # reading thread while the writing threads write the others. Reused, so memory
    # stays put (no allocation, no page faults per chunk). Without copies, a bound on
    # the pieces handed out at once, for the same reason.
    free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
    for _ in range(_COPIES):
        free.put(memoryview(bytearray(MAX_CHUNK)) if copy else None)
    work: queue.SimpleQueue[tuple[int, memoryview | None, memoryview] | None] = queue.SimpleQueue()

    def write_chunks() -> None:
        while (item := work.get()) is not None:
            index, buffer, data = item
            try:
                if not failed:
                    oid = blob_id(data)
                    put(oid, data)
                    chunks[index] = oid
            except BaseException as exc:  # handed to the reading thread
                failed.append(exc)
            finally:
                del data
                free.put(buffer)

    writers = [
        threading.Thread(target=write_chunks, name="gitcache-chunks", daemon=True)
        for _ in range(_WRITERS)
    ]
    for writer in writers:
        writer.start()
    total = 0
    try:
        for index, piece in enumerate(pieces):
            total += len(piece)
            if total > size or failed:
                break
            buffer = free.get()
            if buffer is not None:
                data = buffer[: len(piece)]
                data[:] = piece
            else:
                data = piece
            work.put((index, buffer, data))
            whole.update(data)  # while the writers hash and write it
            if progress is not None:
                progress(len(piece))
            del buffer, data, piece
    finally:
        for _ in writers:
            work.put(None)  # one end mark per writer
        for writer in writers:
            writer.join()
    if failed:
        raise failed[0]
    if total != size:
        raise FileChanged(errno.EAGAIN, "the file changed while it was read")
    return StoredFile(whole.hexdigest(), size, tuple(chunks[n] for n in range(len(chunks))))
