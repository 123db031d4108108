"""`gitcache status` says what would happen and why."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.helpers import Repo

TOML = """\
[params]
n = 1

[steps.a]
inputs = ["in.txt"]
outputs = ["out/a.txt"]
run = "cat {inputs} > {outputs}; echo {n} >> {outputs}"

[steps.b]
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
env = ["GC_STATUS_VAR"]
run = "cat {inputs} > {outputs}"
"""


def states(repo: Repo, *args: str) -> dict[str, dict[str, object]]:
    result = repo.run("status", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return {item["step"]: item for item in json.loads(result.stdout)}


def test_never_run_then_up_to_date(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, "in.txt": "hi\n", ".gitignore": "out/\n"})
    found = states(repo)
    assert found["a"]["state"] == "never-run"
    assert found["b"]["state"] == "stale"
    assert found["b"]["reasons"] == ["upstream step a is not up to date"]
    assert repo.run("run").exit_code == 0
    found = states(repo)
    assert {s["state"] for s in found.values()} == {"up-to-date"}
    assert repo.refs() == repo.refs()  # status writes no refs
    text = repo.run("status").stdout
    assert "a  up to date" in text


def test_reasons_name_input_param_code_and_env(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, "in.txt": "hi\n", ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    old_blob = repo.blob("in.txt")
    repo.write("in.txt", "changed\n")
    new_blob = repo.blob("in.txt")
    found = states(repo, "-p", "n=5")
    assert found["a"]["state"] == "stale"
    assert found["a"]["reasons"] == [
        "param n changed (1 -> 5)",
        f"input in.txt changed ({old_blob[:7]} -> {new_blob[:7]})",
    ]
    repo.write("in.txt", "hi\n")
    repo.write("gitcache.toml", TOML.replace("echo {n}", "echo n={n}"))
    assert states(repo)["a"]["reasons"] == ["command changed"]
    repo.write("gitcache.toml", TOML)
    import os

    os.environ["GC_STATUS_VAR"] = "set"
    try:
        assert states(repo)["b"]["reasons"] == ["env GC_STATUS_VAR changed (None -> 'set')"]
    finally:
        del os.environ["GC_STATUS_VAR"]


def test_restorable_when_outputs_missing_and_downstream_stays_up_to_date(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": TOML, "in.txt": "hi\n", ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    (repo.root / "out/a.txt").unlink()
    found = states(repo)
    assert found["a"]["state"] == "restorable"
    assert found["a"]["reasons"] == ["output out/a.txt missing"]
    # b's input would come back from a's record unchanged: b is still up to date.
    assert found["b"]["state"] == "up-to-date"


def test_missing_input_reported(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\n"})
    found = states(repo)
    assert found["a"]["state"] == "missing-input"
    assert found["a"]["reasons"] == ["input in.txt does not exist"]
