"""Text from records, made safe to print on a terminal."""

from __future__ import annotations

# C0 controls but tab and newline, DEL and the C1 controls: what a terminal may act on.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10)}


def printable(text: str) -> str:
    """`text` with its terminal controls written as `\\x1b`: what a record says (a fetched
    one may say anything) is shown, never acted on by the terminal."""
    return text.translate(_CONTROLS)
