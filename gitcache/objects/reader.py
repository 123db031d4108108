"""Reading blobs without libgit2: a loose blob's stored blocks without inflating them,
other loose blobs through ISA-L, and many small packed blobs in one pass (PackedBlobs).

A chunk of data that does not compress is written as zlib stored blocks
(deflate.py): its bytes sit in the object file as they are, 64 KiB at a time between
5-byte block headers. Mapping the file and handing out views of those runs gives the
content with no copy, no inflate and no Adler-32 (libgit2 does all three, a fifth of a
restore's time). A compressed loose blob is inflated by ISA-L. Anything else (a
packed object, one through alternates, a malformed file, a huge blob) gives None:
the caller reads it through libgit2. Nothing
here checks the object's id: the caller hashes what it reads (a restore checks the
whole-file blob id).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from itertools import compress
from pathlib import Path
from typing import Final, cast

from gitcache.objects.loose import object_path

_STORED_MASK: Final = 0x06  # BTYPE bits of a block header byte: 00 for stored
_FINAL: Final = 0x01
_INFLATE_MAX: Final = 64 * 2**20  # bytes: bigger (a format-1 record's) go to libgit2


def loose_blob(objects: Path, oid: str) -> list[memoryview] | None:
    """The content of loose blob `oid`: views into its mapped file if it is made of
    stored blocks, else inflated by ISA-L; None when libgit2 must read it."""
    try:
        fd = os.open(object_path(objects, oid), os.O_RDONLY)
    except OSError:  # not loose here (packed, alternates), or unreadable
        return None
    try:
        size = os.fstat(fd).st_size
        if size < 12:
            return None
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    try:
        view = memoryview(mapped)
        blocks = _blocks(view)
        return _content(blocks) if blocks is not None else _inflated(view)
    except (IndexError, struct.error, ValueError):
        return None  # not what we write: libgit2 reads it, or says what is wrong


def loose_truncated(objects: Path, oid: str) -> bool:
    """Whether loose object `oid` is a zlib stream cut short (a copy interrupted, a full
    disk): libgit2 loops forever reading one, so it is never handed such a file. Read
    through once, at most 1 MiB of it inflated at a time; False when not loose."""
    engine = zlib.decompressobj()
    try:
        with open(object_path(objects, oid), "rb") as f:
            while chunk := f.read(1 << 20):
                while chunk and not engine.eof:
                    engine.decompress(chunk, 1 << 20)
                    chunk = engine.unconsumed_tail
                if engine.eof:
                    return False
    except (OSError, zlib.error):  # not loose, or damaged otherwise: libgit2 says so
        return False
    return True


def _inflated(view: memoryview) -> list[memoryview] | None:
    """A compressed loose blob inflated by ISA-L (twice zlib's speed, which libgit2
    uses), if its header says it is at most _INFLATE_MAX bytes; else None."""
    from isal import isal_zlib

    head = zlib.decompressobj().decompress(view[:64], 40)  # `blob <size>\0` at most
    end = head.find(b"\0")
    kind, _, digits = head[: max(end, 0)].partition(b" ")
    if end < 0 or kind != b"blob" or not digits.isdigit() or int(digits) > _INFLATE_MAX:
        return None
    broken = cast("type[Exception]", isal_zlib.error)  # its stubs declare an instance
    whole = end + 1 + int(digits)
    engine = isal_zlib.decompressobj()
    try:
        # At most one byte more than the header says: a stream that lies about its size
        # is never inflated in full.
        data = engine.decompress(view, whole + 1)
    except broken:
        return None  # libgit2 says what is wrong
    if len(data) != whole or not engine.eof:
        return None
    return [memoryview(data)[end + 1 :]] if int(digits) else []


def _blocks(view: memoryview) -> list[memoryview] | None:
    """The payloads of a zlib stream of stored blocks only, else None."""
    if view[0] & 0x0F != 8 or (view[0] << 8 | view[1]) % 31 or view[1] & 0x20:
        return None  # not deflate, a bad header, or a preset dictionary
    pos = 2
    blocks = []
    while True:
        head = view[pos]
        if head & _STORED_MASK:
            return None  # a compressed block
        length, complement = struct.unpack_from("<HH", view, pos + 1)
        if length ^ complement != 0xFFFF or pos + 5 + length > len(view):
            return None
        blocks.append(view[pos + 5 : pos + 5 + length])
        pos += 5 + length
        if head & _FINAL:
            return blocks


def _content(blocks: list[memoryview] | None) -> list[memoryview] | None:
    """The blocks minus the object header `blob <size>\\0`, if the sizes agree."""
    if blocks is None:
        return None
    header = bytearray()
    for index, block in enumerate(blocks):
        end = bytes(block[:32]).find(b"\0")
        if end < 0:
            header += block
            if len(header) > 32:
                return None
            continue
        header += block[:end]
        kind, _, digits = bytes(header).partition(b" ")
        if kind != b"blob" or not digits.isdigit():
            return None
        content = [block[end + 1 :], *blocks[index + 1 :]]
        content = [piece for piece in content if len(piece)]
        return content if sum(len(p) for p in content) == int(digits) else None
    return None


_PACK_HEADER: Final = b"PACK\0\0\0\2"
_IDX_HEADER: Final = b"\377tOc\0\0\0\2"
_WHOLE_TYPES: Final = frozenset((1, 2, 3, 4))  # commit, tree, blob, tag: not deltas
_BLOB: Final = 3
_IDS: Final = re.compile(b".{20}", re.DOTALL)  # a pack index's object names


class PackedBlobs:
    """Many small blobs read straight from the repository's packs, in one pass.

    libgit2 finds and reads one object per call (~10 µs each with pygit2's wrapping);
    a restore of 50,000 small files wants 50,000 blobs that a record wrote into one
    pack (objects/pack.py: whole entries, no deltas). So the packs' indexes are read
    once, newest first, for the wanted ids only (stopping once all are found, or after
    `budget` index entries), and each entry is inflated from the mapped pack. A delta
    entry, an id in no pack read, or anything malformed gives None: the caller reads it
    through libgit2. Nothing here checks an object's id: the caller hashes what it reads.
    """

    def __init__(self, objects: Path, wanted: Iterable[str], budget: int) -> None:
        from isal import isal_zlib

        self._inflater = isal_zlib.decompressobj
        self._broken = cast("type[Exception]", isal_zlib.error)  # its stubs: an instance
        self._where: dict[str, tuple[memoryview, int, int]] = {}  # id -> (pack, start, end)
        missing = {bytes.fromhex(oid) for oid in wanted if len(oid) == 40}
        for idx in _indexes(objects):
            if not missing or budget <= 0:
                break
            with contextlib.suppress(OSError, ValueError, IndexError, struct.error):
                budget -= self._read_index(idx, missing)

    def _read_index(self, idx: Path, missing: set[bytes]) -> int:
        """Note where the pack of `idx` holds ids of `missing` (removed from it); the
        number of entries it has."""
        data = idx.read_bytes()
        if data[:8] != _IDX_HEADER:
            return 0
        names = _names(data)
        count = len(names)
        found = list(compress(range(count), map(missing.__contains__, names)))
        if not found:
            return count
        offsets = _offsets(data, count)
        view = _pack(idx)
        if view is None:
            return count
        size = len(view)
        ordered = sorted(offsets)
        ends = dict(zip(ordered, [*ordered[1:], size - 20], strict=True))
        where = self._where
        for index in found:
            start = offsets[index]
            where[names[index].hex()] = (view, start, ends[start])
        missing.difference_update(map(names.__getitem__, found))
        return count

    def has(self, oid: str) -> bool:
        """Whether an entry of the packs read is `oid` (blob() may still say None)."""
        return oid in self._where

    def header(self, oid: str) -> tuple[int, int] | None:
        """(type number, size) of a whole (not delta) entry, from its header; else None."""
        where = self._where.get(oid)
        if where is None:
            return None
        view, start, end = where
        try:
            kind, size, _ = _entry_header(view, start, end)
        except IndexError:  # malformed: libgit2 says what is wrong
            return None
        return (kind, size) if kind in _WHOLE_TYPES else None

    def blob(self, oid: str) -> list[memoryview] | None:
        """A blob's content, inflated from its pack entry; None if libgit2 must read it."""
        where = self._where.get(oid)
        if where is None:
            return None
        view, start, end = where
        try:
            kind, size, at = _entry_header(view, start, end)
            if kind != _BLOB:
                return None
            engine = self._inflater()  # ISA-L: a fifth faster than zlib on small blobs
            data = engine.decompress(view[at:end], size + 1)  # never more than it says
        except (IndexError, self._broken):
            return None
        if len(data) != size or not engine.eof:
            return None
        return [memoryview(data)] if size else []


def packed_sizes(objects: Path, wanted: Sequence[str], budget: int) -> list[int | None]:
    """The size of each blob of `wanted` (ids) from its whole pack entry's header, as
    PackedBlobs.header gives it, for a record's 50,000 outputs at once: no entry kept.
    None where it is no whole blob entry in the packs read (newest first, up to `budget`
    index entries): libgit2 says."""
    sizes: list[int | None] = [None] * len(wanted)
    ids = [bytes.fromhex(oid) if len(oid) == 40 else b"" for oid in wanted]
    missing: Sequence[int] = range(len(ids))
    for idx in _indexes(objects):
        if not missing or budget <= 0:
            break
        with contextlib.suppress(OSError, ValueError, IndexError, struct.error):
            budget -= _sizes_from(idx, ids, missing, sizes)
            missing = [index for index in missing if sizes[index] is None]
    return sizes


def _sizes_from(idx: Path, ids: list[bytes], todo: Iterable[int], sizes: list[int | None]) -> int:
    """Fill in `sizes` at the indexes `todo` from the pack of `idx`; its entry count."""
    data = idx.read_bytes()
    if data[:8] != _IDX_HEADER:
        return 0
    names = _names(data)
    starts = list(map(dict(zip(names, _offsets(data, len(names)), strict=True)).get, ids))
    view = _pack(idx) if starts.count(None) < len(starts) else None
    if view is None:
        return len(names)
    end = len(view) - 20  # the pack's checksum
    for index in todo:
        start = starts[index]
        if start is None or start + 1 >= end:
            continue
        byte = view[start]
        if byte >> 4 & 7 != _BLOB:
            continue
        if not byte & 0x80:  # under 16 bytes: one header byte
            sizes[index] = byte & 15
        elif not (second := view[start + 1]) & 0x80:  # under 2 KiB: two
            sizes[index] = byte & 15 | second << 4
        else:
            sizes[index] = _entry_header(view, start, end)[1]
    return len(names)


def _indexes(objects: Path) -> list[Path]:
    """The pack indexes of an object directory, newest first (none if unreadable)."""
    try:
        return sorted((objects / "pack").glob("pack-*.idx"), key=lambda p: -p.stat().st_mtime_ns)
    except OSError:
        return []


def _names(data: bytes) -> list[bytes]:
    """The object names of a version-2 pack index, split off in a C loop."""
    count = int.from_bytes(data[1028:1032], "big")
    return _IDS.findall(data[1032 : 1032 + 20 * count])


def _offsets(data: bytes, count: int) -> list[int]:
    """The pack offset of each of the index's `count` objects, in its order."""
    offsets_at = 1032 + 24 * count
    large_at = offsets_at + 4 * count
    small = array("I", data[offsets_at:large_at])
    if sys.byteorder == "little":
        small.byteswap()
    offsets = small.tolist()
    if max(offsets, default=0) & 0x80000000:  # a pack over 2 GiB: 64-bit offsets
        offsets = [
            o
            if not o & 0x80000000
            else int.from_bytes(data[large_at + 8 * (o & 0x7FFFFFFF) :][:8], "big")
            for o in offsets
        ]
    return offsets


def _pack(idx: Path) -> memoryview | None:
    """The mapped pack of an index; None if it is no version-2 pack."""
    with open(idx.with_suffix(".pack"), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        mapped = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    return view if bytes(view[:8]) == _PACK_HEADER else None


def _entry_header(view: memoryview, start: int, end: int) -> tuple[int, int, int]:
    """A pack entry's type, size and where its data starts."""
    byte = view[start]
    kind, size, shift, at = (byte >> 4) & 7, byte & 15, 4, start + 1
    while byte & 0x80:
        if at >= end or shift > 60:
            raise IndexError("bad entry header")
        byte = view[at]
        size |= (byte & 0x7F) << shift
        shift += 7
        at += 1
    return kind, size, at
