"""Argument fingerprints: equal values give equal fingerprints, different ones differ."""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import BaseModel

from gitcache.canonical import canonical_json
from gitcache.python.codecs import MAX_NESTING, Fingerprinter
from gitcache.python.errors import ArgumentError
from gitcache.python.files import File
from gitcache.python.signing import Validator


def fingerprint(value: Any, allow_pickle: bool = False) -> bytes:
    fp = Fingerprinter(blob_of=lambda p: "blob:" + Path(p).read_text(), allow_pickle=allow_pickle)
    return canonical_json(fp(value, "x"))


def same(a: Any, b: Any) -> bool:
    """Equality that tells 1, 1.0 and True apart, and -0.0 from 0.0 (as a signature must)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
    ),
    max_leaves=8,
)


@given(json_values, json_values)
@settings(max_examples=300)
def test_json_values_equal_exactly_when_fingerprints_are(a: Any, b: Any) -> None:
    assert (fingerprint(a) == fingerprint(b)) == same(a, b)


@given(json_values)
def test_a_value_and_its_copy_have_one_fingerprint(a: Any) -> None:
    import copy

    assert fingerprint(a) == fingerprint(copy.deepcopy(a))


def test_one_one_point_oh_and_true_differ_where_the_hint_says_so() -> None:
    assert len({fingerprint(1), fingerprint(1.0), fingerprint(True)}) == 3
    as_float = Validator(float, "x")
    assert fingerprint(as_float(1)) == fingerprint(as_float(1.0))  # the hint says float
    either = Validator(int | float | bool, "x")
    assert len({fingerprint(either(v)) for v in (1, 1.0, True)}) == 3


def test_dict_keys_that_look_like_markers_do_not_collide() -> None:
    assert fingerprint({"$tuple": [1, 2]}) != fingerprint((1, 2))
    assert fingerprint({1: "a"}) != fingerprint({"1": "a"})


# -- numpy ---------------------------------------------------------------------------------

arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.int32, np.uint8, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)


@given(arrays, arrays)
@settings(max_examples=200)
def test_arrays_equal_exactly_when_fingerprints_are(a: np.ndarray, b: np.ndarray) -> None:
    equal = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert (fingerprint(a) == fingerprint(b)) == equal


@given(arrays)
def test_c_and_fortran_order_and_byte_order_do_not_count(a: np.ndarray) -> None:
    assert fingerprint(a.copy(order="F")) == fingerprint(a)
    assert fingerprint(a.T.copy().T) == fingerprint(a)
    swapped = a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<"))
    assert fingerprint(swapped) == fingerprint(a)


def test_a_large_array_is_hashed_over_its_buffer() -> None:
    big = np.arange(1_000_000, dtype=np.float64)
    value = Fingerprinter(blob_of=str)(big, "x")
    assert value["$ndarray"]["shape"] == [1_000_000]
    changed = big.copy()
    changed[-1] += 1
    assert fingerprint(changed) != fingerprint(big)


def test_object_arrays_need_pickle() -> None:
    with pytest.raises(ArgumentError, match="argument x: a numpy array of Python objects"):
        fingerprint(np.array([object()], dtype=object))


# -- pandas --------------------------------------------------------------------------------


@given(
    st.lists(st.floats(allow_nan=False), min_size=1, max_size=5),
    st.lists(st.text(max_size=3), min_size=1, max_size=5),
)
def test_dataframes_equal_exactly_when_fingerprints_are(xs: list[float], names: list[str]) -> None:
    n = min(len(xs), len(names))
    frame = pd.DataFrame({"x": xs[:n], "name": names[:n]})
    assert fingerprint(frame) == fingerprint(frame.copy())
    other = frame.copy()
    other.loc[0, "x"] = xs[0] + 1 if math.isfinite(xs[0] + 1) and xs[0] + 1 != xs[0] else 0.5
    if not same(float(other.loc[0, "x"]), float(frame.loc[0, "x"])):
        assert fingerprint(other) != fingerprint(frame)
    assert fingerprint(frame.rename(columns={"x": "y"})) != fingerprint(frame)
    assert fingerprint(frame["x"]) != fingerprint(frame["x"].rename("z"))


# -- models, dataclasses, enums, files ----------------------------------------------------------


class Params(BaseModel):
    rate: float
    tags: list[str] = []


class Other(BaseModel):
    rate: float
    tags: list[str] = []


@dataclasses.dataclass
class Box:
    width: int
    label: str


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@given(
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=2), max_size=2),
)
def test_models_equal_exactly_when_fingerprints_are(r1: float, r2: float, tags: list[str]) -> None:
    a, b = Params(rate=r1, tags=tags), Params(rate=r2, tags=tags)
    assert (fingerprint(a) == fingerprint(b)) == same(r1, r2)
    # the class counts: another model with the same fields differs
    assert fingerprint(Other(rate=r1, tags=tags)) != fingerprint(a)


@given(st.integers(), st.integers(), st.text(max_size=3))
def test_dataclasses_equal_exactly_when_fingerprints_are(w1: int, w2: int, label: str) -> None:
    assert (fingerprint(Box(w1, label)) == fingerprint(Box(w2, label))) == (w1 == w2)
    assert fingerprint(Box(w1, label)) != fingerprint({"width": w1, "label": label})


def test_enums_count_by_class_and_value() -> None:
    assert fingerprint(Color.RED) == fingerprint(Color(1))
    assert fingerprint(Color.RED) != fingerprint(Color.BLUE)
    assert fingerprint(Color.RED) != fingerprint(1)


@given(st.text(max_size=5), st.text(max_size=5))
def test_files_count_by_content_never_by_path(tmp_path_factory: Any, c1: str, c2: str) -> None:
    folder = tmp_path_factory.mktemp("files")
    (folder / "a.txt").write_text(c1)
    (folder / "b.txt").write_text(c2)
    same_content = fingerprint(File(folder / "a.txt")) == fingerprint(File(folder / "b.txt"))
    assert same_content == (c1 == c2)


def test_a_missing_file_is_an_error_naming_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"argument x: file .*nope.txt does not exist"):
        fingerprint(File(tmp_path / "nope.txt"))
    with pytest.raises(ArgumentError, match=r"argument x: file .* is a directory, not a file"):
        fingerprint(File(tmp_path))


class Opaque:
    def __init__(self, v: int) -> None:
        self.v = v


def test_other_types_are_refused_unless_pickle_is_allowed() -> None:
    with pytest.raises(ArgumentError, match=r"argument x: a value of type .*Opaque cannot be"):
        fingerprint(Opaque(1))
    with pytest.raises(ArgumentError, match=r"argument x\[0\]\.value"):
        fingerprint([_Holder(Opaque(1))])
    assert fingerprint(Opaque(1), allow_pickle=True) == fingerprint(Opaque(1), allow_pickle=True)
    assert fingerprint(Opaque(1), allow_pickle=True) != fingerprint(Opaque(2), allow_pickle=True)


@dataclasses.dataclass
class _Holder:
    value: Any


def _nested(depth: int, wrap: Any = list) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = wrap([value]) if wrap is not dict else {"k": value}
    return value


@pytest.mark.parametrize("wrap", [list, tuple, dict])
def test_an_argument_too_deep_to_sign_is_an_argument_error(wrap: Any) -> None:
    """Deeper than Python recursion goes (RecursionError before), or than what reads
    the signed document and the record goes (pydantic's serializer gives up past ~250
    levels: an internal error before): a clear ArgumentError naming the argument."""
    fp = Fingerprinter(blob_of=str)
    assert fp(_nested(60, wrap), "x")  # deep, and fine
    for depth in (MAX_NESTING + 1, 400, 5_000):
        with pytest.raises(ArgumentError, match=r"argument x: nested more than 200 levels"):
            fp(_nested(depth, wrap), "x")
