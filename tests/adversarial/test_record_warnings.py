"""A record that cannot be used is said once per command, however often it is looked up."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import Repo
from tests.remotes import forge

TOML = """\
[steps.make]
inputs = ["in.txt"]
outputs = ["out"]
run = "mkdir -p out && cat in.txt > out/a.txt"
"""


def test_an_unreadable_record_is_one_warning(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, "in.txt": "one\n", ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    (ref,) = repo.refs("refs/gitcache/sig/")
    forge(repo, ref.rsplit("/", 1)[1], {"out/a.txt": (b"x", 0o160000)})  # a gitlink
    (repo.root / "out/a.txt").unlink()
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert "ignoring unreadable record" in warnings[0]
    assert "make: ran" in result.stderr
    assert repo.read("out/a.txt") == "one\n"
