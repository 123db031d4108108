"""Mistakes that used to end in an internal error: one line, the documented exit code."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gitcache import gitrepo
from tests.helpers import Repo


def error_line(stderr: str) -> str:
    """The one `gitcache: error:` line, with no traceback anywhere."""
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("gitcache: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_a_command_too_long_to_start_fails_its_step(make: Callable[..., Repo]) -> None:
    toml = (
        f'[params]\nblob = "{"x" * 200_000}"\n'
        '[steps.big]\noutputs = ["big.txt"]\nrun = "echo {blob} > {outputs}"\n'
        '[steps.small]\noutputs = ["small.txt"]\nrun = "echo small > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run("run", "-k")
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert line.startswith("gitcache: error: step 'big' failed: cannot start its command")
    assert "Argument list too long; pass large values through a file" in line
    assert repo.read("small.txt") == "small\n"  # -k: the other step still ran
    assert not list((repo.root / ".git/gitcache/tmp").iterdir())
    assert [n for n in repo.refs("refs/gitcache/step/")] == ["refs/gitcache/step/small"]


def test_input_indexes_are_checked_against_the_expansion_before_anything_runs(
    make: Callable[..., Repo],
) -> None:
    toml = (
        '[steps.first]\noutputs = ["first.txt"]\nrun = "echo 1 > {outputs}"\n'
        '[steps.pick]\ninputs = ["data/*.csv"]\noutputs = ["pick.txt"]\n'
        'run = "cat {inputs[0]} {inputs[2]} > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, "data/a.csv": "a\n", "data/b.csv": "b\n"})
    result = repo.run("run")
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "gitcache: error: gitcache.toml: steps.pick.run: {inputs[2]}: no such input: "
        "the step has 2 inputs"
    )
    assert not (repo.root / "first.txt").exists() and repo.refs() == {}
    repo.write("data/c.csv", "c\n")
    assert repo.run("run").exit_code == 0
    assert repo.read("pick.txt") == "a\nc\n"


def test_overrides_are_checked_before_anything_runs(make: Callable[..., Repo]) -> None:
    toml = (
        "[params]\nsizes = [1, 2]\n"
        '[steps.first]\noutputs = ["first.txt"]\nrun = "echo 1 > {outputs}"\n'
        '[steps.second]\noutputs = ["second.txt"]\nrun = "echo {sizes[1]} > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run("run", "-p", "sizes=[7]")
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "gitcache: error: gitcache.toml: steps.second.run: {sizes[1]}: list index out of range"
        " (sizes is [7])"
    )
    assert not (repo.root / "first.txt").exists()
    assert repo.run("run", "-p", "sizes=[7, 8]").exit_code == 0
    assert repo.read("second.txt") == "8\n"  # one item of the array, not a character


def test_a_stale_ref_lock_is_named_with_how_to_remove_it(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitrepo, "_LOCK_WAIT_SECONDS", 0.6)
    monkeypatch.setattr(gitrepo, "_LOCK_NOTICE_SECONDS", 0.2)
    repo = make({"gitcache.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > {outputs}"\n'})
    lock = repo.root / ".git/refs/gitcache/step/a.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # left by a git process that was killed
    result = repo.run("run")
    assert result.exit_code == 2
    assert f"gitcache: warning: waiting for lock {lock} (another git process?)" in result.stderr
    assert error_line(result.stderr) == (
        f"gitcache: error: could not update refs: {lock} exists: another git process is "
        "updating that ref, or one was killed (waited 1 s) (if no git process is running, "
        f"remove it: rm '{lock}')"
    )
    assert repo.refs() == {}  # objects first, refs last: no half record
    lock.unlink()
    assert repo.run("run").exit_code == 0


def test_a_ref_in_the_way_fails_at_once_with_a_hint(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > {outputs}"\n'})
    repo.git("update-ref", "refs/gitcache/step", "HEAD")  # as a plain `git fetch` could leave
    started = time.monotonic()
    result = repo.run("run")
    assert time.monotonic() - started < 5  # not the 10 s wait for a lock
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert line == (
        "gitcache: error: cannot write ref refs/gitcache/step/a: the ref refs/gitcache/step "
        "is in the way (remove it if it is not yours: git update-ref -d refs/gitcache/step)"
    )


def test_an_environment_value_that_is_not_utf8_is_named(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > {outputs}"\nenv = ["LC_X"]\n'
    repo = make({"gitcache.toml": toml})
    monkeypatch.setenv("LC_X", "\udcff")  # the byte 0xff, as os.environ keeps it
    result = repo.run("run")
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "gitcache: error: step 'a': environment variable LC_X is not valid UTF-8, "
        "so its value cannot enter the signature"
    )
    assert repo.refs() == {}


@pytest.mark.parametrize("args", [("remove", "-z", "a"), ("restore", "a")])
def test_a_record_whose_record_json_object_is_gone_is_named(
    make: Callable[..., Repo], args: tuple[str, ...]
) -> None:
    repo = make({"gitcache.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > a.txt"\n'})
    assert repo.run("run").exit_code == 0
    commit = repo.refs()["refs/gitcache/step/a"]
    blob = repo.git("rev-parse", f"{commit}:record.json").strip()
    (repo.root / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # a damaged repository
    result = repo.run(*args)
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert f"object {blob} (record.json of commit {commit[:12]}) is missing from" in line
    assert "git fsck" in line
