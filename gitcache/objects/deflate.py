"""Compressing one object's zlib stream: isal level 1, or stored blocks for data that
does not compress.

A 64 KiB sample is compressed first; when that saves less than 5 %, the object is
written as stored blocks (zlib's level 0: valid zlib that every git reads), built here
as pieces that point into the content, so storing costs no copy of it, only its
Adler-32. Otherwise isal (ISA-L) level 1 compresses the whole object. Both outputs
are plain zlib streams.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

SAMPLE: Final = 64 * 1024  # bytes compressed to decide
MIN_SAVING: Final = 0.05  # below this gain, store
_SMALL: Final = 512  # bytes: always compressed (the sample would be all of it)
_STORED_HEADER: Final = b"\x78\x01"  # deflate, 32 KiB window, level 0; (0x7801 % 31 == 0)
_BLOCK: Final = 0xFFFF  # the largest stored block

Bytes = bytes | bytearray | memoryview


def compresses(content: Bytes) -> bool:
    """Whether `content` is worth compressing, judged on its first SAMPLE bytes."""
    sample = memoryview(content)[:SAMPLE]
    if len(sample) <= _SMALL:
        return True
    from isal import isal_zlib  # here: a no-op run writes nothing and need not load it

    return len(isal_zlib.compress(sample, 1)) < len(sample) * (1 - MIN_SAVING)


def deflate(parts: Sequence[Bytes], content: Bytes) -> list[Bytes]:
    """The zlib stream of `parts` joined, as pieces to write in order; its level chosen
    by `content` (the object's content, without a loose object's header). Stored pieces
    may be views into `parts`: write them before changing those."""
    from isal import isal_zlib

    if len(content) <= SAMPLE:  # the whole object is the sample: compressed once, one shot
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        packed = isal_zlib.compress(joined, 1)
        if len(content) <= _SMALL or len(packed) < len(joined) * (1 - MIN_SAVING):
            return [packed]
        return stored(parts)
    if not compresses(content):
        return stored(parts)

    engine = isal_zlib.compressobj(1)
    out: list[Bytes] = [engine.compress(part) for part in parts]
    out.append(engine.flush())
    return [piece for piece in out if piece]


def stored(parts: Sequence[Bytes]) -> list[Bytes]:
    """`parts` as a zlib stream of stored blocks (no compression, no copy)."""
    from isal import isal_zlib  # its Adler-32 is SIMD: ~4x zlib's here

    out: list[Bytes] = [_STORED_HEADER]
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    checksum = 1
    for number, view in enumerate(views):
        checksum = isal_zlib.adler32(view, checksum)
        for start in range(0, len(view), _BLOCK):
            block = view[start : start + _BLOCK]
            last = number == len(views) - 1 and start + _BLOCK >= len(view)
            out.append(struct.pack("<BHH", int(last), len(block), len(block) ^ 0xFFFF))
            out.append(block)
    if not views:
        out.append(struct.pack("<BHH", 1, 0, 0xFFFF))
    out.append(struct.pack(">I", checksum))
    return out
