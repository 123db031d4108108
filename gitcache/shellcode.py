"""Normalize a shell command so that comments and formatting do not change its signature.

The rule: normalization removes only what the shell itself ignores, so the
normalized text always behaves exactly as the original (and two commands with the
same normalized text behave alike). What goes:

- comments: a `#` that starts a word, up to the end of its line;
- blanks: runs of spaces and tabs between words become one space; blanks at the
  start and end of a line, and blank lines, go;
- line continuations: a backslash-newline outside quotes is removed, joining the
  two lines *without* a blank, as the shell does (`a\\<newline>b` is `ab`).

Everything the shell treats as data is kept byte for byte: single-, double- and
`$'..'`-quoted text, escaped characters, `$(..)`, backquotes, `${..}`, `$((..))`,
`((..))`, and here-document bodies (every form: `<<X`, `<<-X`, `<<'X'`, `<<"X"`,
`<<\\X`, partly quoted words). When a construct cannot be classified with
certainty (a here-document or `case` inside `$(..)`, an unterminated quote), the
rest of the command is kept verbatim: a spurious re-run is acceptable, two
different commands sharing a signature is not.
"""

from __future__ import annotations

from typing import Final

BLANKS: Final = frozenset(" \t")
# Characters that end a word and start an operator: a `#` right after one starts a comment.
OPERATORS: Final = frozenset(";&|()<>")
_WORD_END: Final = BLANKS | OPERATORS | {"\n"}
# Words after which the rest is kept as written: an alias may expand to anything (even
# a here-document); after bash's `=~`, blanks inside the regex's parentheses are data.
_DOUBT_WORDS: Final = frozenset({"alias", "=~"})
_SPECIAL: Final = _WORD_END | frozenset("\\'\"`$")


class _Verbatim(Exception):
    """The rest of the command cannot be normalized safely: keep it as written."""


class _Normalizer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: list[str] = []
        self.parts: list[str] = []
        self.space = False  # a blank was seen since the last emitted text
        self.word_start = True  # the next character would start a word
        # Here-documents awaiting their bodies: (delimiter, strip tabs, delimiter quoted).
        self.heredocs: list[tuple[str, bool, bool]] = []

    # -- output ---------------------------------------------------------------------

    def emit(self, chunk: str) -> None:
        if self.space and self.parts:
            self.parts.append(" ")
        self.space = False
        self.parts.append(chunk)

    def end_line(self) -> None:
        line = "".join(self.parts)
        if line:
            self.lines.append(line)
        self.parts = []
        self.space = False
        self.word_start = True

    # -- the top level --------------------------------------------------------------

    def run(self) -> str:
        text = self.text
        try:
            while self.pos < len(text):
                self.step()
        except _Verbatim:
            self.emit(text[self.pos :])
        self.end_line()
        return "\n".join(self.lines)

    def step(self) -> None:
        text, i = self.text, self.pos
        ch = text[i]
        if ch == "\\":
            if text.startswith("\n", i + 1):
                self.pos = i + 2  # a continuation: gone, and the lines join without a blank
            else:
                self.emit(text[i : i + 2])
                self.pos = i + 2
                self.word_start = False
        elif ch in BLANKS:
            self.space = True
            self.word_start = True
            self.pos = i + 1
        elif ch == "\n":
            self.pos = i + 1
            self.end_line()
            self.read_bodies()
        elif ch == "#" and self.word_start:
            end = text.find("\n", i)
            self.pos = len(text) if end < 0 else end
        elif ch == "<" and text.startswith("<<<", i):  # a here-string (bash): not a here-doc
            self.emit("<<<")
            self.pos = i + 3
            self.word_start = True
        elif ch == "<" and text.startswith("<<", i):
            self.heredoc_operator()
        elif ch in "<>" and text.startswith("(", i + 1):
            # bash's process substitution `<(..)` is part of a word: kept as written.
            self.take(self.skip_parens(i + 2, depth=1, arithmetic=False))
        elif ch in OPERATORS:
            if ch == "(" and self.parts and not self.space and self.parts[-1][-1] in "@!+*?":
                raise _Verbatim  # bash's extended glob `@(a  b)`: its blanks are data
            if ch == "(" and self.word_start and text.startswith("((", i):
                self.take(self.skip_parens(i + 2, depth=2, arithmetic=True))
            else:
                self.emit(ch)
                self.pos = i + 1
                self.word_start = True
        else:
            end = self.skip_word_part(i)
            if self.word_start and text[i:end] in _DOUBT_WORDS:
                raise _Verbatim
            self.take(end)

    def take(self, end: int) -> None:
        """Emit text[pos:end] verbatim as (part of) a word."""
        self.emit(self.text[self.pos : end])
        self.pos = end
        self.word_start = False

    # -- quoted and nested text -----------------------------------------------------

    def skip_word_part(self, i: int) -> int:
        """End of the quoted or plain piece of a word that starts at i."""
        text = self.text
        ch = text[i]
        if ch == "'":
            return self.skip_single(i + 1)
        if ch == '"':
            return self.skip_double(i + 1)
        if ch == "`":
            return self.skip_backquote(i + 1)
        if ch == "$":
            nxt = text[i + 1 : i + 2]
            if nxt == "'":
                return self.skip_ansi(i + 2)
            if nxt == '"':
                return self.skip_double(i + 2)
            if nxt == "{":
                return self.skip_braces(i + 2)
            if nxt == "(":
                if text.startswith("((", i + 1):
                    return self.skip_parens(i + 3, depth=2, arithmetic=True)
                return self.skip_parens(i + 2, depth=1, arithmetic=False)
            return i + 1
        # A run of plain characters (a `#` inside a word is plain).
        i += 1
        while i < len(text) and text[i] not in _SPECIAL:
            i += 1
        return i

    def skip_single(self, i: int) -> int:
        end = self.text.find("'", i)
        if end < 0:
            raise _Verbatim
        return end + 1

    def skip_ansi(self, i: int) -> int:
        """`$'..'`. With a backslash inside, dash (no `$'..'`: `$` then a quote ending at
        the first `'`) and bash disagree on where it ends: kept verbatim to the end."""
        text = self.text
        while i < len(text):
            if text[i] == "\\":
                raise _Verbatim
            if text[i] == "'":
                return i + 1
            else:
                i += 1
        raise _Verbatim

    def skip_double(self, i: int) -> int:
        text = self.text
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
            elif ch == '"':
                return i + 1
            elif ch == "`":
                i = self.skip_backquote(i + 1)
            elif ch == "$" and text[i + 1 : i + 2] in ("(", "{"):
                i = self.skip_word_part(i)
            else:
                i += 1
        raise _Verbatim

    def skip_backquote(self, i: int) -> int:
        text = self.text
        while i < len(text):
            if text[i] == "\\":
                i += 2
            elif text[i] == "`":
                return i + 1
            else:
                i += 1
        raise _Verbatim

    def skip_braces(self, i: int) -> int:
        """`${...}`, with quotes and nested expansions inside."""
        text = self.text
        depth = 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
            elif ch in "'\"`$":
                i = self.skip_word_part(i)
            elif ch == "{":
                depth += 1
                i += 1
            elif ch == "}":
                depth -= 1
                i += 1
                if depth == 0:
                    return i
            else:
                i += 1
        raise _Verbatim

    def skip_parens(self, i: int, depth: int, arithmetic: bool) -> int:
        """`$(..)`, `$((..))` or `((..))`: the end of the balanced text.

        Here-documents and `case` patterns (whose `)` is unbalanced) inside a command
        substitution, and arithmetic spanning lines, are not followed: the rest of the
        command is then kept verbatim.
        """
        text = self.text
        word_start = True
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                word_start = False
                continue
            if ch in "'\"`" or (ch == "$" and not arithmetic):
                i = self.skip_word_part(i)
                word_start = False
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
            elif ch == "\n" and arithmetic:
                raise _Verbatim
            elif not arithmetic:
                if ch == "#" and word_start:
                    end = text.find("\n", i)
                    if end < 0:
                        raise _Verbatim
                    i = end
                    continue
                if text.startswith("<<", i) or (
                    word_start
                    and text.startswith("case", i)
                    and text[i + 4 : i + 5] in _WORD_END | {""}
                ):
                    raise _Verbatim
            word_start = ch in _WORD_END
            i += 1
        raise _Verbatim

    # -- here-documents -------------------------------------------------------------

    def heredoc_operator(self) -> None:
        """`<<WORD` or `<<-WORD`: emit it and queue the body (parsed before anything is emitted)."""
        text = self.text
        strip = text.startswith("<<-", self.pos)  # leading tabs of body lines go
        operator_end = self.pos + (3 if strip else 2)
        i = operator_end
        while i < len(text) and text[i] in BLANKS:
            i += 1
        start = i
        delimiter: list[str] = []
        quoted = False
        while i < len(text) and text[i] not in _WORD_END:
            ch = text[i]
            if ch == "\\":
                if text.startswith("\n", i + 1):
                    raise _Verbatim  # a continuation inside the delimiter: keep it all
                delimiter.append(text[i + 1 : i + 2])
                quoted = True
                i += 2
            elif ch in "'\"":
                end = text.find(ch, i + 1)
                if end < 0:
                    raise _Verbatim
                delimiter.append(text[i + 1 : end])
                quoted = True
                i = end + 1
            elif ch in "$`":
                raise _Verbatim  # an expansion in the delimiter word: too clever, keep it
            else:
                delimiter.append(ch)
                i += 1
        if i == start:
            raise _Verbatim
        self.emit(text[self.pos : operator_end])
        self.space = start > operator_end
        self.pos = start
        self.take(i)
        self.heredocs.append(("".join(delimiter), strip, quoted))

    def read_bodies(self) -> None:
        """After a newline: the bodies of pending here-documents, kept line by line.

        In the body of a here-document whose delimiter is unquoted, a line ending in
        an odd number of backslashes continues on the next line, which is then not
        taken as the delimiter line (nor is a delimiter spelled across such lines:
        ending later keeps more text verbatim). An expansion that may span lines
        (`$(`, `${`, a backquote: dash reads past delimiter lines inside one) in an
        unquoted body makes the rest of the command verbatim, body included.
        """
        text = self.text
        for delimiter, strip, quoted in self.heredocs:
            continued = False
            start = self.pos
            while self.pos < len(text):
                end = text.find("\n", self.pos)
                stop = len(text) if end < 0 else end
                line = text[self.pos : stop]
                if not quoted and ("$(" in line or "${" in line or "`" in line):
                    self.pos = start
                    raise _Verbatim
                self.lines.append(line)
                self.pos = stop + 1
                if not continued and (line.lstrip("\t") if strip else line) == delimiter:
                    break
                continued = not quoted and (len(line) - len(line.rstrip("\\"))) % 2 == 1
            else:
                # No delimiter: the body runs to the end, its last newline included.
                if text.endswith("\n") and self.pos > start:
                    self.lines.append("")
        self.heredocs = []


def normalize_command(text: str) -> str:
    """The command with comments, extra blanks and line continuations removed."""
    return _Normalizer(text).run()
