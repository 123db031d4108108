"""Many small objects as one pack (`objects/pack/pack-<id>.pack` and `.idx`).

Thousands of loose objects cost a file create, a write and a link each; one pack
costs one file. Objects are appended to a temporary pack as they come (undeltified:
type and size header, then the zlib stream of the content), so memory holds only each
object's id, offset and CRC. At the end the object count goes into the header, the
pack is read back once for its SHA-1 trailer (git's own `fixup_pack_header_footer`
does the same), the version-2 index is written (sorted ids, fan-out table, CRC32s,
offsets, pack and index checksums), and both get their final names: the .pack first,
the .idx last, since git and libgit2 see a pack only through its index.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import tempfile
import weakref
import zlib
from pathlib import Path
from typing import Final, cast

from gitcache.objects.deflate import Bytes, deflate
from gitcache.objects.loose import write_all, write_pieces
from gitcache.scratch import process_alive

TYPE_CODES: Final = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_IDX_MAGIC: Final = b"\377tOc"
_BIG_OFFSET: Final = 0x80000000
_READ_BLOCK: Final = 1 << 20
_WRITE_BLOCK: Final = 256 * 1024  # bytes of small entries gathered before a write
_TEMP: Final = re.compile(r"tmp_(?:pack|idx)_gitcache-(\d+)-")


def _temp_prefix(kind: str) -> str:
    """`tmp_pack_gitcache-<pid>-`: git's own kind of temporary name (`git gc` removes
    old ones), with our pid, so a pack a killed process left is known as such."""
    return f"tmp_{kind}_gitcache-{os.getpid()}-"


def clean_stale(pack_dir: Path) -> list[str]:
    """Remove the temporary packs and indexes of gitcache processes that are gone."""
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(pack_dir) as listing:
        for entry in listing:
            match = _TEMP.match(entry.name)
            if match is None or int(match[1]) == os.getpid() or process_alive(int(match[1])):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _remove_temp(fd: int, tmp: str) -> None:
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def entry_header(kind: str, size: int) -> bytes:
    """A pack entry's type-and-size header (git's variable-length encoding)."""
    byte = (TYPE_CODES[kind] << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class PackWriter:
    """One pack being written into `objects/pack/`; `finish` publishes it."""

    def __init__(self, pack_dir: Path) -> None:
        pack_dir.mkdir(parents=True, exist_ok=True)
        clean_stale(pack_dir)
        self._dir = pack_dir
        fd, tmp = tempfile.mkstemp(dir=pack_dir, prefix=_temp_prefix("pack"))
        self._fd = fd
        self._tmp = Path(tmp)
        # Closed and removed when abandoned, when dropped unfinished, or when the process
        # exits with it open (a killed process's goes when the next pack is written).
        self._remove = weakref.finalize(self, _remove_temp, fd, tmp)
        self._offset = 12
        self._entries: dict[bytes, tuple[int, int]] = {}  # raw id -> (offset, crc32)
        # Small entries' bytes, written a block at a time (a system call per object of a
        # thousand sweep records was a tenth of their cost).
        self._buffer: list[bytes] = [b"PACK" + struct.pack(">II", 2, 0)]  # count: finish
        self._buffered = 12

    def __contains__(self, oid: str) -> bool:
        return bytes.fromhex(oid) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, oid: str, kind: str, content: Bytes) -> None:
        raw = bytes.fromhex(oid)
        if raw in self._entries:
            return
        pieces = [entry_header(kind, len(content)), *deflate([content], content)]
        crc = 0
        size = 0
        for piece in pieces:
            crc = zlib.crc32(piece, crc)
            size += len(piece)
        if all(isinstance(p, bytes) for p in pieces):
            self._buffer += cast(list[bytes], pieces)
            self._buffered += size
            if self._buffered >= _WRITE_BLOCK:
                self._write_buffer()
        else:  # views into the caller's content (stored blocks): written before we return
            self._write_buffer()
            write_pieces(self._fd, pieces)
        self._entries[raw] = (self._offset, crc)
        self._offset += size

    def truncate(self, count: int) -> None:
        """Drop every entry after the first `count` (a failed step's, added last)."""
        if count >= len(self._entries):
            return
        self._write_buffer()
        ids = list(self._entries)
        end = self._entries[ids[count]][0]  # where the first dropped entry starts
        for raw in ids[count:]:
            del self._entries[raw]
        os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)
        self._offset = end

    def _write_buffer(self) -> None:
        if self._buffer:
            write_pieces(self._fd, self._buffer)
            self._buffer, self._buffered = [], 0

    def finish(self) -> Path | None:
        """Publish the pack; its .idx path (None if it held nothing)."""
        try:
            if not self._entries:
                return None
            self._write_buffer()
            os.pwrite(self._fd, struct.pack(">I", len(self._entries)), 8)
            digest = hashlib.sha1()
            os.lseek(self._fd, 0, os.SEEK_SET)
            while block := os.read(self._fd, _READ_BLOCK):
                digest.update(block)
            checksum = digest.digest()
            write_all(self._fd, checksum)
            os.fchmod(self._fd, 0o444)
            name = f"pack-{checksum.hex()}"
            pack, index = self._dir / f"{name}.pack", self._dir / f"{name}.idx"
            fd, tmp_idx = tempfile.mkstemp(dir=self._dir, prefix=_temp_prefix("idx"))
            try:
                write_all(fd, self._index(checksum))
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
            try:
                if not index.exists():  # else the same pack is there already
                    os.replace(self._tmp, pack)
                    os.replace(tmp_idx, index)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_idx)
            return index
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Close and remove the temporary pack (after finish: closes only)."""
        self._remove()

    def _index(self, pack_checksum: bytes) -> bytes:
        ids = sorted(self._entries)
        fanout = [0] * 256
        for raw in ids:
            fanout[raw[0]] += 1
        total = 0
        for i in range(256):
            total += fanout[i]
            fanout[i] = total
        small: list[int] = []
        big: list[int] = []
        for raw in ids:
            offset = self._entries[raw][0]
            if offset < _BIG_OFFSET:
                small.append(offset)
            else:
                small.append(_BIG_OFFSET | len(big))
                big.append(offset)
        body = b"".join(
            [
                _IDX_MAGIC,
                struct.pack(">I", 2),
                struct.pack(">256I", *fanout),
                *ids,
                struct.pack(f">{len(ids)}I", *(self._entries[r][1] for r in ids)),
                struct.pack(f">{len(small)}I", *small),
                struct.pack(f">{len(big)}Q", *big),
                pack_checksum,
            ]
        )
        return body + hashlib.sha1(body).digest()
