"""Command normalization against the shell itself: a corpus of tricky cases.

The cases (texts, pairs and templates) were collected while writing a second,
independent normalizer for the same rule, and are kept as a cross-check of this
one: each normalized text must print what the original prints under the shell
named (stdout and exit status) and normalize to itself; two texts that print
differently must normalize differently; and a template's filled-in command,
normalized (the signature's `command`), must keep apart what prints apart.
"""

from __future__ import annotations

import pytest

from gitcache.interpolate import render
from gitcache.shellcode import normalize_command
from tests.shellrun import run

# (shell, text, what the other normalizer gave: unused here). Plain shell text.
NORMALIZED = [
    # line continuations: removed without a blank, outside single quotes
    ("sh", "printf '%s|' a\\\nb", "printf '%s|' ab"),
    ("sh", "printf '%s|' a \\\n   b", "printf '%s|' a b"),
    ("sh", "printf '%s|' \"a\\\nb\" 'c\\\nd'", "printf '%s|' \"ab\" 'c\\\nd'"),
    ("sh", "printf '%s|' a &\\\n& printf b", "printf '%s|' a && printf b"),
    ("sh", "printf '%s|' a\\\n#b", "printf '%s|' a#b"),
    ("sh", "printf a # c \\\nprintf b", "printf a\nprintf b"),
    ("sh", "printf '%s|' $\\\n{x}", "printf '%s|' ${x}"),
    # here-documents: every form keeps its body and delimiter line byte for byte
    (
        "sh",
        "cat <<\\EOF\n# data\n  x = 1\nEOF\nprintf  done # c",
        "cat <<\\EOF\n# data\n  x = 1\nEOF\nprintf done",
    ),
    (
        "sh",
        "cat <<EOF\n# $x  \\$x\n  a  b\nEOF\nprintf  done",
        "cat <<EOF\n# $x  \\$x\n  a  b\nEOF\nprintf done",
    ),
    ("sh", "cat <<'EOF'\n# $x\nEOF", "cat <<'EOF'\n# $x\nEOF"),
    ("sh", 'cat <<"EOF"\n  $x # y\nEOF\n', 'cat <<"EOF"\n  $x # y\nEOF'),
    ("sh", 'cat <<E"O"F\n\t$x  #\nEOF\n\n', 'cat <<E"O"F\n\t$x  #\nEOF'),
    (
        "sh",
        "cat <<-EOF\n\t# a\n\t\tb  c\n\tEOF\nprintf  x",
        "cat <<-EOF\n\t# a\n\t\tb  c\n\tEOF\nprintf x",
    ),
    ("sh", "cat << \t'E F'\n x\nE F", "cat << 'E F'\n x\nE F"),
    (
        "sh",
        "cat <<A; cat <<'B'   # two on one line\n a\nA\n  # b\nB\nprintf  z",
        "cat <<A; cat <<'B'\n a\nA\n  # b\nB\nprintf z",
    ),
    (
        "sh",
        "printf x | cat <<A && cat <<B; cat <<C   # c\n  a\nA\n  b\nB\n  c\nC\nprintf   d",
        "printf x | cat <<A && cat <<B; cat <<C\n  a\nA\n  b\nB\n  c\nC\nprintf d",
    ),
    (
        "sh",
        "printf '%s|' \"$(cat <<E\n  a  # b\nE\n)\"   z",
        "printf '%s|' \"$(cat <<E\n  a  # b\nE\n)\" z",
    ),
    # an unquoted body joins a backslash-newline before the delimiter test: `a\` + `E` is not the end
    ("sh", "cat <<E\na\\\nE\nE\nprintf  x", "cat <<E\na\\\nE\nE\nprintf x"),
    ("sh", "cat <<'E'\na\\\nE\nprintf  x", "cat <<'E'\na\\\nE\nprintf x"),
    ("sh", "cat <<E\nE \n  x\nE\nprintf  y", "cat <<E\nE \n  x\nE\nprintf y"),
    ("sh", "cat <<''\nx  y\n\nprintf  z", "cat <<''\nx  y\n\nprintf z"),  # an empty line ends it
    # bash's here-string is not a here-document; for sh (dash: an error) the text stays
    ("bash", "cat <<<  'a  b'  # c\n# d\nprintf  x", "cat <<< 'a  b'\nprintf x"),
    ("sh", "cat <<<  'a  b'  # c\n# d\nprintf  x", "cat <<<  'a  b'  # c\n# d\nprintf  x"),
    ("sh", "printf '%s|' $((1  <<  2))\n  # c\nprintf x", "printf '%s|' $((1  <<  2))\nprintf x"),
    # `#` starts a comment only at the start of a word
    (
        "sh",
        "printf '%s|' a#b ${x#y} $# \"#\" \\# $(printf '%s' a)#b   # c",
        "printf '%s|' a#b ${x#y} $# \"#\" \\# $(printf '%s' a)#b",
    ),
    ("sh", "(printf a)#b\nprintf c", "(printf a)\nprintf c"),
    ("sh", "printf a;#b\nprintf c&&#d\nprintf e", "printf a;\nprintf c&&\nprintf e"),
    (
        "sh",
        "case a in (a) printf x;;  # c\n  b)  printf y;; esac",
        "case a in (a) printf x;;\nb) printf y;; esac",
    ),
    ("sh", "case a in a)#x\nprintf y;; esac", "case a in a)\nprintf y;; esac"),
    # quotes and expansions keep their text; code inside $(...) is code
    (
        "sh",
        "printf '%s|' \"a  \\\"b  \\\\  \\$x\"   'c  d'",
        "printf '%s|' \"a  \\\"b  \\\\  \\$x\" 'c  d'",
    ),
    ("bash", "printf '%s|' $'a\\'  b'   c  # d", "printf '%s|' $'a\\'  b' c"),
    ("sh", "printf '%s|' $'a  b'   c  # d", "printf '%s|' $'a  b' c"),
    (
        "sh",
        "printf '%s|' \"$(printf '%s' \"$(printf '%s'  'a  b')\")\"   `printf  c`   d",
        "printf '%s|' \"$(printf '%s' \"$(printf '%s' 'a  b')\")\" `printf  c` d",
    ),
    ("sh", "printf '%s|' $( printf  %s  a  # )\n  )", "printf '%s|' $( printf %s a\n)"),
    (
        "sh",
        "printf '%s|' ${u:-a  b}   \"${u:-a   b}\"  ${x}",
        "printf '%s|' ${u:-a  b} \"${u:-a   b}\" ${x}",
    ),
    ("sh", "printf '%s|' ${u:-'}'}   \"${u:-}\"", "printf '%s|' ${u:-'}'} \"${u:-}\""),
    ("sh", "printf '%s|' $(( 1  <<  2 ))   x", "printf '%s|' $(( 1  <<  2 )) x"),
    ("bash", "((y = 1  <<  2));  printf '%s|' $y", "((y = 1  <<  2)); printf '%s|' $y"),
    # blanks
    ("sh", "  printf   '%s|'\ta\t\tb   ", "printf '%s|' a b"),
    ("sh", "printf '%s|' a\\ \\ b   c", "printf '%s|' a\\ \\ b c"),
    ("sh", "printf '%s|' a\rb  c\r", "printf '%s|' a\rb c\r"),
    ("sh", "\n\n  # c\n\nprintf a\n\n   \n# d\nprintf b\n", "printf a\nprintf b"),
    # cannot be classified with certainty: kept as written from the word where the doubt arises
    (
        "sh",
        "printf  a;  printf '%s|' $'a\\'  b'   c  # d",
        "printf a; printf '%s|' $'a\\'  b'   c  # d",
    ),
    ("sh", "((y = 1  <<  2));  printf '%s|' $y", "((y = 1  <<  2));  printf '%s|' $y"),
    ("sh", "printf '%s|' 'a  b   c", "printf '%s|' 'a  b   c"),
    ("sh", "printf  a\nalias h='cat <<E'\nh\n  # x\nE", "printf a\nalias h='cat <<E'\nh\n  # x\nE"),
    (
        "sh",
        "printf  a;  printf $(case a in a) printf x;; esac)  # c",
        "printf a; printf $(case a in a) printf x;; esac)  # c",
    ),
    (
        "bash",
        "[[ 'a  b' =~ ^(a  b)$ ]] && printf y   # c",
        "[[ 'a  b' =~ ^(a  b)$ ]] && printf y   # c",
    ),
    (
        "bash",
        "shopt -s extglob\nprintf '%s|' @(a  b)   c",
        "shopt -s extglob\nprintf '%s|' @(a  b)   c",
    ),
    ("sh", "cat <<E; printf '%s|' 'a\nb'\n  x\nE", "cat <<E; printf '%s|' 'a\nb'\n  x\nE"),
    (
        "sh",
        "cat <<E\n$(printf '%s' \"\nE\n\")\nE\nprintf  x",
        "cat <<E\n$(printf '%s' \"\nE\n\")\nE\nprintf  x",
    ),
]


@pytest.mark.parametrize(("shell", "text", "_other"), NORMALIZED)
def test_the_normalized_text_prints_what_the_text_prints(
    shell: str, text: str, _other: str
) -> None:
    normalized = normalize_command(text)
    assert normalize_command(normalized) == normalized
    assert run(shell, normalized) == run(shell, text)


HERE_DOC_FORMS = ["EOF", "'EOF'", '"EOF"', "\\EOF", 'E"O"F', "-EOF", "-'EOF'"]

# (shell, a, b, same): whether the shell prints the same for a and b.
PAIRS = [
    ("sh", "printf '%s|' a\\\nb", "printf '%s|' a b", False),
    ("sh", "printf '%s|' a \\\n   b", "printf '%s|' a b", True),
    ("sh", "printf '%s|' \"a\\\nb\"", "printf '%s|' \"ab\"", True),
    ("sh", "printf '%s|' 'a\\\nb'", "printf '%s|' 'ab'", False),
    ("sh", "printf a # c \\\nprintf b", "printf a\nprintf b", True),
    ("sh", "printf '%s|' a\\\n#b", "printf '%s|' a #b", False),
    ("sh", "cat <<\\EOF\n# data\nx\nEOF", "cat <<\\EOF\nx\nEOF", False),
    ("sh", "cat <<\\EOF\nif a:\n    b\nEOF", "cat <<\\EOF\nif a:\n  b\nEOF", False),
    ("sh", "cat <<'EOF'   # c\n  x\nEOF\n\n  printf   y", "cat <<'EOF'\n  x\nEOF\nprintf y", True),
    (
        "sh",
        "printf x | cat <<A && cat <<B\n a\nA\n  b\nB",
        "printf x | cat <<A && cat <<B\n a\nA\n b\nB",
        False,
    ),
    ("sh", "cat <<A; cat <<B\n a\nA\n#  b\nB", "cat <<A; cat <<B\n a\nA\n# b\nB", False),
    ("bash", "cat <<<  a  # c", "cat <<< a", True),
    ("bash", "cat <<<a\n  # b\nprintf c", "cat <<<a\nprintf c", True),
    ("sh", "printf '%s|' a #b", "printf '%s|' a", True),
    ("sh", "printf '%s|' a#b", "printf '%s|' a", False),
    ("sh", "printf '%s|' ${x#y}", "printf '%s|' ${x}", False),
    ("sh", "printf '%s|' $#", "printf '%s|' $", False),
    ("sh", "printf '%s|' $(printf a)#b", "printf '%s|' $(printf a)", False),
    ("sh", "printf '%s|' 'a  b'", "printf '%s|' 'a b'", False),
    ("sh", 'printf "%s|" "a  \\"  b"', 'printf "%s|" "a \\" b"', False),
    ("bash", "printf '%s|' $'a\\'  b'", "printf '%s|' $'a\\' b'", False),
    (
        "sh",
        "printf '%s|' \"$(printf '%s' 'a  b')\"",
        "printf '%s|' \"$(printf '%s' 'a b')\"",
        False,
    ),
    ("sh", "printf '%s|' \"$(printf   '%s'   a)\"", "printf '%s|' \"$(printf '%s' a)\"", True),
    ("sh", "printf '%s|' \"`printf '%s' 'a  b'`\"", "printf '%s|' \"`printf '%s' 'a b'`\"", False),
    ("sh", "printf '%s|' \"${u:-a  b}\"", "printf '%s|' \"${u:-a b}\"", False),
    ("sh", "case a in a)  printf x;;  # c\nesac", "case a in a) printf x;;\nesac", True),
    ("sh", "  printf   '%s|'\ta\t\tb   ", "printf '%s|' a b", True),
    ("sh", "printf '%s|' a\\ \\ b", "printf '%s|' a\\ b", False),
    ("sh", "printf '%s|' a\\\tb", "printf '%s|' a\\ b", False),
    ("sh", "\n  # c\n\nprintf a\n \t \nprintf b  # d\n", "printf a\nprintf b", True),
    ("sh", "alias h='cat <<E'\nh\n  # x\nE", "alias h='cat <<E'\nh\n# x\nE", False),
    *[
        ("sh", f"cat <<{form}\n\t  # x\n\tEOF\n", f"cat <<{form}\n\t# x\n\tEOF\n", False)
        for form in HERE_DOC_FORMS
    ],
    *[
        ("sh", f"cat <<{form}  # c\n\t  # x\nEOF\n", f"cat <<{form}\n\t  # x\nEOF", True)
        for form in HERE_DOC_FORMS
    ],
]


@pytest.mark.parametrize(("shell", "a", "b", "same"), PAIRS)
def test_texts_that_print_differently_normalize_differently(
    shell: str, a: str, b: str, same: bool
) -> None:
    assert (run(shell, a) == run(shell, b)) is same
    if not same:
        assert normalize_command(a) != normalize_command(b)
    for text in (a, b):
        assert run(shell, normalize_command(text)) == run(shell, text)


# Templates: a field's value is unknown to the lexer unless it renders as plain words.
TEMPLATE_PAIRS = [
    # a parameter value with a quote changes where the quoted text is
    ("printf '%s|' {q}a   b{q}", "printf '%s|' {q}a b{q}", {"q": "'"}, [], False),
    ("printf '%s|' {q}a   b{q}", "printf '%s|' {q}a b{q}", {"q": "z"}, [], True),
    # a value that is `#` makes the rest of the line a comment, continuation included
    ("printf '%s|' a {q}  b \\\n c", "printf '%s|' a {q} b c", {"q": "#"}, [], False),
    ("printf '%s|' a {q}  b \\\n c", "printf '%s|' a {q} b c", {"q": "z"}, [], True),
    # a list parameter renders as several plain words
    ("printf '%s|' {names}   x  # c", "printf '%s|' {names} x", {"names": ["a", "b"]}, [], True),
    # shell-quoted paths are words in code, but not inside quotes: `it's` opens a quote there
    ("printf '%s|' {inputs}   x  # c", "printf '%s|' {inputs} x", {}, ["it's", "a b"], True),
    (
        "printf '%s|' '{inputs}'  a  # c\"\nprintf '%s|'  b\"",
        "printf '%s|' '{inputs}' a\nprintf '%s|' b\"",
        {},
        ["it's"],
        False,
    ),
    # no inputs at all: `{inputs}#` is a comment, which a backslash does not continue
    ("printf '%s|' x {inputs}#  a \\\n b", "printf '%s|' x {inputs}# a b", {}, [], False),
    # ... and `<` + nothing + `<` is a here-document
    ("cat <{inputs}<E\n  # x\nE", "cat <{inputs}<E\n# x\nE", {}, [], False),
    ("cat <{inputs}  # x", "cat <{inputs}", {}, ["in.txt"], True),
    # a parameter in a here-document delimiter: where the body ends depends on its value
    ("cat <<'{n}'\n  # x\nE\nprintf  a", "cat <<'{n}'\n# x\nE\nprintf a", {"n": "E"}, [], False),
    # literal braces are shell text
    ("printf '%s|' \"${{u:-a  b}}\"", "printf '%s|' \"${{u:-a b}}\"", {}, [], False),
    ("printf '%s|' ${{x}}   {{a,b}}  # c", "printf '%s|' ${{x}} {{a,b}}", {}, [], True),
]


@pytest.mark.parametrize(("a", "b", "params", "inputs", "same"), TEMPLATE_PAIRS)
def test_filled_in_commands_that_print_differently_normalize_differently(
    a: str, b: str, params: dict[str, object], inputs: list[str], same: bool
) -> None:
    filled_a, filled_b = render(a, params, inputs, []), render(b, params, inputs, [])
    assert (run("sh", filled_a) == run("sh", filled_b)) is same
    if not same:
        assert normalize_command(filled_a) != normalize_command(filled_b)
    assert run("sh", normalize_command(filled_a)) == run("sh", filled_a)
