"""The `record.json` model stored in every record commit (docs/format.md).

A record may come from another machine through `git fetch`, so it is parsed as
untrusted input: frozen, `extra="forbid"`, and every path checked to be a plain
relative path that stays inside the worktree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)

from gitcache.errors import UnsafeRecord, is_utf8
from gitcache.stepnames import StepName

# 2: a file over the chunk threshold is stored as chunks (`chunks/<tree path>/<index>`,
# OutputFile.chunks). 3: a record of more than OUTPUTS_LISTED_MAX outputs lists only those
# stored in chunks (`chunked`), the others being the entries of the tree's outputs/
# (outputtree.py); smaller ones list them all, as before. Formats 1 and 2 are read as before.
RECORD_FORMAT = 3
OUTPUTS_LISTED_MAX = 1000
OID_PATTERN = r"^[0-9a-f]{40}([0-9a-f]{24})?$"
SIG_PATTERN = r"^[0-9a-f]{64}$"
_OID = re.compile(OID_PATTERN)
LINK_MAX = 4096  # Linux's PATH_MAX, with the NUL: symlink(2) refuses a longer text
# record.json is read whole and parsed by anything that uses a record (fetch, log, run,
# restore), and a fetched one could be any size: its size is checked from the object's
# header first (store.py). From format 3 on it does not grow with the outputs (a format-2
# record of 50,000 outputs is ~4.8 MB), so this leaves room for big Python arguments, and
# bounds what a hostile one costs (about twice this in memory while it is parsed).
RECORD_JSON_MAX = 64 << 20


def shown_path(path: str) -> str:
    """A path for a message: a byte that is not UTF-8 (a lone surrogate) as `\\xff`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# Plain ASCII components none of which starts with a dot: such a path passes every check
# below (not empty, no backslash or NUL, relative, no '.', '..' or '.git' component), so
# one match decides it. Paths in a 50,000-file record are checked this way.
PLAIN_COMPONENT = r"[\w+,=@~%-][\w.+,=@~% -]*"  # with re.ASCII
_PLAIN_PATH = re.compile(rf"(?:{PLAIN_COMPONENT}/)*{PLAIN_COMPONENT}", re.ASCII)


def check_relative_path(path: str) -> str:
    """A worktree path a record may name: UTF-8, relative, normalized, outside `.git`."""
    return path if _PLAIN_PATH.fullmatch(path) else _check_any_path(path)


def _check_any_path(path: str) -> str:
    if not is_utf8(path):
        raise ValueError(f"{shown_path(path)}: path is not valid UTF-8")
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


_OID_FULL = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_SIG_FULL = re.compile(r"[0-9a-f]{64}")


def _check_oid(text: str) -> str:
    if not _OID_FULL.fullmatch(text):
        raise ValueError(f"not a git object id: {text[:80]!r}")
    return text


def _check_signature(text: str) -> str:
    if not _SIG_FULL.fullmatch(text):
        raise ValueError(f"not a signature (64 lowercase hex digits): {text[:80]!r}")
    return text


SafePath = Annotated[str, AfterValidator(check_relative_path)]
# Python's re, not Field(pattern=...): pydantic-core's regex engine builds its automaton
# on first use, ~40 µs per pattern, paid by every new process reading a record (a
# Python step's hit). fullmatch: `$` would accept a trailing newline.
Oid = Annotated[str, AfterValidator(_check_oid)]
Signature = Annotated[str, AfterValidator(_check_signature)]

JsonScalar = str | int | float | bool | None
JsonValue = Any  # params may be nested TOML arrays/tables; canonical JSON holds them


class _Frozen(BaseModel):
    # cache_strings=False: the JSON parser's string cache costs ~100 µs to set up on
    # first use, paid by every new process reading one record (a Python step's hit).
    model_config = ConfigDict(frozen=True, extra="forbid", cache_strings=False)


class _OmitsUnused(_Frozen):
    """A model whose optional fields in `_OMITTED_IF_NONE` are left out when None.

    So fields that only one kind of step has never show up as `null` in the other
    kind's documents: a shell step's canonical document (and so its signature) is
    the same as before Python steps existed.
    """

    _OMITTED_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self._OMITTED_IF_NONE:
            if data.get(name, 0) is None:
                del data[name]
        return data


class Components(_OmitsUnused):
    """Everything that went into a signature (docs/format.md, "The signature")."""

    _OMITTED_IF_NONE = frozenset({"shell", "command", "references", "versions", "executable"})

    format: int
    kind: Literal["shell", "python"]
    code: str
    shell: str | None = None
    # Shell steps, format 2 on: the command as the shell receives it (parameters and
    # paths filled in), normalized. `code` alone is not enough: a value holding a
    # quote, `#` or a trailing backslash changes how the rest of the line is read.
    command: str | None = None
    params: dict[str, JsonValue]
    inputs: dict[SafePath, Oid]
    # Shell steps: the inputs whose mode is executable (git's 100755), sorted; absent
    # when none is, so the signatures of steps without one are what they were. A blob
    # id says nothing of the mode, and `./prepare.sh` runs only with the bit set.
    executable: list[SafePath] | None = None
    outputs: list[SafePath]
    env: dict[str, str | None]
    # Python steps only (docs/python.md): code key -> BLAKE3 of each function, class
    # and constant of the repository the step's function uses; and the versions listed
    # in `versions=[...]`.
    references: dict[str, str] | None = None
    versions: dict[str, str | None] | None = None


class OutputFile(_OmitsUnused):
    _OMITTED_IF_NONE = frozenset({"chunks"})

    path: SafePath
    blob: Oid  # the whole file's git blob id, also when it is stored in chunks
    mode: Literal[0o100644, 0o100755, 0o120000]
    size: int = Field(ge=0)
    # Stored as this many chunk blobs at chunks/outputs/<path>/00000000... instead of
    # one blob at outputs/<path> (record format 2; absent: stored whole).
    chunks: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _links_whole(self) -> OutputFile:
        if self.chunks is not None and self.mode == 0o120000:
            raise ValueError("a symlink is never stored in chunks")
        # A link's text is a path (symlink(2) takes less than PATH_MAX, 4096 bytes): a
        # bigger "link" blob of a fetched record is never read into memory to find out.
        if self.mode == 0o120000 and self.size >= LINK_MAX:
            raise ValueError(f"a symlink's text must be shorter than {LINK_MAX} bytes (PATH_MAX)")
        return self


class PythonRun(_Frozen):
    """What a Python step's record keeps beside its signature (provenance only)."""

    function: str  # code key of the function: `<file>:<qualname>`
    module: str  # its module's name when it ran (`__main__` for a script)
    file: str | None  # its file, relative to the repository root (None: a notebook)
    python: str  # the interpreter's version
    packages: dict[str, str | None]  # version of each outside package the code uses
    files: dict[str, str] = {}  # argument -> path of each gitcache.File argument
    arguments: dict[str, JsonValue] = {}  # the call's arguments, as task files hold them
    result: Literal["json", "pickle", "none"] = "json"


class Record(_OmitsUnused):
    _OMITTED_IF_NONE = frozenset({"python", "item"})

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
    python: PythonRun | None = None  # Python steps only
    # An item of a sweep (docs/sweeps.md): axis -> value, or {"item": path} for a
    # foreach; each is also in components.params. Absent for other steps.
    item: dict[str, JsonValue] | None = None

    @model_validator(mode="after")
    def _item_in_params(self) -> Record:
        if self.item is not None:
            params = self.components.params
            for name, value in self.item.items():
                if name not in params or params[name] != value:
                    raise ValueError(f"item.{name} is not the value in components.params")
        return self

    def to_json(self) -> bytes:
        """record.json as stored: every output listed (SPEC), or, from format 3 on, for
        a record of more than OUTPUTS_LISTED_MAX outputs, only those in chunks
        (`chunked`): the tree lists the others, so recording such an output again with
        one file changed does not write the whole list again."""
        if self.format < 3 or len(self.outputs) <= OUTPUTS_LISTED_MAX:
            return (self.model_dump_json(indent=2) + "\n").encode()
        doc: dict[str, Any] = {}
        for key, value in self.model_dump(mode="json", exclude={"outputs"}).items():
            doc[key] = value
            if key == "command":  # where `outputs` stood in format 2
                doc[CHUNKED] = [
                    o.model_dump(mode="json") for o in self.outputs if o.chunks is not None
                ]
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


CHUNKED = "chunked"  # record.json's list of the outputs stored in chunks (format 3)
_OUTPUT_LIST = TypeAdapter(list[OutputFile])


def parse_record(data: bytes, where: str, whole_outputs: Callable[[], list[OutputFile]]) -> Record:
    """Validate record.json bytes; raise UnsafeRecord naming `where` on any defect.

    `whole_outputs`: the outputs the record's tree holds whole (outputtree.py), asked
    for only when record.json leaves their list to the tree (format 3, `chunked`).
    """
    try:
        # The common case in one call (pydantic's JSON parser: ~20 us less than
        # json.loads and a validation of the objects, on a Python step's hit).
        record = Record.model_validate_json(data)
    except ValidationError as exc:
        doc = _document(data)
        _check_format(doc.get("format") if isinstance(doc, dict) else None, where)
        if not isinstance(doc, dict) or CHUNKED not in doc:
            raise _invalid(exc, where, ()) from exc
        record = _with_outputs(doc, where, whole_outputs)
    _check_format(record.format, where)
    return record


def _document(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # UnicodeDecodeError included: pydantic's error says it
        return None


def _check_format(found: object, where: str) -> None:
    """UnsafeRecord, with a hint, for a record of a format newer than this code's."""
    if type(found) is int and found > RECORD_FORMAT:
        raise UnsafeRecord(
            f"record.json in {where} is of format {found}, newer than this gitcache "
            f"reads ({RECORD_FORMAT})",
            hint="upgrade gitcache",
        )


def _invalid(exc: ValidationError, where: str, prefix: tuple[str, ...]) -> UnsafeRecord:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in (*prefix, *first["loc"]))
    return UnsafeRecord(f"invalid record.json in {where}: {loc}: {first['msg']}")


def _with_outputs(
    doc: dict[str, Any], where: str, whole_outputs: Callable[[], list[OutputFile]]
) -> Record:
    """The record of a document that leaves its outputs to the tree, `outputs` filled
    in: its chunked ones and the tree's."""
    if type(doc.get("format")) is not int or doc["format"] < 3:
        raise UnsafeRecord(
            f"invalid record.json in {where}: {CHUNKED}: not allowed before format 3"
        )
    if "outputs" in doc:  # two lists that could disagree
        raise UnsafeRecord(f"invalid record.json in {where}: {CHUNKED}: not allowed beside outputs")
    try:
        chunked = _OUTPUT_LIST.validate_python(doc.pop(CHUNKED))
    except ValidationError as exc:
        raise _invalid(exc, where, (CHUNKED,)) from exc
    whole = whole_outputs()  # sorted by path
    paths = {o.path for o in whole} if chunked else set()
    for out in chunked:
        if out.chunks is None:
            raise UnsafeRecord(
                f"invalid record.json in {where}: {CHUNKED}: {out.path} has no chunk count"
            )
        parents = out.path.split("/")
        # One file per path: a chunked output is not also a file, nor a directory, of
        # the tree, nor under a file of it (each would be two writes to one path).
        clash = out.path in paths or any(
            "/".join(parents[:n]) in paths for n in range(1, len(parents))
        )
        if clash or any(p.startswith(out.path + "/") for p in paths):
            raise UnsafeRecord(
                f"{where}: {shown_path(out.path)} is both in {CHUNKED} and in its tree's outputs/"
            )
        paths.add(out.path)
    doc["outputs"] = sorted([*whole, *chunked], key=lambda o: o.path) if chunked else whole
    try:
        return Record.model_validate(doc)
    except ValidationError as exc:
        raise _invalid(exc, where, ()) from exc


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))
