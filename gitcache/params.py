"""Parameter values: what TOML may give, checked once, and their canonical JSON form.

TOML values are JSON values with two exceptions (docs/format.md, "Parameter values"):

- the floats `nan`, `inf` and `-inf` have no canonical JSON form (they would all
  become `null`, one signature for three values): refused, in `[params]` at any depth
  and in `-p`;
- the four date and time types are kept, and encoded in the signature as one-key
  objects whose key names the TOML type, so `2024-01-01` never shares a signature
  with the string `"2024-01-01"`, nor a local date-time with an offset one. A table
  parameter of that exact shape would be ambiguous, so it is refused.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import Any, Final

from gitcache.errors import ConfigError

DateTime = date | time  # datetime is a date
TAGS: Final = ("$offset-date-time", "$local-date-time", "$local-date", "$local-time")


def toml_type(value: Any) -> str:
    """The TOML type of a parameter value, as the TOML specification names it."""
    if isinstance(value, datetime):
        return "local date-time" if value.tzinfo is None else "offset date-time"
    if isinstance(value, date):
        return "local date"
    if isinstance(value, time):
        return "local time"
    names = {bool: "boolean", int: "integer", float: "float", str: "string"}
    names |= {list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


MAX_DEPTH: Final = 64  # arrays and tables in arrays and tables: deeper is refused


def problem(value: Any) -> tuple[str, str] | None:
    """(key path below the value, what is wrong) for the first value gitcache refuses."""
    if nesting(value, MAX_DEPTH) > MAX_DEPTH:  # every reader of the document (its signature, a
        # record's JSON, pydantic) recurses once or more per level, and gives up past ~300
        return "", f"nested more than {MAX_DEPTH} arrays or tables deep"
    return _problem(value)


def nesting(value: Any, limit: int) -> int:
    """How many lists and dicts deep `value` goes (without recursion), counted up to
    one past `limit`."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth + 1)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _problem(value: Any) -> tuple[str, str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "", f"{value} is not allowed (NaN and infinities have no canonical JSON form)"
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(f"[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in TAGS:
            key = next(iter(value))
            return "", f"a table whose only key is {key!r} is reserved (it encodes TOML dates)"
        items = [(f".{k}", v) for k, v in value.items()]
    else:
        return None
    for where, item in items:
        found = _problem(item)
        if found is not None:
            return where + found[0], found[1]
    return None


RESERVED: Final = ("inputs", "outputs")


def check_params(params: dict[str, Any], label: str) -> None:
    """ConfigError naming the file and key path of the first refused value in [params]."""
    for name, value in params.items():
        if name in RESERVED:  # `{inputs}` is always the step's inputs: never this value
            raise ConfigError(
                f"{label}: params.{name}: the name is reserved ({{{name}}} is the step's "
                f"{name}); rename the parameter"
            )
        found = problem(value)
        if found is not None:
            raise ConfigError(f"{label}: params.{name}{found[0]}: {found[1]}")


def encode(value: Any) -> Any:
    """The value as it enters the canonical JSON document (dates tagged, the rest as is)."""
    if isinstance(value, date | time):
        return {_tag(value): value.isoformat()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def _tag(value: DateTime) -> str:
    return "$" + toml_type(value).replace(" ", "-")


def decoded_text(value: Any) -> str | None:
    """The ISO text of an encoded date or time (as `encode` gives it), else None."""
    if isinstance(value, dict) and len(value) == 1:
        key, text = next(iter(value.items()))
        if key in TAGS and isinstance(text, str):
            return text
    return None


def decode(value: Any) -> Any:
    """The inverse of `encode` for a scalar: a tagged date or time back to its value."""
    text = decoded_text(value)
    if text is None:
        return value
    tag = next(iter(value))
    if tag == "$local-time":
        return time.fromisoformat(text)
    if tag == "$local-date":
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)
