"""TOML dates and times as parameters: distinct signatures, ISO text, -p, log, show, status."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Repo

DATES = """\
[params]
day = 2024-01-31
at = 1979-05-27T07:32:00-08:00
local = 1979-05-27T07:32:00
clock = 07:32:00
word = "2024-01-31"

[steps.when]
outputs = ["when.txt"]
run = "echo {day} {at} {local} {clock} {day:%Y} {day.month} > {outputs}"

[steps.text]
outputs = ["text.txt"]
run = "echo {word} > {outputs}"
"""


def test_dates_run_and_are_recorded(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": DATES, ".gitignore": "*.txt\n"})
    ran = repo.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert repo.read("when.txt") == (
        "2024-01-31 1979-05-27T07:32:00-08:00 1979-05-27T07:32:00 07:32:00 2024 1\n"
    )
    listed = json.loads(repo.run("log", "when", "--json").stdout)
    assert listed[0]["params"] == {
        "day": {"$local-date": "2024-01-31"},
        "at": {"$offset-date-time": "1979-05-27T07:32:00-08:00"},
        "local": {"$local-date-time": "1979-05-27T07:32:00"},
        "clock": {"$local-time": "07:32:00"},
    }
    index = json.loads((repo.root / ".git/gitcache/record-index-v2.json").read_text())
    assert listed[0]["record"] in index["records"]
    shown = repo.run("show", "when").stdout
    assert "  day = 2024-01-31\n" in shown and "  at = 1979-05-27T07:32:00-08:00\n" in shown
    assert "2 steps: 2 up to date" in repo.run("run").stderr


def test_a_date_and_the_same_text_have_different_signatures(make: Callable[..., Repo]) -> None:
    toml = '[params]\nday = 2024-01-31\n[steps.text]\noutputs = ["text.txt"]\n'
    toml += 'run = "echo {day} > {outputs}"\n'
    a = make({"gitcache.toml": toml}, name="date")
    b = make({"gitcache.toml": toml.replace("day = 2024-01-31", 'day = "2024-01-31"')})
    assert a.run("run").exit_code == 0 and b.run("run").exit_code == 0
    assert a.read("text.txt") == b.read("text.txt") == "2024-01-31\n"
    assert set(a.refs("refs/gitcache/sig/")) != set(b.refs("refs/gitcache/sig/"))


def test_override_filter_and_status(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": DATES, ".gitignore": "*.txt\n"})
    assert repo.run("run", "when").exit_code == 0
    ran = repo.run("run", "when", "-p", "day=2024-02-29")
    assert ran.exit_code == 0, ran.stderr
    assert repo.read("when.txt").startswith("2024-02-29 ")
    found = json.loads(repo.run("log", "--param", "day=2024-02-29", "--json").stdout)
    assert [r["params"]["day"] for r in found] == [{"$local-date": "2024-02-29"}]
    assert len(json.loads(repo.run("log", "--param", "day=2024-01-31", "--json").stdout)) == 1
    status = repo.run("status", "when", "-p", "day=2024-03-01")
    assert "param day changed (2024-02-29 -> 2024-03-01)" in status.stdout, status.stdout


def test_the_encoding_documented_in_format_md() -> None:
    import tomllib

    from gitcache.canonical import canonical_json
    from gitcache.params import encode

    doc = (Path(__file__).resolve().parents[2] / "docs/format.md").read_text()
    rows = re.findall(r"\| `(\w+ = [^`]+)` \| `(\"\w+\":\{[^`]+\})` \|", doc)
    assert len(rows) == 4
    for toml, encoded in rows:
        ((name, value),) = tomllib.loads(toml).items()
        assert canonical_json({name: encode(value)}).decode() == "{" + encoded + "}"


def test_a_bad_log_filter_names_the_option_it_came_with(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": DATES})
    result = repo.run("log", "--param", "day=soon")
    assert result.exit_code == 2
    assert result.stderr == (
        "gitcache: error: --param day=soon: expected local date like the default 2024-01-31\n"
    )
