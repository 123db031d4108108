from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitcache.canonical import canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_round_trips(value: Any) -> None:
    assert json.loads(canonical_json(value)) == value


@given(st.dictionaries(st.text(), scalars, max_size=8))
def test_key_order_does_not_matter(mapping: dict[str, Any]) -> None:
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert canonical_json(mapping) == canonical_json(reversed_mapping)


@given(values)
def test_no_insignificant_whitespace_and_sorted(value: Any) -> None:
    text = canonical_json(value).decode()
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_utf8_not_escaped() -> None:
    assert canonical_json({"é": "ü"}) == '{"é":"ü"}'.encode()


def test_nan_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json(float("nan"))
