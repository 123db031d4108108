"""A Python step's result as typed blobs in its record tree, and back (docs/format.md).

- `result.json`: the value as JSON (pydantic's JSON of models, dataclasses, dates...),
  with each numpy array replaced by `{"$npy": "<name>"}` and stored beside it as
  `result/<name>.npy` (`np.save(..., allow_pickle=False)`), each pandas DataFrame,
  Series or Index by a `{"$pandas": ...}` description whose columns are such arrays
  or lists of strings (frames.py); dict keys starting with `$` get one more `$`.
- `result.pickle`: only for a step declared with `allow_pickle=True` whose value has
  no other form. A pickle is loaded only from a record this clone wrote itself, or
  one the user trusted explicitly (`gitcache.trust_record(record)`), never from a fetched one.

Reading a result validates it against the step's return type, so a record from
another clone cannot hand the caller a value of another type.

Every file of a record that is not record.json or a log goes into git through
`store_blob` (results) or `store_file` (declared outputs), whole or, over 16 MiB, in
chunks (`chunks/<path>/<index>`, gitcache/objects/).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gitcache.gitrepo import MODE_FILE, GitRepo, TreeEntry
from gitcache.objects.stored import StoredFile
from gitcache.python.errors import ResultError

RESULT_JSON: Final = "result.json"
RESULT_PICKLE: Final = "result.pickle"
RESULT_DIR: Final = "result/"
TRUSTED_FILE: Final = "trusted-pickles-v1.txt"
_NAME: Final = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


# -- the seam ----------------------------------------------------------------------------


def store_blob(repo: GitRepo, path: str, data: bytes | memoryview) -> list[TreeEntry]:
    """Put one result file's bytes into git; the tree entries that name it in the record
    (one blob at `path`, or its chunks at chunks/<path>/... when it is big)."""
    from gitcache.store import chunk_entries

    stored = repo.write_buffer(data)
    if stored.chunks is None:
        return [TreeEntry(path, stored.oid, MODE_FILE)]
    return chunk_entries(path, stored.chunks)


def store_file(repo: GitRepo, source: Path) -> StoredFile:
    """Put one worktree file into git in one pass, whole or in chunks (objects/stream.py)."""
    return repo.write_blob_file(source)


# -- encoding ------------------------------------------------------------------------------


@dataclass
class Encoded:
    kind: str  # "json" or "pickle"
    data: bytes
    arrays: dict[str, Any] = field(default_factory=dict)  # name -> numpy array


def encode(value: Any, allow_pickle: bool) -> Encoded:
    """The value's stored form (raises ResultError when it has none)."""
    from pydantic_core import PydanticSerializationError

    arrays: dict[str, Any] = {}
    try:
        document = _to_json(value, "", arrays)
        return Encoded("json", json.dumps(document, ensure_ascii=False).encode(), arrays)
    except (PydanticSerializationError, TypeError, ValueError, RecursionError) as exc:
        if not allow_pickle:
            # RecursionError: one Python call per level or two, and it has no useful text
            why = "it is nested too deeply" if isinstance(exc, RecursionError) else exc
            raise ResultError(
                f"the result ({type(value).__name__}) cannot be stored as JSON or .npy: {why}",
                hint="return JSON values, pydantic models, dataclasses or numpy arrays, "
                "or declare the step with allow_pickle=True (or store=False)",
            ) from None
    import pickle

    try:
        return Encoded("pickle", pickle.dumps(value, protocol=5))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise ResultError(f"the result cannot be pickled either: {exc}") from None


def _to_json(value: Any, path: str, arrays: dict[str, Any]) -> Any:
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.dtype.hasobject:
            raise TypeError("a numpy array of Python objects needs pickle")
        name = path or "value"
        arrays[name] = value
        return {"$npy": name}
    if "pandas" in sys.modules:
        from gitcache.python import frames

        if frames.is_pandas(value):
            return frames.encode(value, path or "value", arrays)
    if isinstance(value, dict):
        return {
            _escape(str(k)): _to_json(v, _join(path, k, i, value), arrays)
            for i, (k, v) in enumerate(value.items())
        }
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [_to_json(v, _join(path, i, i, None), arrays) for i, v in enumerate(value)]
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def _escape(key: str) -> str:
    return "$" + key if key.startswith("$") else key


def _join(path: str, key: Any, index: int, mapping: dict[Any, Any] | None) -> str:
    text = str(key)
    part = text if _NAME.match(text) and text not in (".", "..") else f"_{index}"
    return f"{path}/{part}" if path else part


def write(repo: GitRepo, encoded: Encoded) -> list[TreeEntry]:
    """The result's tree entries, every blob written through the seam."""
    if encoded.kind == "pickle":
        return store_blob(repo, RESULT_PICKLE, encoded.data)
    entries = store_blob(repo, RESULT_JSON, encoded.data)
    if encoded.arrays:
        numpy = sys.modules["numpy"]
        for name, array in encoded.arrays.items():
            sink = _NpySink(array.nbytes)
            numpy.save(sink, array, allow_pickle=False)
            entries += store_blob(repo, f"{RESULT_DIR}{name}.npy", sink.view())
    return entries


class _NpySink:
    """What np.save writes to: its header, then the array's bytes, copied once into
    one buffer of the file's size (a BytesIO would grow by copying what it holds)."""

    def __init__(self, nbytes: int) -> None:
        self._nbytes = nbytes
        self._buffer: bytearray | None = None
        self._end = 0

    def write(self, data: bytes | memoryview) -> int:
        piece = memoryview(data).cast("B")
        if self._buffer is None:  # the header comes first, in one write
            self._buffer = bytearray(len(piece) + self._nbytes)
        end = self._end + len(piece)
        if end > len(self._buffer):  # more than announced: grow (never for numpy's save)
            self._buffer.extend(bytes(end - len(self._buffer)))
        self._buffer[self._end : end] = piece
        self._end = end
        return len(piece)

    def view(self) -> memoryview:
        return memoryview(self._buffer if self._buffer is not None else b"")[: self._end]


# -- decoding --------------------------------------------------------------------------------


# A record's file by its path in the record's tree (None: not there).
Reader = Callable[[str], "bytes | bytearray | None"]


def commit_reader(repo: GitRepo, commit: str, where: str) -> Reader:
    """A result file of record `commit`: its blob (one read), else its chunks copied
    into one buffer, each checked against its id (a bytearray: a big array is viewed
    in it, not copied)."""

    def read(path: str) -> bytes | bytearray | None:
        data = repo.read_commit_file(commit, path)
        if data is not None:
            return data
        from gitcache.errors import UnsafeRecord
        from gitcache.store import read_file_into

        try:
            return read_file_into(repo, commit, path)
        except UnsafeRecord as exc:
            raise ResultError(f"{where}: {exc.message}") from None

    return read


def load(read: Reader, kind: str, trusted: bool, where: str) -> tuple[Any, bool]:
    """The stored value (before validation) and whether it came from a pickle."""
    if kind == "pickle":
        if not trusted:
            raise ResultError(
                f"{where} holds a pickled result that this clone did not write",
                hint="trust it with gitcache.trust_record(...) if you trust where it came from",
            )
        data = read(RESULT_PICKLE)
        if data is None:
            raise ResultError(f"{where} has no {RESULT_PICKLE}")
        import pickle

        return pickle.loads(data), True  # written here, or trusted by the user
    data = read(RESULT_JSON)
    if data is None:
        raise ResultError(f"{where} has no {RESULT_JSON}")
    deep = ResultError(f"{where}: {RESULT_JSON} is nested too deeply to read")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ResultError(f"{where}: {RESULT_JSON} is not JSON: {exc}") from None
    except RecursionError:  # a fetched one can nest deeper than any parser goes
        raise deep from None
    try:
        return _from_json(document, lambda name: _load_array(read, name, where), where), False
    except RecursionError:
        raise deep from None


def reload(encoded: Encoded) -> Any:
    """What a later call will load from this stored form (before validation), the arrays
    being the very ones stored: JSON has no tuples and only string keys, so a value
    returned under a loose hint (`Any`, `dict`) comes back otherwise, and the first call
    must give what every later one gives."""
    assert encoded.kind == "json"
    return _from_json(json.loads(encoded.data), encoded.arrays.__getitem__, "the result")


def _from_json(value: Any, array: Callable[[str], Any], where: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$npy"} and isinstance(value["$npy"], str):
            return array(value["$npy"])
        if set(value) == {"$pandas"}:
            from gitcache.python import frames

            return frames.decode(value["$pandas"], array, where)
        return {
            (k[1:] if k.startswith("$") else k): _from_json(v, array, where)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_from_json(v, array, where) for v in value]
    return value


def _load_array(read: Reader, name: str, where: str) -> Any:
    parts = name.split("/")
    if not name or any(not _NAME.match(p) or p in (".", "..") for p in parts):
        raise ResultError(f"{where}: bad array name {name!r} in {RESULT_JSON}")
    path = f"{RESULT_DIR}{name}.npy"
    data = read(path)
    if data is None:
        raise ResultError(f"{where}: {path} is missing")
    try:
        if isinstance(data, bytearray):  # from chunks: viewed where it was copied to
            return _npy_view(data)
        import numpy

        return numpy.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise ResultError(f"{where}: {path}: {exc}") from None


def _npy_view(data: bytearray) -> Any:
    """The array an .npy file holds, as a view of `data` (np.load would copy it again):
    what `np.load(..., allow_pickle=False)` accepts, nothing else."""
    import numpy
    from numpy.lib import format as npy

    head = io.BytesIO(bytes(data[: 1 << 16]))  # the header (numpy caps it far below)
    version = npy.read_magic(head)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(head)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(head)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError("object arrays cannot be loaded without pickle")
    count = 1
    for n in shape:
        count *= n
    offset = head.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(
            f"holds {len(data) - offset} bytes of data, its header says {count * dtype.itemsize}"
        )
    flat = numpy.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


# -- which pickles this clone trusts ------------------------------------------------------


def trusted_pickles(state_dir: Path) -> set[str]:
    try:
        return set((state_dir / TRUSTED_FILE).read_text().split())
    except OSError:
        return set()


def trust_pickle(state_dir: Path, commit: str) -> None:
    """Remember that this clone may unpickle the result of record `commit`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / TRUSTED_FILE, "a") as handle:
        handle.write(commit + "\n")
        handle.flush()
        os.fsync(handle.fileno())
