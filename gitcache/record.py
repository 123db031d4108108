"""The `record.json` model stored in every record commit (docs/format.md).

A record may come from another machine through `git fetch`, so it is parsed as
untrusted input: frozen, `extra="forbid"`, and every path checked to be a plain
relative path that stays inside the worktree.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from gitcache.errors import UnsafeRecord
from gitcache.stepnames import StepName

RECORD_FORMAT = 1
OID_PATTERN = r"^[0-9a-f]{40}([0-9a-f]{24})?$"
SIG_PATTERN = r"^[0-9a-f]{64}$"
_OID = re.compile(OID_PATTERN)


def check_relative_path(path: str) -> str:
    """A worktree path a record may name: relative, normalized, outside `.git`."""
    if not path or "\\" in path or "\0" in path:
        raise ValueError(f"unsafe path {path!r}")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe path {path!r}: must be relative, without '.', '..' or '//'")
    # Case-insensitive and with trailing dots/spaces: `.GIT` and `.git.` are `.git` on
    # macOS and Windows file systems (git's own fsck refuses them in trees too).
    if any(p.casefold().rstrip(". ") == ".git" for p in parts):
        raise ValueError(f"unsafe path {path!r}: inside .git")
    return path


SafePath = Annotated[str, AfterValidator(check_relative_path)]
Oid = Annotated[str, Field(pattern=OID_PATTERN)]
Signature = Annotated[str, Field(pattern=SIG_PATTERN)]

JsonScalar = str | int | float | bool | None
JsonValue = Any  # params may be nested TOML arrays/tables; canonical JSON holds them


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Components(_Frozen):
    """Everything that went into a signature (docs/format.md, "The signature")."""

    format: int
    kind: Literal["shell", "python"]
    code: str
    shell: str | None = None
    params: dict[str, JsonValue]
    inputs: dict[SafePath, Oid]
    outputs: list[SafePath]
    env: dict[str, str | None]


class OutputFile(_Frozen):
    path: SafePath
    blob: Oid
    mode: Literal[0o100644, 0o100755, 0o120000]
    size: int = Field(ge=0)


class Record(_Frozen):
    format: int = RECORD_FORMAT
    step: StepName
    signature: Signature
    components: Components
    command: str  # the command as executed (after interpolation); provenance only
    outputs: list[OutputFile]
    source_commit: Oid | None
    dirty: bool
    dirty_files: list[str] = []
    started_at: str  # ISO 8601, UTC
    duration: float = Field(ge=0)
    exit_status: int
    host: str
    gitcache_version: str

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()


def parse_record(data: bytes, where: str) -> Record:
    """Validate record.json bytes; raise UnsafeRecord naming `where` on any defect."""
    try:
        return Record.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise UnsafeRecord(f"invalid record.json in {where}: {loc}: {first['msg']}") from exc


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))
