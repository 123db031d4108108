"""sweeps.py alone: labels, item ids, value matching, selectors."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from gitcache.params import encode
from gitcache.stepnames import ref_component_problem
from gitcache.sweeps import (
    encoded_label,
    item_id,
    label,
    same_key,
    split_target,
    value_matches,
)

SCALARS = st.one_of(
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(), st.booleans()
)


def test_labels() -> None:
    assert label("train", {"lr": 0.1, "seed": 1}) == "train[lr=0.1,seed=1]"
    assert label("train", {"opt": "adam", "on": True}) == 'train[opt="adam",on=true]'
    assert label("t", {"d": date(2024, 1, 2)}) == "t[d=2024-01-02]"
    assert label("thumbs", {"item": "images/a b.png"}) == "thumbs[images/a b.png]"
    assert label("plain", None) == "plain"


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), SCALARS))
def test_a_records_item_gives_the_same_label_and_id(values: dict[str, object]) -> None:
    stored = encode(values)  # as record.json holds it
    if values:
        assert encoded_label("s", stored) == label("s", values)
    assert item_id(stored) == item_id(values)
    assert len(item_id(values)) == 16 and ref_component_problem(item_id(values)) is None


def test_same_values() -> None:
    assert same_key(1) == same_key(1.0)
    assert same_key(1) != same_key(True)
    assert same_key(1) != same_key("1")


def test_command_line_values_name_item_values() -> None:
    assert value_matches(0.1, "0.1") and value_matches(0.1, "1e-1")
    assert value_matches("adam", "adam") and value_matches("adam", '"adam"')
    assert value_matches(True, "true") and not value_matches(1, "true")
    assert value_matches(date(2024, 1, 2), "2024-01-02")
    assert not value_matches(0.1, "0.2")


def test_split_target() -> None:
    assert split_target("train[lr=0.1]") == ("train", "lr=0.1")
    assert split_target("thumbs[a[1].png]") == ("thumbs", "a[1].png")
    assert split_target("train") == ("train", None)
