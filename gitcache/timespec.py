"""Points and spans of time on the command line: `--since`, `--older-than`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from gitcache.errors import ConfigError

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?(?:\s+ago)?\s*$")


def parse_age(text: str, option: str) -> float:
    """`30d`, `12h`, `2 weeks`, `90 minutes ago` -> seconds."""
    match = _AGE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ConfigError(
            f"{option} {text!r}: expected an age like 30d, 12h, 45m, 2w or '3 days ago'"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_when(text: str, option: str, now: datetime | None = None) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise), or an age before now."""
    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            seconds = parse_age(text, option)
        except ConfigError:
            raise ConfigError(
                f"{option} {text!r}: expected a date (2026-01-31, 2026-01-31T12:00) "
                "or an age (30d, 12h, '2 weeks ago')"
            ) from None
        return before(now, seconds)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def before(now: datetime, seconds: float) -> datetime:
    """The moment an age before `now`; an age beyond the calendar gives its first moment."""
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:  # `99999999999d`: earlier than year 1, the same for any record
        return datetime.min.replace(tzinfo=UTC)


def record_time(started_at: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
