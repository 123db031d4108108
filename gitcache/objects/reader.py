"""Reading a loose blob: stored blocks without inflating them, others through ISA-L.

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

import mmap
import os
import struct
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


def _inflated(view: memoryview) -> list[memoryview] | None:
    """A compressed loose blob inflated by ISA-L (twice zlib's speed, which libgit2
    uses), if its header says it is at most _INFLATE_MAX bytes; else None."""
    import zlib

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
