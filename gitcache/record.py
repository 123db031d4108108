"""The `record.json` stored in every record commit (docs/format.md), as plain classes.

A record may come from another machine through `git fetch`, so it is parsed as
untrusted input: every field checked, no unknown key, every path a plain relative
path that stays inside the worktree. The check here is written by hand for the shapes
gitcache writes and builds the classes without pydantic, whose import and model
building are ~40 % of a command's start-up; whatever it does not take goes to the
pydantic models of recordschema.py, the reference for what a record may hold, which
refuse it with their message or validate it (docs/architecture.md).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from gitcache.errors import UnsafeRecord, is_utf8
from gitcache.stepnames import ref_component_problem

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


def check_oid(text: str) -> str:
    if not _OID_FULL.fullmatch(text):
        raise ValueError(f"not a git object id: {text[:80]!r}")
    return text


def check_signature(text: str) -> str:
    if not _SIG_FULL.fullmatch(text):
        raise ValueError(f"not a signature (64 lowercase hex digits): {text[:80]!r}")
    return text


JsonValue = Any  # params may be nested TOML arrays/tables; canonical JSON holds them


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, kw_only=True)
class Components:
    """Everything that went into a signature (docs/format.md, "The signature")."""

    format: int
    kind: Literal["shell", "python"]
    code: str
    shell: str | None = None
    # Shell steps, format 2 on: the command as the shell receives it (parameters and
    # paths filled in), normalized. `code` alone is not enough: a value holding a
    # quote, `#` or a trailing backslash changes how the rest of the line is read.
    command: str | None = None
    params: dict[str, JsonValue]
    inputs: dict[str, str]
    # Shell steps: the inputs whose mode is executable (git's 100755), sorted; absent
    # when none is, so the signatures of steps without one are what they were. A blob
    # id says nothing of the mode, and `./prepare.sh` runs only with the bit set.
    executable: list[str] | None = None
    outputs: list[str]
    env: dict[str, str | None]
    # Python steps only (docs/python.md): code key -> BLAKE3 of each function, class
    # and constant of the repository the step's function uses; and the versions listed
    # in `versions=[...]`.
    references: dict[str, str] | None = None
    versions: dict[str, str | None] | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COMPONENTS}

    def replace(self, **changes: Any) -> Components:
        return Components(**{**self.fields(), **changes})

    def document(self) -> dict[str, Any]:
        """The components as JSON values, the fields that are None left out (so a shell
        step's document is what it was before Python steps existed): what is signed."""
        if not is_plain(self.params):
            from gitcache import recordschema  # a value to convert as pydantic does

            return recordschema.components_document(self)
        return {k: v for k, v in self.fields().items() if v is not None or k not in _OMITTED}


# Left out when None: a shell step's document is what it was before Python steps.
_OMITTED = frozenset({"shell", "command", "references", "versions", "executable"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputFile:
    path: str
    blob: str  # the whole file's git blob id, also when it is stored in chunks
    mode: int  # 0o100644, 0o100755 or 0o120000 (checked when read)
    size: int
    # Stored as this many chunk blobs at chunks/outputs/<path>/00000000... instead of
    # one blob at outputs/<path> (record format 2; absent: stored whole).
    chunks: int | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _OUTPUT}

    def document(self) -> dict[str, Any]:
        doc = {"path": self.path, "blob": self.blob, "mode": self.mode, "size": self.size}
        if self.chunks is not None:
            doc["chunks"] = self.chunks
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonRun:
    """What a Python step's record keeps beside its signature (provenance only)."""

    function: str  # code key of the function: `<file>:<qualname>`
    module: str  # its module's name when it ran (`__main__` for a script)
    file: str | None  # its file, relative to the repository root (None: a notebook)
    python: str  # the interpreter's version
    packages: dict[str, str | None]  # version of each outside package the code uses
    files: dict[str, str] = field(default_factory=dict)  # argument -> path of each File
    arguments: dict[str, JsonValue] = field(default_factory=dict)  # as task files hold them
    result: Literal["json", "pickle", "none"] = "json"

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PYTHON_RUN}


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    format: int = RECORD_FORMAT
    step: str
    signature: str
    components: Components
    command: str  # the command as executed (after interpolation); provenance only
    outputs: list[OutputFile]
    source_commit: str | None
    dirty: bool
    dirty_files: list[str] = field(default_factory=list)
    started_at: str  # ISO 8601, UTC
    duration: float
    exit_status: int
    host: str
    gitcache_version: str
    python: PythonRun | None = None  # Python steps only
    # An item of a sweep (docs/sweeps.md): axis -> value, or {"item": path} for a
    # foreach; each is also in components.params. Absent for other steps.
    item: dict[str, JsonValue] | None = None

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RECORD}

    def document(self) -> dict[str, Any]:
        """record.json's content as JSON values, every output listed."""
        return self._document(True)

    def _document(self, every_output: bool) -> dict[str, Any]:
        """`every_output` False: only those in chunks, as `chunked` (format 3)."""
        python = self.python
        if not (
            is_plain(self.components.params)
            and (self.item is None or is_plain(self.item))
            and (python is None or is_plain(python.arguments))
        ):
            from gitcache import recordschema  # a value to convert as pydantic does

            doc = recordschema.record_document(self)
        else:
            doc = self.fields()
            doc["components"] = self.components.document()
            doc["outputs"] = [o.document() for o in self.outputs if every_output or o.chunks]
            for name in ("python", "item"):
                if doc[name] is None:
                    del doc[name]
            if python is not None:
                doc["python"] = python.fields()
        if every_output:
            return doc
        # `chunked` where `outputs` stood
        return {
            (CHUNKED if key == "outputs" else key): (
                [o for o in value if "chunks" in o] if key == "outputs" else value
            )
            for key, value in doc.items()
        }

    def to_json(self) -> bytes:
        """record.json as stored: every output listed (SPEC), or, from format 3 on, for
        a record of more than OUTPUTS_LISTED_MAX outputs, only those in chunks
        (`chunked`): the tree lists the others, so recording such an output again with
        one file changed does not write the whole list again."""
        every = self.format < 3 or len(self.outputs) <= OUTPUTS_LISTED_MAX
        return (json.dumps(self._document(every), indent=2, ensure_ascii=False) + "\n").encode()


_COMPONENTS = _field_names(Components)
_OUTPUT = _field_names(OutputFile)
_PYTHON_RUN = _field_names(PythonRun)
_RECORD = _field_names(Record)
CHUNKED = "chunked"  # record.json's list of the outputs stored in chunks (format 3)


def is_plain(value: Any) -> bool:
    """Whether `value` is JSON as it is: exact str, int, bool, finite float, None, list,
    dict with str keys (what pydantic's JSON-mode dump leaves as it is). A value nested
    deeper than the recursion limit is not: pydantic decides."""
    try:
        return _plain(value)
    except RecursionError:
        return False


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


# -- reading -------------------------------------------------------------------------------


def parse_record(data: bytes, where: str, whole_outputs: Callable[[], list[OutputFile]]) -> Record:
    """Validate record.json bytes; raise UnsafeRecord naming `where` on any defect.

    `whole_outputs`: the outputs the record's tree holds whole (outputtree.py), asked
    for only when record.json leaves their list to the tree (format 3, `chunked`).
    """
    try:
        return _fast(data, whole_outputs)
    except _Defer:
        from gitcache import recordschema

        return recordschema.parse_record(data, where, whole_outputs)


def check_format(found: object, where: str) -> None:
    """UnsafeRecord, with a hint, for a record of a format newer than this code's."""
    if type(found) is int and found > RECORD_FORMAT:
        raise UnsafeRecord(
            f"record.json in {where} is of format {found}, newer than this gitcache "
            f"reads ({RECORD_FORMAT})",
            hint="upgrade gitcache",
        )


def validate_outputs(found: list[dict[str, Any]]) -> list[OutputFile]:
    """Outputs as record.json's are validated (a symlink's size under PATH_MAX included);
    ValueError whose args are (index, message) at the first defect."""
    try:
        return [_output(o) for o in found]
    except _Defer:
        from gitcache import recordschema

        try:
            return recordschema.validate_outputs(found)
        except ValueError as exc:  # pydantic's ValidationError
            raise ValueError(*recordschema.output_problem(exc)) from None


class _Defer(Exception):
    """The hand-written check does not take this: recordschema.py decides."""


# What pydantic takes as it is (JSON types, no lax conversion); anything else defers.
_SHELL_KINDS = frozenset({"shell", "python"})
_MODES = frozenset({0o100644, 0o100755, 0o120000})
_RESULTS = frozenset({"json", "pickle", "none"})
_RECORD_REQUIRED = frozenset(
    {"step", "signature", "components", "command", "outputs", "source_commit", "dirty"}
    | {"started_at", "duration", "exit_status", "host", "gitcache_version"}
)
_COMPONENTS_REQUIRED = frozenset({"format", "kind", "code", "params", "inputs", "outputs", "env"})
_OUTPUT_REQUIRED = frozenset({"path", "blob", "mode", "size"})
_PYTHON_REQUIRED = frozenset({"function", "module", "file", "python", "packages"})
_RECORD_ALLOWED = frozenset(_RECORD)
_COMPONENTS_ALLOWED = frozenset(_COMPONENTS)
_PYTHON_ALLOWED = frozenset(_PYTHON_RUN)
# A \u escape of a surrogate: json and pydantic's parser may read it differently.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _fast(data: bytes, whole_outputs: Callable[[], list[OutputFile]]) -> Record:
    if _SURROGATE_ESCAPE.search(data):
        raise _Defer
    try:
        # A key twice: the last value, as pydantic's parser takes it (a test holds it).
        doc = json.loads(data.decode(), parse_constant=_constant)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep
        raise _Defer from None
    if type(doc) is not dict:
        raise _Defer
    if CHUNKED in doc:  # format 3: the outputs not in chunks are the tree's
        found = doc.get("format")
        if type(found) is not int or not 3 <= found <= RECORD_FORMAT or "outputs" in doc:
            raise _Defer
        listed = doc.pop(CHUNKED)
        if type(listed) is not list:
            raise _Defer
        chunked = [_output(o) for o in listed]
        if any(o.chunks is None for o in chunked):
            raise _Defer
        whole = whole_outputs()  # sorted by path
        if chunked:
            paths = OnePathEach(o.path for o in whole)
            for out in chunked:
                if not paths.claim(out.path):
                    raise _Defer
            whole = sorted([*whole, *chunked], key=lambda o: o.path)
        record = _record(doc, whole)
    else:
        record = _record(doc, None)
    if record.format > RECORD_FORMAT:
        raise _Defer
    return record


class OnePathEach:
    """The paths of a record's outputs, one file per path: a path claimed is not also
    another's, nor a directory above another, nor under one (each would be two writes
    to one path). Each check costs the path's depth, not the number of paths: a record
    of 50,000 files in its tree and 1,000 in chunks is checked in milliseconds."""

    def __init__(self, paths: Iterable[str]) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()  # every directory above a file
        for path in paths:
            self._add(path)

    def claim(self, path: str) -> bool:
        """Add `path`; False (nothing added) if it clashes with one already here."""
        above = _above(path)
        if path in self._files or path in self._dirs or any(d in self._files for d in above):
            return False
        self._files.add(path)
        self._dirs.update(above)
        return True

    def _add(self, path: str) -> None:
        self._files.add(path)
        self._dirs.update(_above(path))


def _above(path: str) -> list[str]:
    """The directories above `path` (`a`, `a/b` for `a/b/c`)."""
    found = []
    end = path.find("/")
    while end != -1:
        found.append(path[:end])
        end = path.find("/", end + 1)
    return found


def _constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _keys(doc: Any, required: frozenset[str], allowed: frozenset[str]) -> dict[str, Any]:
    if type(doc) is not dict or not doc.keys() >= required or not doc.keys() <= allowed:
        raise _Defer
    return doc


def _str(value: Any) -> str:
    if type(value) is not str:
        raise _Defer
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _Defer
    return value


def _str_or_none(value: Any) -> str | None:
    return None if value is None else _str(value)


def _str_list(value: Any) -> list[str]:
    if type(value) is not list or any(type(v) is not str for v in value):
        raise _Defer
    return value


def _str_dict(value: Any, none: bool = False) -> dict[str, Any]:
    if type(value) is not dict or not all(
        type(v) is str or (none and v is None) for v in value.values()
    ):
        raise _Defer
    return value


def _json(value: Any) -> dict[str, Any]:
    """A dict of any JSON values (a float that overflowed to infinity defers)."""
    if type(value) is not dict or not is_plain(value):
        raise _Defer
    return value


def _path(value: Any) -> str:
    try:
        return check_relative_path(_str(value))
    except ValueError:
        raise _Defer from None


def _oid(value: Any) -> str:
    if type(value) is not str or not _OID_FULL.fullmatch(value):
        raise _Defer
    return value


def _output(doc: Any) -> OutputFile:
    if type(doc) is not dict or not doc.keys() >= _OUTPUT_REQUIRED:
        raise _Defer
    chunks = doc.get("chunks")
    if len(doc) != (4 if "chunks" not in doc else 5):
        raise _Defer
    mode, size = doc["mode"], doc["size"]
    if type(mode) is not int or mode not in _MODES or type(size) is not int or size < 0:
        raise _Defer
    if chunks is not None and (type(chunks) is not int or chunks < 1 or mode == 0o120000):
        raise _Defer
    if mode == 0o120000 and size >= LINK_MAX:
        raise _Defer
    return OutputFile(
        path=_path(doc["path"]), blob=_oid(doc["blob"]), mode=mode, size=size, chunks=chunks
    )


def _components(doc: Any) -> Components:
    doc = _keys(doc, _COMPONENTS_REQUIRED, _COMPONENTS_ALLOWED)
    if type(doc["kind"]) is not str or doc["kind"] not in _SHELL_KINDS:
        raise _Defer
    inputs = _str_dict(doc["inputs"])
    for path, oid in inputs.items():
        _path(path)
        _oid(oid)
    executable = doc.get("executable")
    if executable is not None:
        for path in _str_list(executable):
            _path(path)
    for path in _str_list(doc["outputs"]):
        _path(path)
    references, versions = doc.get("references"), doc.get("versions")
    return Components(
        format=_int(doc["format"]),
        kind=doc["kind"],  # type: ignore[arg-type]  # one of _SHELL_KINDS
        code=_str(doc["code"]),
        shell=_str_or_none(doc.get("shell")),
        command=_str_or_none(doc.get("command")),
        params=_json(doc["params"]),
        inputs=inputs,
        executable=executable,
        outputs=doc["outputs"],
        env=_str_dict(doc["env"], none=True),
        references=None if references is None else _str_dict(references),
        versions=None if versions is None else _str_dict(versions, none=True),
    )


def _python_run(doc: Any) -> PythonRun:
    doc = _keys(doc, _PYTHON_REQUIRED, _PYTHON_ALLOWED)
    result = doc.get("result", "json")
    if type(result) is not str or result not in _RESULTS:
        raise _Defer
    return PythonRun(
        function=_str(doc["function"]),
        module=_str(doc["module"]),
        file=_str_or_none(doc["file"]),
        python=_str(doc["python"]),
        packages=_str_dict(doc["packages"], none=True),
        files=_str_dict(doc.get("files", {})),
        arguments=_json(doc.get("arguments", {})),
        result=result,  # type: ignore[arg-type]
    )


def _record(doc: dict[str, Any], outputs: list[OutputFile] | None) -> Record:
    """The record of a document; `outputs` (already checked) in place of its list."""
    required = _RECORD_REQUIRED if outputs is None else _RECORD_REQUIRED - {"outputs"}
    doc = _keys(doc, required, _RECORD_ALLOWED)
    if ref_component_problem(_str(doc["step"])) is not None:
        raise _Defer
    signature = _str(doc["signature"])
    if not _SIG_FULL.fullmatch(signature):
        raise _Defer
    duration = doc["duration"]
    if type(duration) is not float or not 0 <= duration < math.inf:
        raise _Defer
    if type(doc["dirty"]) is not bool:
        raise _Defer
    source = doc["source_commit"]
    components = _components(doc["components"])
    python = doc.get("python")
    item = doc.get("item")
    if item is not None:
        params = components.params
        for name, value in _json(item).items():
            if name not in params or params[name] != value:
                raise _Defer
    if outputs is None:
        listed = doc["outputs"]
        if type(listed) is not list:
            raise _Defer
        outputs = [_output(o) for o in listed]
    return Record(
        format=_int(doc.get("format", RECORD_FORMAT)),
        step=doc["step"],
        signature=signature,
        components=components,
        command=_str(doc["command"]),
        outputs=outputs,
        source_commit=None if source is None else _oid(source),
        dirty=doc["dirty"],
        dirty_files=_str_list(doc.get("dirty_files", [])),
        started_at=_str(doc["started_at"]),
        duration=duration,
        exit_status=_int(doc["exit_status"]),
        host=_str(doc["host"]),
        gitcache_version=_str(doc["gitcache_version"]),
        python=None if python is None else _python_run(python),
        item=item,
    )


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))
