"""Normalize a shell command so that comments and formatting do not change its signature.

Outside quotes, comments are dropped and runs of blanks become one space; blank
lines go, line continuations join lines. Newlines stay (they separate commands),
and quoted text and here-document bodies are kept byte for byte.
"""

from __future__ import annotations

import re

_SEPARATORS = frozenset(" \t;&|()<>")
_HEREDOC = re.compile(r"(?<!<)<<(?!<)(-?)[ \t]*(['\"]?)([A-Za-z0-9_.-]+)\2")


class _Line:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.space = False

    def emit(self, text: str) -> None:
        if self.space and self.parts:
            self.parts.append(" ")
        self.space = False
        self.parts.append(text)

    def text(self) -> str:
        return "".join(self.parts)


def normalize_command(text: str) -> str:
    out: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    line = _Line()
    quote: str | None = None
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        j = 0
        continued = False
        while j < len(raw):
            ch = raw[j]
            if quote is not None:
                line.parts.append(ch)
                if ch == "\\" and quote == '"' and j + 1 < len(raw):
                    line.parts.append(raw[j + 1])
                    j += 1
                elif ch == quote:
                    quote = None
            elif ch in " \t":
                line.space = True
            elif ch == "#" and (not line.parts or line.space or line.parts[-1][-1] in _SEPARATORS):
                break  # a comment runs to the end of the line
            elif ch == "\\":
                if j + 1 == len(raw):  # line continuation: join with the next line
                    line.space = continued = True
                    break
                line.emit(raw[j : j + 2])
                j += 1
            else:
                if ch in "'\"":
                    quote = ch
                line.emit(ch)
            j += 1
        if quote is not None:
            line.parts.append("\n")  # newlines inside quotes are data
            continue
        if continued:
            continue
        current = line.text().strip()
        line = _Line()
        if not current:
            continue
        out.append(current)
        for match in _HEREDOC.finditer(current):
            # Here-document bodies are data: keep them verbatim up to the delimiter.
            strip_tabs, delimiter = match.group(1) == "-", match.group(3)
            while i < len(lines):
                body = lines[i]
                i += 1
                out.append(body)
                if (body.lstrip("\t") if strip_tabs else body) == delimiter:
                    break
    if quote is not None and line.parts:
        out.append(line.text())
    return "\n".join(out)
