"""record.json as pydantic models: the reference for what a record may hold.

record.py reads a record with a check written by hand for the shapes gitcache writes,
and builds its plain classes without importing pydantic (its import and model building
are ~40 % of a command's start-up). Anything that check does not take (a defect, a
value pydantic's lax mode converts, an escape it leaves alone) comes here: these
models, unchanged from when they were the record classes, either refuse it with the
message they always gave or validate it, converted to the plain classes. So what a
record means and every message stays theirs; tests/test_record_fast.py holds the
hand-written check to them. Serializing a value that is not plain JSON (a Python
step's argument of another type) also goes through these models.
"""

from __future__ import annotations

import json
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

from gitcache import record as plain
from gitcache.errors import UnsafeRecord
from gitcache.record import (
    CHUNKED,
    LINK_MAX,
    RECORD_FORMAT,
    OnePathEach,
    check_format,
    check_oid,
    check_relative_path,
    check_signature,
    shown_path,
)
from gitcache.stepnames import check_step_name

SafePath = Annotated[str, AfterValidator(check_relative_path)]
Oid = Annotated[str, AfterValidator(check_oid)]
Signature = Annotated[str, AfterValidator(check_signature)]
StepName = Annotated[str, AfterValidator(check_step_name)]

JsonValue = Any  # params may be nested TOML arrays/tables; canonical JSON holds them


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", cache_strings=False)


class _OmitsUnused(_Frozen):
    """A model whose optional fields in `_OMITTED_IF_NONE` are left out when None."""

    _OMITTED_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self._OMITTED_IF_NONE:
            if data.get(name, 0) is None:
                del data[name]
        return data


class Components(_OmitsUnused):
    _OMITTED_IF_NONE = frozenset({"shell", "command", "references", "versions", "executable"})

    format: int
    kind: Literal["shell", "python"]
    code: str
    shell: str | None = None
    command: str | None = None
    params: dict[str, JsonValue]
    inputs: dict[SafePath, Oid]
    executable: list[SafePath] | None = None
    outputs: list[SafePath]
    env: dict[str, str | None]
    references: dict[str, str] | None = None
    versions: dict[str, str | None] | None = None


class OutputFile(_OmitsUnused):
    _OMITTED_IF_NONE = frozenset({"chunks"})

    path: SafePath
    blob: Oid
    mode: Literal[0o100644, 0o100755, 0o120000]
    size: int = Field(ge=0)
    chunks: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _links_whole(self) -> OutputFile:
        if self.chunks is not None and self.mode == 0o120000:
            raise ValueError("a symlink is never stored in chunks")
        if self.mode == 0o120000 and self.size >= LINK_MAX:
            raise ValueError(f"a symlink's text must be shorter than {LINK_MAX} bytes (PATH_MAX)")
        return self


class PythonRun(_Frozen):
    function: str
    module: str
    file: str | None
    python: str
    packages: dict[str, str | None]
    files: dict[str, str] = {}
    arguments: dict[str, JsonValue] = {}
    result: Literal["json", "pickle", "none"] = "json"


class Record(_OmitsUnused):
    _OMITTED_IF_NONE = frozenset({"python", "item"})

    format: int = RECORD_FORMAT
    step: StepName
    signature: Signature
    components: Components
    command: str
    outputs: list[OutputFile]
    source_commit: Oid | None
    dirty: bool
    dirty_files: list[str] = []
    started_at: str
    duration: float = Field(ge=0)
    exit_status: int
    host: str
    gitcache_version: str
    python: PythonRun | None = None
    item: dict[str, JsonValue] | None = None

    @model_validator(mode="after")
    def _item_in_params(self) -> Record:
        if self.item is not None:
            params = self.components.params
            for name, value in self.item.items():
                if name not in params or params[name] != value:
                    raise ValueError(f"item.{name} is not the value in components.params")
        return self


_OUTPUT_LIST = TypeAdapter(list[OutputFile])


# -- reading -------------------------------------------------------------------------------


def parse_record(
    data: bytes, where: str, whole_outputs: Callable[[], list[plain.OutputFile]]
) -> plain.Record:
    """record.parse_record by these models: the record, or UnsafeRecord naming `where`."""
    try:
        record = Record.model_validate_json(data)
    except ValidationError as exc:
        doc = _document(data)
        check_format(doc.get("format") if isinstance(doc, dict) else None, where)
        if not isinstance(doc, dict) or CHUNKED not in doc:
            raise _invalid(exc, where, ()) from exc
        record = _with_outputs(doc, where, whole_outputs)
    check_format(record.format, where)
    return _plain_record(record)


def validate_outputs(found: list[dict[str, object]]) -> list[plain.OutputFile]:
    """Outputs as record.json's are validated; ValidationError as pydantic raises it."""
    return [_plain_output(o) for o in _OUTPUT_LIST.validate_python(found)]


def output_problem(exc: Exception) -> tuple[object, str]:
    """The location and message of validate_outputs' first error."""
    assert isinstance(exc, ValidationError)
    first = exc.errors()[0]
    return first["loc"][0], first["msg"]


def _document(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # pydantic's error says it (not UTF-8, too deep)
        return None


def _invalid(exc: ValidationError, where: str, prefix: tuple[str, ...]) -> UnsafeRecord:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in (*prefix, *first["loc"]))
    return UnsafeRecord(f"invalid record.json in {where}: {loc}: {first['msg']}")


def _with_outputs(
    doc: dict[str, Any], where: str, whole_outputs: Callable[[], list[plain.OutputFile]]
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
    whole = [OutputFile.model_validate(o.fields()) for o in whole_outputs()]  # sorted by path
    paths = OnePathEach(o.path for o in whole) if chunked else OnePathEach(())
    for out in chunked:
        if out.chunks is None:
            raise UnsafeRecord(
                f"invalid record.json in {where}: {CHUNKED}: {out.path} has no chunk count"
            )
        if not paths.claim(out.path):
            raise UnsafeRecord(
                f"{where}: {shown_path(out.path)} is both in {CHUNKED} and in its tree's outputs/"
            )
    doc["outputs"] = sorted([*whole, *chunked], key=lambda o: o.path) if chunked else whole
    try:
        return Record.model_validate(doc)
    except ValidationError as exc:
        raise _invalid(exc, where, ()) from exc


def _plain_output(o: OutputFile) -> plain.OutputFile:
    return plain.OutputFile(path=o.path, blob=o.blob, mode=o.mode, size=o.size, chunks=o.chunks)


def _plain_record(r: Record) -> plain.Record:
    c = r.components
    python = r.python
    return plain.Record(
        format=r.format,
        step=r.step,
        signature=r.signature,
        components=plain.Components(**{name: getattr(c, name) for name in Components.model_fields}),
        command=r.command,
        outputs=[_plain_output(o) for o in r.outputs],
        source_commit=r.source_commit,
        dirty=r.dirty,
        dirty_files=r.dirty_files,
        started_at=r.started_at,
        duration=r.duration,
        exit_status=r.exit_status,
        host=r.host,
        gitcache_version=r.gitcache_version,
        python=None
        if python is None
        else plain.PythonRun(**{name: getattr(python, name) for name in PythonRun.model_fields}),
        item=r.item,
    )


# -- writing values that are not plain JSON ------------------------------------------------


def components_document(components: plain.Components) -> dict[str, Any]:
    """What these models' JSON-mode dump gives for the components."""
    document: dict[str, Any] = Components(**components.fields()).model_dump(mode="json")
    return document


def record_document(record: plain.Record) -> dict[str, Any]:
    """What these models' JSON-mode dump gives for the record (outputs included)."""
    fields = record.fields()
    fields["components"] = record.components.fields()
    fields["outputs"] = [o.fields() for o in record.outputs]
    if record.python is not None:
        fields["python"] = record.python.fields()
    document: dict[str, Any] = Record.model_validate(fields).model_dump(mode="json")
    return document
