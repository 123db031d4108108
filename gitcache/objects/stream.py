"""Storing a file in one pass: its whole-file blob id and its objects from one read.

A file of up to CHUNK_THRESHOLD bytes is read whole and becomes one blob. A bigger
one is cut into chunks as it is read (chunking.py): the calling thread reads it into
one of two windows and cuts it there, a thread of its own feeds the whole-file SHA-1
(of `blob <size>\\0` and the bytes, so it is the id `git hash-object` gives), and two
more hash, deflate and write the chunk blobs as views of the window (hashlib, isal,
FastCDC's cut and os.write release the GIL, so they share the cores). No byte is
copied after the read but the window's last, unfinished chunk; memory is bounded by
the two windows whatever the file's size. Bytes already
in memory (a Python step's array result) go the same way, their chunks as views of them.

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
from gitcache.processes import start_quiet

_WRITERS: Final = 2  # threads deflating and writing chunks (ISA-L and zlib release the
# GIL): compressible data deflates at ~350 MB/s a core, below what reading goes at
_WINDOW: Final = 2 * MAX_CHUNK  # bytes read and cut at once; two such windows taken in
# turn bound the memory of storing any file (the bytes are never copied out of them)

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
    pieces = ((view[c.offset : c.offset + c.length], None) for c in chunker().cut_buf(view))
    return _store_chunks(pieces, len(view), put, None, threading.Condition())


def _store_chunked(
    reader: io.FileIO, size: int, put: PutBlob, progress: Progress = None
) -> StoredFile:
    done = threading.Condition()
    return _store_chunks(_windows(reader, size, done), size, put, progress, done)


class _Window:
    """A buffer the file is read into and cut in place: the chunks handed to the
    writing threads are views of it, so it is refilled only once none is pending."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_WINDOW))
        self.pending = 0  # chunks of it not yet written (under _Pieces.done)


def _windows(
    reader: io.FileIO, size: int, done: threading.Condition
) -> Iterator[tuple[memoryview, _Window | None]]:
    """The chunks of `size` bytes read from `reader`, as views of two windows taken in
    turn (one cut while the other's chunks are written), each with its window.

    The bytes are read once into a window and never copied out: FastCDC cuts the
    window in place, and the writing threads hash and write views of it. FastCDC
    scans a chunk's bytes in order with masks that depend only on the offset from the
    chunk's start, so a cut it finds inside the window is the cut it finds with the
    whole file after it; only the window's last chunk, which ends where the bytes do
    (no cut found before), may be longer with more bytes: unless the file ends there,
    its bytes (MAX_CHUNK at most) are moved to the start of the other window and
    cut again with more after them. So the chunks are those of pyfastcdc's
    cut_stream, and only a fraction of a chunk per window is copied. Raises
    FileChanged when the file holds another number of bytes."""
    cutter = chunker()
    windows = (_Window(), _Window())
    carried = 0  # bytes at the start of the current window, moved from the last one
    consumed = 0  # bytes read from the file so far
    turn = 0
    while True:
        window = windows[turn]
        view = window.view
        filled = carried
        while filled < _WINDOW and consumed < size:
            n = reader.readinto(view[filled : filled + min(_WINDOW - filled, size - consumed)])
            if not n:
                raise FileChanged(errno.EAGAIN, "the file changed while it was read")
            filled += n
            consumed += n
        last = consumed == size
        if last and reader.read(1):  # it grew
            raise FileChanged(errno.EAGAIN, "the file changed while it was read")
        start = 0  # where the next chunk starts
        for chunk in cutter.cut_buf(view[:filled]):
            end = start + chunk.length
            if end == filled and not last:
                break  # cut where the bytes end: the next window cuts it again
            yield view[start:end], window
            start = end
        if last:
            return
        tail = start
        turn = 1 - turn
        following = windows[turn]
        with done:  # its chunks written: it can be refilled
            while following.pending:
                done.wait()
        carried = filled - tail
        following.view[:carried] = view[tail:filled]


def _store_chunks(
    pieces: Iterator[tuple[memoryview, _Window | None]],
    size: int,
    put: PutBlob,
    progress: Progress,
    done: threading.Condition,
) -> StoredFile:
    """Write the chunks `pieces` gives, in order, and hash the whole they make. Each
    piece's window (if any) counts it as pending until it is written (`done` is told)."""
    whole = blob_hasher(size)
    chunks: dict[int, str] = {}  # index -> chunk blob id, as the writers finish them
    failed: list[BaseException] = []
    work: queue.SimpleQueue[tuple[int, _Window | None, memoryview] | None] = queue.SimpleQueue()

    def release(window: _Window | None) -> None:
        if window is not None:
            with done:
                window.pending -= 1
                done.notify_all()

    def write_chunks() -> None:
        while (item := work.get()) is not None:
            index, window, data = item
            try:
                if not failed:
                    oid = blob_id(data)
                    put(oid, data)
                    chunks[index] = oid
            except BaseException as exc:  # handed to the reading thread
                failed.append(exc)
            finally:
                del data, item
                release(window)

    def hash_whole() -> None:
        while (item := hashing.get()) is not None:
            window, data = item
            try:
                if not failed:
                    whole.update(data)
            except BaseException as exc:  # (MemoryError) handed to the reading thread
                failed.append(exc)
            finally:
                del data, item
                release(window)

    # The whole-file SHA-1 has a thread of its own: the reading thread then only reads
    # and cuts, and the four passes over the bytes (read, cut, two SHA-1s) spread over
    # the cores instead of three of them queuing on the reading thread.
    hashing: queue.SimpleQueue[tuple[_Window | None, memoryview] | None] = queue.SimpleQueue()
    writers = [
        threading.Thread(target=write_chunks, name="gitcache-chunks", daemon=True)
        for _ in range(_WRITERS)
    ]
    hasher = threading.Thread(target=hash_whole, name="gitcache-whole", daemon=True)
    start_quiet(hasher, *writers)
    total = 0
    try:
        for index, (piece, window) in enumerate(pieces):
            total += len(piece)
            if total > size or failed:
                break
            if window is not None:
                with done:
                    window.pending += 2  # its writer and the whole-file hasher
            work.put((index, window, piece))
            hashing.put((window, piece))
            if progress is not None:
                progress(len(piece))
            del piece, window
    finally:
        for _ in writers:
            work.put(None)  # one end mark per writer
        hashing.put(None)
        for thread in (*writers, hasher):
            thread.join()
    if failed:
        raise failed[0]
    if total != size:
        raise FileChanged(errno.EAGAIN, "the file changed while it was read")
    return StoredFile(whole.hexdigest(), size, tuple(chunks[n] for n in range(len(chunks))))
