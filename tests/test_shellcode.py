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


# -- against the shell itself ---------------------------------------------------------
#
# The rule: normalization removes only what the shell ignores. So a command and its
# normalized text must print the same bytes (stdout and exit status; stderr names line
# numbers, which blank and comment lines shift, as `$LINENO` does), and two commands
# that behave differently must not normalize alike.

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from tests.shellrun import run  # noqa: E402


def shell(command: str, _cwd: Path, sh: str = "sh") -> tuple[bytes, int]:
    return run("bash" if sh.endswith("bash") else "sh", command)


# Pairs of commands that behave differently: they must normalize differently.
DIFFERENT = [
    ("echo a\\\nb", "echo a b"),  # a continuation joins without a blank: `ab`
    ("cat <<\\EOF\n# data\nEOF", "cat <<\\EOF\nEOF"),
    ("cat <<\\EOF\n  x = 1\nEOF", "cat <<\\EOF\nx = 1\nEOF"),
    ("cat <<'EOF'\n#d\nEOF", "cat <<'EOF'\nEOF"),
    ('cat <<"EOF"\n#d\nEOF', 'cat <<"EOF"\nEOF'),
    ("cat <<E'O'F\n#d\nEOF", "cat <<E'O'F\nEOF"),
    ("cat <<-EOF\n\t#d\n\tEOF", "cat <<-EOF\n\tEOF"),
    ("cat <<EOF\n  #d   x\nEOF", "cat <<EOF\n#d x\nEOF"),
    ("cat <<A; cat <<B\n#a\nA\n#b\nB", "cat <<A; cat <<B\nA\nB"),
    ("echo x | cat <<EOF\n#a\nEOF", "echo x | cat <<EOF\nEOF"),
    ("true && cat <<EOF\n#a\nEOF", "true && cat <<EOF\nEOF"),
    ("cat <<EOF \\\n  >/dev/stdout\n#a\nEOF", "cat <<EOF >/dev/stdout\nEOF"),
    ("echo a#b", "echo a"),
    ("echo 'a  b'", "echo 'a b'"),
    ('echo "a  # b"', 'echo "a"'),
    ("echo \\#x", "echo"),
    ("echo a\\ \\ b", "echo a\\ b"),
    ("echo $#", "echo $"),
    ("x=abc; echo ${x#a}", "x=abc; echo ${x}"),
    ("case a in a) echo a#b;; esac", "case a in a) echo a;; esac"),
    ("echo a\necho b", "echo a echo b"),
    ("printf '%s\\n' a\\\n b", "printf '%s\\n' ab"),
]

# Commands whose normalized text must print exactly what they print.
CORPUS = [
    *(a for pair in DIFFERENT for a in pair),
    "  # only a comment\n\n\techo   a\t\tb   # trailing\n\n",
    "echo a;# comment\necho b",
    "echo a\\\n#b",  # `a#b`: the continuation leaves `#` inside the word
    "echo a \\\n#b",  # `#b` starts a word: a comment
    "x=1; echo $((x<<3)) $((x  +  1))",
    "echo $(echo  a   # c\n  b) after",
    'echo "$(echo "a  b")"  # c',
    "echo ${x:-'a  b'}  ${x:-\"#c\"}",
    'echo "a\\"  b"  \'c\'"d"',
    "case ab in a*) echo star;; b) echo b;; esac  # c",
    "f() { echo in f; }  # def\nf",
    "cat <<EOF\n$(echo a   b)\n  # x\nEOF",
    'cat <<EOF; echo "x\ny"\nbody #1\nEOF\necho   after',
    "cat <<-\tEOF\n\tone\n\t\ttwo\n\tEOF",
    "cat <<E\\OF\n$HOME\nEOF",
    "echo a\r\necho b",
    # Kept as written (conservative: inside $(..) and backquotes nothing is removed).
    "echo $((1 << 2)) # c",
    "echo $(echo a # c\n)b",
    "echo `echo a  b`",
]


@pytest.mark.parametrize("first, second", DIFFERENT)
def test_commands_that_behave_differently_normalize_differently(
    first: str, second: str, tmp_path: Path
) -> None:
    assert shell(first, tmp_path) != shell(second, tmp_path)
    assert normalize_command(first) != normalize_command(second)


@pytest.mark.parametrize("command", CORPUS)
def test_the_normalized_command_behaves_as_written(command: str, tmp_path: Path) -> None:
    normalized = normalize_command(command)
    assert normalize_command(normalized) == normalized
    assert shell(normalized, tmp_path) == shell(command, tmp_path)


BASH_CORPUS = [
    "echo $'a\\'  #b'   # c",
    "cat <<<'a  #b'   # c\necho x",
    "(( x = 1 << 3 )); echo $x  # c",
    "[[ a == a ]] && echo yes   # c",
    "cat <(echo  a # c\n)",
    "echo <(true)#x   # c",
]


@pytest.mark.parametrize("command", BASH_CORPUS)
def test_bash_constructs_behave_as_written(command: str, tmp_path: Path) -> None:
    normalized = normalize_command(command)
    assert shell(normalized, tmp_path, "bash") == shell(command, tmp_path, "bash")


# -- property: generated harmless commands --------------------------------------------

plain = st.text(alphabet="abxyz019-=.,:%#", min_size=1, max_size=6).filter(
    lambda w: not w.startswith("#")
)
single = st.text(alphabet='ab #\t\n$\\"', max_size=6).map(lambda t: f"'{t}'")
double = st.text(alphabet="ab #\t\n'", max_size=6).map(lambda t: f'"{t}"')
escaped = st.sampled_from(["\\#", "\\ ", "\\'", '\\"', "\\\\", "\\$"])
word = st.lists(st.one_of(plain, single, double, escaped), min_size=1, max_size=3).map("".join)
gap = st.sampled_from([" ", "  ", "\t", " \t ", " \\\n", "\\\n ", " \\\n  "])
comment = st.sampled_from(["", " # c", "  #x y 'z", "\t# \\"])
# $$ is the shell's pid, also when a line ending in `$\` joins the next one's `$`.
body_line = st.text(alphabet="ab #\t$'\"\\", max_size=8).filter(
    lambda t: "EOF" not in t and "$$" not in t and not t.endswith("$\\")
)


@st.composite
def simple_command(draw: st.DrawFn) -> str:
    verb = draw(st.sampled_from(["echo", "printf '[%s]'", "printf '%s|'"]))
    words = draw(st.lists(word, min_size=1, max_size=4))
    gaps = draw(st.lists(gap, min_size=len(words), max_size=len(words)))
    return verb + "".join(g + w for g, w in zip(gaps, words, strict=True)) + draw(comment)


@st.composite
def heredoc(draw: st.DrawFn) -> str:
    operator = draw(st.sampled_from(["<<", "<<-", "<< ", "<<-  "]))
    delimiter = draw(st.sampled_from(["EOF", "'EOF'", '"EOF"', "\\EOF", "E'O'F", 'E"OF"']))
    lines = draw(st.lists(body_line, max_size=4))
    tab = "\t" if operator.startswith("<<-") and draw(st.booleans()) else ""
    body = "".join(f"{tab}{line}\n" for line in lines)
    return f"cat {operator}{delimiter}{draw(comment)}\n{body}{tab}EOF"


script = st.lists(
    st.one_of(simple_command(), heredoc(), st.sampled_from(["", "  ", "# a comment", "\t#"])),
    min_size=1,
    max_size=4,
).map("\n".join)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=script)
def test_generated_commands_behave_as_their_normalized_text(command: str, tmp_path: Path) -> None:
    normalized = normalize_command(command)
    assert normalize_command(normalized) == normalized
    assert shell(normalized, tmp_path) == shell(command, tmp_path)


noise = st.sampled_from(["", " ", "  ", "\t", " # note", "\n", "\n# line\n", " \\\n"])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=script, edits=st.lists(st.tuples(st.integers(0, 200), noise), max_size=4))
def test_commands_with_the_same_normalized_text_print_the_same(
    command: str, edits: list[tuple[int, str]], tmp_path: Path
) -> None:
    other = command
    for at, text in edits:  # insert formatting noise anywhere: it may or may not matter
        at %= len(other) + 1
        other = other[:at] + text + other[at:]
    if normalize_command(other) == normalize_command(command):
        assert shell(other, tmp_path) == shell(command, tmp_path)


# Arbitrary text over the characters the normalizer cares about (no `>`, `&`, `|` or
# backquote: nothing that writes files, runs in the background or runs a program).
raw = st.text(alphabet="ab E#'\"\\\n\t<-$(){};", max_size=40).filter(lambda t: "$$" not in t)


@pytest.mark.parametrize("sh", ["/bin/sh", "bash"])
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=raw)
def test_arbitrary_text_behaves_as_its_normalized_text(sh: str, text: str, tmp_path: Path) -> None:
    command = "echo " + text
    normalized = normalize_command(command)
    assert normalize_command(normalized) == normalized
    assert shell(normalized, tmp_path, sh) == shell(command, tmp_path, sh)


# -- the filled-in command counts too ---------------------------------------------------


def _signature(tmp_path: Path, run: str) -> str:
    """The signature of step `s` running `run`, with parameter p = `x\\` (x, backslash)."""
    from gitcache.signature import shell_components, signature_of
    from gitcache.workflow import load_workflow

    toml = tmp_path / "gitcache.toml"
    toml.write_text('[params]\np = "x\\\\"\n[steps.s]\nrun = """' + run + '"""\n')
    workflow = load_workflow(toml, tmp_path)
    assert workflow.params["p"] == "x\\"
    return signature_of(shell_components(workflow.steps["s"], workflow.params, {}, {}))


def test_a_parameter_that_changes_how_the_line_reads_keeps_signatures_apart(
    tmp_path: Path,
) -> None:
    # The templates differ only by a comment line, but `{p}` ends in a backslash: filled
    # in, the first joins `# c` to its line (`x# c`), the second joins `echo b`.
    first, second = "echo {p}\n# c\necho b", "echo {p}\necho b"
    assert normalize_command(first) == normalize_command(second)
    filled = [run.replace("{p}", "x\\") for run in (first, second)]
    assert shell(filled[0], tmp_path) != shell(filled[1], tmp_path)
    assert _signature(tmp_path, first) != _signature(tmp_path, second)
