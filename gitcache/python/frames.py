"""pandas results (DataFrame, Series, Index) stored without pickle (docs/format.md).

A pandas value in a result becomes, inside `result.json`, a `{"$pandas": ...}`
object that describes its shape: the kind, the index (a `RangeIndex` by its
start/stop/step, any other index or each level of a `MultiIndex` as a column), the
column labels (an index too), and each column as its dtype plus its values:

- a column with a numpy dtype (numbers, bool, `datetime64`, `timedelta64`) is one
  array stored as `result/<name>.npy` beside result.json, exactly like a numpy
  result (`{"$npy": "<name>"}` in the document);
- a column of strings (pandas' `str`/`string` dtypes, or `object` holding only `str`
  and missing values) is a JSON list, missing values as `null`.

Anything else (categoricals, nullable integer dtypes, time-zone aware timestamps,
`object` columns holding other Python objects, labels that are not JSON scalars) has
no such form: `encode` raises TypeError, and the step needs `allow_pickle=True`.

Reading back checks what a record from another clone could get wrong: the document's
shape, each array's dtype against the declared one, and every column's length against
the index's; pandas is imported only to rebuild a value that holds one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Final

from gitcache.python.errors import ResultError

KEY: Final = "$pandas"
_STRING_DTYPES: Final = frozenset({"str", "string", "object"})
_LABEL_TYPES: Final = (str, int, float, bool, type(None))


def is_pandas(value: Any) -> bool:
    """Whether the value is a pandas DataFrame, Series or Index (pandas never imported)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame | pd.Series | pd.Index)


def encode(value: Any, name: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """The `{"$pandas": ...}` document of a value; its arrays added to `arrays` under
    names starting with `name` (raises TypeError when the value has no such form)."""
    pd = sys.modules["pandas"]
    if isinstance(value, pd.DataFrame):
        if not value.columns.is_unique:
            raise TypeError("a DataFrame with duplicate column labels")
        doc: dict[str, Any] = {
            "kind": "DataFrame",
            "index": _index(value.index, f"{name}/index", arrays),
            "columns": _index(value.columns, f"{name}/columns", arrays),
            "data": [
                _column(value.iloc[:, i], f"{name}/c{i}", arrays) for i in range(value.shape[1])
            ],
        }
    elif isinstance(value, pd.Series):
        doc = {
            "kind": "Series",
            "name": _label(value.name),
            "index": _index(value.index, f"{name}/index", arrays),
            "values": _column(value, f"{name}/values", arrays),
        }
    else:
        doc = {"kind": "Index", "index": _index(value, name, arrays)}
    return {KEY: doc}


def _label(label: Any) -> Any:
    if not isinstance(label, _LABEL_TYPES):
        raise TypeError(f"pandas label {label!r} is not a string, number, bool or None")
    return label


def _index(index: Any, name: str, arrays: dict[str, Any]) -> dict[str, Any]:
    pd = sys.modules["pandas"]
    if isinstance(index, pd.RangeIndex):
        return {
            "range": [index.start, index.stop, index.step],
            "name": _label(index.name),
        }
    if isinstance(index, pd.MultiIndex):
        return {
            "names": [_label(n) for n in index.names],
            "levels": [
                _column(index.get_level_values(i), f"{name}{i}", arrays)
                for i in range(index.nlevels)
            ],
        }
    return {"name": _label(index.name), "values": _column(index, name, arrays)}


def _column(values: Any, name: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """One column (or index level): its dtype, and its values as an array or strings."""
    np = sys.modules["numpy"]
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        array = np.ascontiguousarray(values.to_numpy())
        arrays[name] = array
        return {"dtype": array.dtype.str, "array": {"$npy": name}}
    text = str(dtype)
    if text in _STRING_DTYPES:
        items = values.tolist()
        strings: list[str | None] = []
        for item in items:
            if isinstance(item, str):
                strings.append(item)
            elif item is None or (isinstance(item, float) and item != item):  # NaN
                strings.append(None)
            else:
                raise TypeError(f"a pandas column of dtype {text} holding a {type(item).__name__}")
        return {"dtype": text, "strings": strings}
    raise TypeError(f"a pandas column of dtype {text} has no stored form but pickle")


# -- reading ------------------------------------------------------------------------------------


def decode(doc: Any, load_array: Callable[[str], Any], where: str) -> Any:
    """The pandas value a `{"$pandas": ...}` document describes (ResultError if it is
    malformed); `load_array(name)` reads one of the record's arrays."""
    try:
        import pandas as pd
    except ImportError:
        raise ResultError(
            f"{where}: the result holds a pandas value and pandas is not installed"
        ) from None
    reader = _Reader(pd, load_array, where)
    try:
        return reader.value(doc)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ResultError(f"{where}: malformed pandas result in result.json: {exc!r}") from None


class _Reader:
    def __init__(self, pd: Any, load_array: Callable[[str], Any], where: str) -> None:
        self.pd = pd
        self.load_array = load_array
        self.where = where

    def value(self, doc: Any) -> Any:
        pd = self.pd
        kind = _field(doc, "kind", str)
        if kind == "DataFrame":
            index = self.index(doc["index"])
            columns = self.index(doc["columns"])
            data = _field(doc, "data", list)
            if len(data) != len(columns):
                raise ValueError(f"{len(columns)} column labels but {len(data)} columns")
            frame = pd.DataFrame(
                {i: self.column(c, len(index)) for i, c in enumerate(data)}, index=index
            )
            frame.columns = columns
            return frame
        if kind == "Series":
            index = self.index(doc["index"])
            values = self.column(doc["values"], len(index))
            return pd.Series(values, index=index, name=_scalar(doc.get("name")), copy=False)
        if kind == "Index":
            return self.index(doc["index"])
        raise ValueError(f"unknown pandas kind {kind!r}")

    def index(self, doc: Any) -> Any:
        pd = self.pd
        if not isinstance(doc, dict):
            raise TypeError("an index is not an object")
        if "range" in doc:
            start, stop, step = (_int(v) for v in _field(doc, "range", list))
            return pd.RangeIndex(start, stop, step, name=_scalar(doc.get("name")))
        if "levels" in doc:
            names = [_scalar(n) for n in _field(doc, "names", list)]
            levels = [self.column(c, None) for c in _field(doc, "levels", list)]
            if len(names) != len(levels) or not levels:
                raise ValueError("a MultiIndex's names and levels differ in number")
            return pd.MultiIndex.from_arrays(levels, names=names)
        values = self.column(doc["values"], None)
        return pd.Index(values, name=_scalar(doc.get("name")), copy=False)

    def column(self, doc: Any, length: int | None) -> Any:
        dtype = _field(doc, "dtype", str)
        if "array" in doc:
            ref = doc["array"]
            if not isinstance(ref, dict) or set(ref) != {"$npy"}:
                raise TypeError("a column's array is not a {$npy: name} reference")
            array = self.load_array(ref["$npy"])
            if array.dtype.str != dtype or array.ndim != 1:
                raise ValueError(
                    f"array {ref['$npy']!r} is {array.dtype.str} of {array.ndim} dimensions, "
                    f"not the 1-dimensional {dtype} result.json declares"
                )
            values: Any = array
        else:
            if dtype not in _STRING_DTYPES:
                raise ValueError(f"strings declared with dtype {dtype!r}")
            strings = _field(doc, "strings", list)
            if not all(s is None or isinstance(s, str) for s in strings):
                raise TypeError("a string column holds something else than strings")
            values = self.pd.array(strings, dtype=dtype)
        if length is not None and len(values) != length:
            raise ValueError(f"a column of {len(values)} values for an index of {length}")
        return values


def _field(doc: Any, name: str, kind: type) -> Any:
    if not isinstance(doc, dict):
        raise TypeError(f"expected an object holding {name!r}")
    value = doc[name]
    if not isinstance(value, kind):
        raise TypeError(f"{name!r} is not a {kind.__name__}")
    return value


def _scalar(value: Any) -> Any:
    if not isinstance(value, _LABEL_TYPES):
        raise TypeError(f"label {value!r} is not a JSON scalar")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value
