"""Mistakes that used to end in an internal error: one line, the documented exit code."""

from __future__ import annotations

from collections.abc import Callable

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
