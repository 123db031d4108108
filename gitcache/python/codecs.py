"""Argument fingerprints: the canonical JSON value of each validated argument.

A fingerprint is what a step's signature holds for an argument (docs/format.md,
"Python steps"). Values the type hint has already validated and coerced (pydantic)
are encoded by their runtime type:

| value | fingerprint |
| --- | --- |
| None, bool, int, str | itself (so `1`, `1.0` and `True` differ) |
| float | itself; NaN and infinities as `{"$float": "nan"}` |
| list | a list of fingerprints |
| tuple, set, frozenset | `{"$tuple": [...]}`, `{"$set": [...]}` (sorted by canonical bytes) |
| dict | an object (keys starting with `$` get one more `$`); other keys: `{"$dict": [[k, v]]}` |
| bytes | `{"$bytes": hex}` |
| pydantic model, dataclass | `{"$model"/"$dataclass": class, "value": {field: fingerprint}}` |
| enum member | `{"$enum": class, "value": fingerprint of its value}` |
| `gitcache.File` | `{"$file": blob id}` (content only: never the path or mtime) |
| numpy array | `{"$ndarray": {"dtype", "shape", "blake3"}}`: BLAKE3 of the C-order bytes |
| numpy scalar | `{"$npscalar": {"dtype", "hex"}}` |
| pandas Series, DataFrame, Index | `{"$pandas": ...}`: names, dtypes and each column as an array |
| a task of another step | `{"$task": its signature}` |
| date, time, UUID, Decimal, Path... | `{"$json": [type, pydantic's JSON of it]}` |
| anything else | an error naming the argument; with `allow_pickle=True`, `{"$pickle": BLAKE3}` |

`class` is where the class is defined (`file:qualname` for the repository's own
classes, as code keys are; `module.qualname` otherwise). A pickled value's objects'
classes are noted in `Fingerprinter.pickled`: the signer adds their code, which the
bytes do not hold. numpy and pandas are
never imported here: a value is recognized as theirs only if its module is.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from gitcache.canonical import canonical_json
from gitcache.params import nesting
from gitcache.python.errors import ArgumentError
from gitcache.python.files import File

# Buffers larger than this are hashed with BLAKE3's threads.
_THREADED_BYTES: Final = 1 << 20


def hash_buffer(data: Any) -> str:
    """BLAKE3 (hex) of a buffer, threaded for large ones."""
    size = memoryview(data).nbytes
    threads = blake3.blake3.AUTO if size >= _THREADED_BYTES else 1
    return blake3.blake3(data, max_threads=threads).hexdigest()


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


MAX_NESTING = 200  # levels of lists and dicts in an argument's fingerprint


@dataclass
class Fingerprinter:
    """Fingerprints of one call's arguments (see the module docstring)."""

    blob_of: Callable[[Path], str]  # a file's git blob id (through the stat cache)
    class_key: Callable[[type], str] = class_path
    allow_pickle: bool = False
    files: dict[str, str] = field(default_factory=dict)  # argument path -> file path
    # Classes of the objects a pickled argument holds: their code is not in the bytes.
    pickled: list[type] = field(default_factory=list)

    def __call__(self, value: Any, where: str) -> Any:
        too_deep = ArgumentError(
            f"argument {where}: nested more than {MAX_NESTING} levels deep, too deep to put "
            "in a signature"
        )
        try:
            encoded = self._encode(value, where)
        except RecursionError:  # one Python call per level or two
            raise too_deep from None
        # What reads the signed document and the record (pydantic's serializer gives up
        # past ~250 levels) goes deep once per level too.
        if nesting(encoded, MAX_NESTING) > MAX_NESTING:
            raise too_deep
        return encoded

    def _encode(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return _text(value, where)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, enum.Enum):
            return self._enum(value, where)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and not _numpy_type(value):
            value = float(value)
            return value if math.isfinite(value) else {"$float": repr(value)}
        signature = getattr(value, "__gitcache_signature__", None)
        if signature is not None:
            return {"$task": signature()}
        if isinstance(value, File):
            return self._file(value, where)
        if isinstance(value, list):
            return [self._encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"$tuple": [self._encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, set | frozenset):
            items = [self._encode(v, f"{where}{{}}") for v in value]
            return {"$set": sorted(items, key=canonical_json)}
        if isinstance(value, dict):
            return self._dict(value, where)
        if isinstance(value, bytes | bytearray):
            return {"$bytes": bytes(value).hex()}
        module = type(value).__module__.split(".")[0]
        if module == "numpy":
            return self._numpy(value, where)
        if module == "pandas":
            return self._pandas(value, where)
        if _is_model(value):
            fields = type(value).model_fields
            return {
                "$model": self.class_key(type(value)),
                "value": {n: self._encode(getattr(value, n), f"{where}.{n}") for n in fields},
            }
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                "$dataclass": self.class_key(type(value)),
                "value": {
                    f.name: self._encode(getattr(value, f.name), f"{where}.{f.name}")
                    for f in dataclasses.fields(value)
                },
            }
        if hasattr(value, "_fields") and isinstance(value, tuple):  # a namedtuple
            return {
                "$namedtuple": self.class_key(type(value)),
                "value": [self._encode(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        return self._other(value, where)

    def _enum(self, value: enum.Enum, where: str) -> Any:
        return {
            "$enum": self.class_key(type(value)),
            "value": self._encode(value.value, f"{where}.value"),
        }

    def _file(self, value: File, where: str) -> Any:
        path = value.path
        if not path.is_file():
            what = (
                "is a directory, not a file"
                if path.is_dir()
                else "is not a regular file"
                if path.exists()
                else "does not exist"
            )
            raise ArgumentError(f"argument {where}: file {path} {what}")
        self.files[where] = str(path)
        return {"$file": self.blob_of(path)}

    def _dict(self, value: dict[Any, Any], where: str) -> Any:
        if all(isinstance(k, str) for k in value):
            return {
                _marked(_text(k, f"{where} key")): self._encode(v, f"{where}[{k!r}]")
                for k, v in value.items()
            }
        pairs = [
            [self._encode(k, f"{where} key"), self._encode(v, f"{where}[{k!r}]")]
            for k, v in value.items()
        ]
        return {"$dict": sorted(pairs, key=lambda p: canonical_json(p[0]))}

    def _numpy(self, value: Any, where: str) -> Any:
        np = sys.modules["numpy"]
        if isinstance(value, np.ndarray):
            return {"$ndarray": array_fingerprint(value, where, self.allow_pickle)}
        if isinstance(value, np.generic):
            array = np.asarray(value)
            scalar = {"dtype": _dtype_name(array.dtype), "hex": _native(array).tobytes().hex()}
            return {"$npscalar": scalar}
        return self._other(value, where)

    def _pandas(self, value: Any, where: str) -> Any:
        pd = sys.modules["pandas"]
        if isinstance(value, pd.DataFrame):
            columns = [
                [
                    self._encode(name, f"{where}.columns"),
                    self._series_values(value.iloc[:, i], f"{where}[{name!r}]"),
                ]
                for i, name in enumerate(value.columns)
            ]
            return {
                "$pandas": {
                    "kind": "DataFrame",
                    "index": self._index(value.index, where),
                    "columns": columns,
                }
            }
        if isinstance(value, pd.Series):
            return {
                "$pandas": {
                    "kind": "Series",
                    "name": self._encode(value.name, f"{where}.name"),
                    "index": self._index(value.index, where),
                    "values": self._series_values(value, where),
                }
            }
        if isinstance(value, pd.Index):
            return {"$pandas": {"kind": "Index", "index": self._index(value, where)}}
        return self._other(value, where)

    def _index(self, index: Any, where: str) -> Any:
        names = [self._encode(n, f"{where}.index.names") for n in index.names]
        return {"names": names, "values": self._series_values(index, where)}

    def _series_values(self, series: Any, where: str) -> Any:
        dtype = str(series.dtype)
        array = series.to_numpy()
        if array.dtype.hasobject:  # strings, categories, mixed: value by value
            return {"dtype": dtype, "list": [self._encode(v, where) for v in array.tolist()]}
        return {"dtype": dtype, "array": array_fingerprint(array, where, False)}

    def _other(self, value: Any, where: str) -> Any:
        from pydantic_core import PydanticSerializationError, to_jsonable_python

        kind = type(value)
        if kind.__module__ in ("datetime", "uuid", "decimal", "pathlib", "ipaddress"):
            try:
                return {"$json": [class_path(kind), to_jsonable_python(value)]}
            except PydanticSerializationError:
                pass
        if self.allow_pickle:
            import io
            import pickle

            seen = self.pickled

            class Pickler(pickle.Pickler):
                # Called for every object but the plain built-in ones; the bytes are
                # those of pickle.dumps.
                def reducer_override(self, obj: Any) -> Any:
                    seen.append(obj if isinstance(obj, type) else type(obj))
                    return NotImplemented

            buffer = io.BytesIO()
            try:
                Pickler(buffer, protocol=5).dump(value)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise ArgumentError(f"argument {where}: cannot pickle it: {exc}") from None
            return {"$pickle": hash_buffer(buffer.getbuffer())}
        raise ArgumentError(
            f"argument {where}: a value of type {class_path(kind)} cannot be part of a signature",
            hint="use JSON values, pydantic models, dataclasses, numpy arrays or gitcache.File, "
            "or allow_pickle=True",
        )


def _marked(key: str) -> str:
    """A string key as it goes into the fingerprint: `$` keys get one more `$`."""
    return "$" + key if key.startswith("$") else key


def _text(value: str, where: str) -> str:
    """A string that UTF-8 can encode (a lone surrogate, as `os.fsdecode` gives for a
    file name that is not UTF-8, cannot be part of a signature): ArgumentError."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ArgumentError(
                f"argument {where}: a string that is not valid Unicode ({exc.reason} at "
                f"position {exc.start}) cannot be part of a signature",
                hint="pass the name as bytes (os.fsencode) or a gitcache.File",
            ) from None
    return value


def array_fingerprint(array: Any, where: str, allow_pickle: bool) -> dict[str, Any]:
    """dtype, shape and BLAKE3 of an array's C-order bytes (no strides: C and Fortran
    order with equal values hash equal; byte order is made native first)."""
    if array.dtype.hasobject:
        if not allow_pickle:
            raise ArgumentError(
                f"argument {where}: a numpy array of Python objects cannot be hashed without "
                "pickle",
                hint="use a numeric dtype, or allow_pickle=True",
            )
        import pickle

        return {
            "dtype": "object",
            "shape": list(array.shape),
            "pickle": hash_buffer(pickle.dumps(array.tolist(), protocol=5)),
        }
    native = _native(array)
    return {
        "dtype": _dtype_name(native.dtype),
        "shape": list(native.shape),
        "blake3": hash_buffer(native.reshape(-1).view("u1") if native.size else b""),
    }


def _native(array: Any) -> Any:
    """The array, C-contiguous, in native byte order (copied only when needed)."""
    if array.dtype.byteorder not in ("=", "|") and array.dtype.fields is None:
        array = array.astype(array.dtype.newbyteorder("="))
    # Not np.ascontiguousarray: it turns a 0-d array into a 1-d one.
    return array if array.flags.c_contiguous else array.copy(order="C")


def _dtype_name(dtype: Any) -> str:
    return str(dtype.descr) if dtype.fields is not None else str(dtype.str.lstrip("<>=|"))


def _numpy_type(value: Any) -> bool:
    return type(value).__module__ == "numpy"


def _is_model(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)
