"""Compressing one object's zlib stream: isal level 1, or stored blocks for data that
does not compress.

A 64 KiB sample is compressed first; when that saves less than 5 %, the object is
written with zlib level 0 (stored blocks: valid zlib that every git reads, at memory
speed) rather than spending time on a compressor that gains nothing. Both outputs are
plain zlib streams.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final, Protocol

from isal import isal_zlib

SAMPLE: Final = 64 * 1024  # bytes compressed to decide
MIN_SAVING: Final = 0.05  # below this gain, store
_SMALL: Final = 512  # bytes: always compressed (the sample would be all of it)

Bytes = bytes | bytearray | memoryview


class _Compressor(Protocol):
    def compress(self, data: Bytes, /) -> bytes: ...
    def flush(self, mode: int = ..., /) -> bytes: ...


def compresses(content: Bytes) -> bool:
    """Whether `content` is worth compressing, judged on its first SAMPLE bytes."""
    sample = memoryview(content)[:SAMPLE]
    if len(sample) <= _SMALL:
        return True
    return len(isal_zlib.compress(sample, 1)) < len(sample) * (1 - MIN_SAVING)


def compressor(content: Bytes) -> _Compressor:
    """A zlib compressor suited to `content` (isal level 1, or level 0)."""
    if compresses(content):
        return isal_zlib.compressobj(1)
    return zlib.compressobj(0)


def deflate(parts: Sequence[Bytes], content: Bytes) -> list[bytes]:
    """The zlib stream of `parts` joined (pieces to write in order), its level chosen
    by `content` (the object's content, without a loose object's header)."""
    engine = compressor(content)
    out = [engine.compress(part) for part in parts]
    out.append(engine.flush())
    return [piece for piece in out if piece]
