"""`gitcache.File`: a file argument, identified by its content (git blob id).

A step that takes a `File` gets the same signature for the same bytes, wherever
the file is and whatever its mtime: the blob id is what counts, taken through the
worktree's stat cache for files inside the repository (an unchanged file is not
read again) and by hashing for files outside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class File:
    """A path whose content, not its name or mtime, is what a step depends on."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"gitcache.File({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("gitcache.File", self.path))

    def open(self, mode: str = "r", **kwargs: Any) -> IO[Any]:
        return open(self.path, mode, **kwargs)  # the caller closes it

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.path.read_text(encoding=encoding)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validated from a File, a str or a path; serialized as its path."""

        def coerce(value: Any) -> File:
            if isinstance(value, File):
                return value
            if isinstance(value, str | os.PathLike):
                return File(value)
            raise ValueError(f"expected a gitcache.File or a path, got {type(value).__name__}")

        return core_schema.no_info_plain_validator_function(
            coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda f: str(f.path), when_used="json"
            ),
        )
