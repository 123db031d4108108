"""Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 (docs/format.md)."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Bytes that are equal exactly when the JSON values are equal (NaN/Infinity refused)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
