"""What a record says (a fetched one may say anything) is printed, never acted on: the
terminal controls in its fields are shown escaped by show, log, diff and status."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import Repo

TOML = """\
[params]
msg = "plain"

[steps.say]
outputs = ["out.txt"]
run = "printf '%s' '{msg}' > {outputs}"
"""

CLEAR = "\x1b[2J\x1b]0;owned\x07\x9b31m"


def test_record_fields_are_printed_with_their_controls_escaped(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out.txt\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("run", "-p", f"msg={CLEAR}").exit_code == 0
    assert repo.read("out.txt") == CLEAR  # the command itself got the value as it is
    records = repo.run("log", "--json").stdout
    first, second = sorted(
        line.split('"record": "')[1][:40] for line in records.splitlines() if '"record": "' in line
    )
    for args in (
        ("show", "say"),
        ("log",),
        ("diff", first, second),
        ("status", "-p", f"msg={CLEAR}"),
    ):
        shown = repo.run(*args).stdout
        assert shown, args
        assert not any(c in shown for c in "\x1b\x07\x9b"), (args, shown)
    assert "\\x1b[2J" in repo.run("show", "say").stdout
