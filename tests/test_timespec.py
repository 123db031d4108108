from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitcache.errors import ConfigError
from gitcache.timespec import parse_age, parse_when


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("45m", 2700),
        ("2 weeks", 14 * 86400),
        ("3 days ago", 3 * 86400),
        ("90s", 90),
    ],
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text, "--older-than") == seconds


def test_when_dates_and_ages() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when("2026-01-31", "--since") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_when("2d", "--since", now) == datetime(2026, 2, 27, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "3 fortnights", "", "-1d"])
def test_bad_ages(text: str) -> None:
    with pytest.raises(ConfigError, match="--older-than"):
        parse_age(text, "--older-than")


@pytest.mark.parametrize("text", ["99999999999d", "1000000000000d", "9" * 400 + " days ago"])
def test_an_age_beyond_the_calendar_is_its_first_moment(text: str) -> None:
    assert parse_when(text, "--since") == datetime.min.replace(tzinfo=UTC)
