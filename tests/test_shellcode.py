"""Command normalization: formatting and comments never count, real changes always do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gitcache.shellcode import normalize_command

words = st.text(alphabet="abcdefxyz0123456789-_./={}", min_size=1, max_size=8)
commands = st.lists(st.lists(words, min_size=1, max_size=5), min_size=1, max_size=4)
blanks = st.text(alphabet=" \t", min_size=1, max_size=3)
comments = st.text(alphabet="abc #'\"$ ", max_size=12).map(lambda t: "# " + t)


def render(lines: list[list[str]], gap: str = " ") -> str:
    return "\n".join(gap.join(line) for line in lines)


@given(commands, blanks, comments, st.integers(0, 3))
def test_formatting_and_comments_do_not_count(
    lines: list[list[str]], gap: str, comment: str, blank_lines: int
) -> None:
    plain = render(lines)
    messy = (
        comment
        + "\n"
        + "\n" * blank_lines
        + "\n".join(gap + gap.join(line) + gap + comment for line in lines)
        + "\n"
        + gap
        + "\n"
    )
    assert normalize_command(messy) == normalize_command(plain)


@given(commands, st.integers(0, 100), words)
def test_changing_a_word_changes_the_result(lines: list[list[str]], pick: int, new: str) -> None:
    flat = [(i, j) for i, line in enumerate(lines) for j in range(len(line))]
    i, j = flat[pick % len(flat)]
    if lines[i][j] == new:
        return
    changed = [list(line) for line in lines]
    changed[i][j] = new
    assert normalize_command(render(changed)) != normalize_command(render(lines))


@given(commands)
def test_joining_two_commands_onto_one_line_counts(lines: list[list[str]]) -> None:
    if len(lines) < 2:
        return
    joined = [lines[0] + lines[1], *lines[2:]]
    assert normalize_command(render(joined)) != normalize_command(render(lines))


def test_quoted_text_is_kept() -> None:
    assert normalize_command("echo 'a   # b'  \"c  d\"") == "echo 'a   # b' \"c  d\""
    assert normalize_command("echo 'a  b'") != normalize_command("echo 'a b'")


def test_hash_inside_a_word_is_not_a_comment() -> None:
    assert normalize_command("echo a#b $# ${#x}") == "echo a#b $# ${#x}"


def test_line_continuation_joins() -> None:
    assert normalize_command("cmd a \\\n   b") == normalize_command("cmd a b")


def test_escaped_hash_is_data() -> None:
    assert normalize_command("echo \\# not a comment") == "echo \\# not a comment"


def test_here_document_body_is_verbatim() -> None:
    text = "cat <<EOF > x\n  # kept   as is\n\nEOF\necho   done  # gone"
    assert normalize_command(text) == "cat <<EOF > x\n  # kept   as is\n\nEOF\necho done"
    assert normalize_command(text.replace("kept", "changed")) != normalize_command(text)


def test_here_string_is_not_a_here_document() -> None:
    assert normalize_command("cat <<<word\n# gone\necho x") == "cat <<<word\necho x"


def test_multiline_quotes_keep_newlines() -> None:
    assert normalize_command("echo 'a\n\n  # b'") == "echo 'a\n\n  # b'"
