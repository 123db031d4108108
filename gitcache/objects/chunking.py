"""Which files are stored in chunks, and where FastCDC cuts them (docs/format.md).

A file over CHUNK_THRESHOLD is cut by content-defined chunking (FastCDC 2020,
pyfastcdc with its default gear table, normalized chunking 1), so an edit in the
middle of a big file changes the chunks around the edit and no others. The largest
chunk is MAX_CHUNK (8 MiB): no object gitcache writes is ever over 50 MB, which git
hosts warn about (GitHub refuses blobs over 100 MB).

Changing any of these numbers changes the chunk ids of new records (never what an
existing record means: a record lists its chunks), so they are part of the format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

CHUNK_THRESHOLD: Final = 16 * 2**20  # bytes: a file over this is stored in chunks
MIN_CHUNK: Final = 512 * 2**10
AVG_CHUNK: Final = 2 * 2**20  # FastCDC's target; its chunks average about MIN + AVG
MAX_CHUNK: Final = 8 * 2**20
NORMALIZATION: Final = 1


def chunker() -> FastCDC:
    from pyfastcdc import FastCDC  # here: only storing a big file needs it

    return FastCDC(
        AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK, normalized_chunking=NORMALIZATION
    )


def is_chunked(size: int) -> bool:
    return size > CHUNK_THRESHOLD
