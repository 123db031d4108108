"""`StoredFile`: what storing a file gave (a module of its own: cheap to import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredFile:
    """A file stored as blobs: its whole-file blob id and size, and its chunk blob ids
    in order when it was stored in chunks (None: stored whole, as the blob `oid`)."""

    oid: str
    size: int
    chunks: tuple[str, ...] | None = None
