"""The quick rule for plain record paths never lets through what the full checks refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitcache.record import _PLAIN_PATH, _check_any_path, check_relative_path

# Characters that matter to the checks: separators, dots, blanks, case, NUL, backslash,
# non-ASCII (one that casefolds to two characters), a lone surrogate (not UTF-8).
ALPHABET = ["a", "G", "i", "T", "t", ".", "/", " ", "-", "_", "\\", "\0", "\n", "é", "İ", "\udcff"]


@given(st.lists(st.sampled_from(ALPHABET), max_size=12).map("".join))
def test_quick_rule_implies_full_rule(path: str) -> None:
    if _PLAIN_PATH.fullmatch(path):
        assert _check_any_path(path) == path
    try:
        full = _check_any_path(path)
    except ValueError:
        with pytest.raises(ValueError):
            check_relative_path(path)
    else:
        assert check_relative_path(path) == full


@pytest.mark.parametrize(
    "path", ["out/d00/f0001.txt", "a b/c-d_e+f=g@h~i%j,k.txt", "x.", "-x", "a/b.tar.gz"]
)
def test_plain_paths_take_the_quick_rule(path: str) -> None:
    assert _PLAIN_PATH.fullmatch(path)


@pytest.mark.parametrize(
    "path", [".git", "a/.GIT", "a/.git.", "a/./b", "../a", "a//b", "/a", "a/", "", "a\\b", "a\0"]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        check_relative_path(path)
