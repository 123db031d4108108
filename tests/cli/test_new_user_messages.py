"""What a new user meets first: an empty workflow file, outputs one inside another."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import Repo


def test_an_empty_workflow_says_there_is_nothing_to_run(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": "# nothing yet\n"})
    result = repo.run("run")
    assert result.exit_code == 0
    assert result.stderr.strip() == "gitcache: no steps to run"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[steps.a]\noutputs = ["d", "d/p"]\nrun = "true"\n',
            "gitcache.toml: step 'a' declares output 'd/p' inside its output 'd'",
        ),
        (
            '[steps.a]\noutputs = ["d/p"]\nrun = "true"\n[steps.b]\noutputs = ["d"]\nrun = "true"\n',
            "gitcache.toml: steps 'a' and 'b' both declare output 'd/p' (one declares 'd', "
            "which holds it)",
        ),
        (
            '[steps.a]\noutputs = ["d"]\nrun = "true"\n[steps.b]\noutputs = ["./d"]\nrun = "true"\n',
            "gitcache.toml: steps 'a' and 'b' both declare output 'd'",
        ),
    ],
)
def test_overlapping_outputs_are_named_plainly(
    make: Callable[..., Repo], toml: str, expected: str
) -> None:
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"gitcache: error: {expected}"


@pytest.mark.parametrize("name", ["inputs", "outputs"])
def test_a_parameter_named_like_the_paths_is_refused(make: Callable[..., Repo], name: str) -> None:
    # `{inputs}` is always the step's inputs: such a parameter (and `-p inputs=...`) did nothing.
    toml = f'[params]\n{name} = 1\n\n[steps.a]\noutputs = ["o"]\nrun = "echo {{{name}}} > o"\n'
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"gitcache: error: gitcache.toml: params.{name}: the name is reserved "
        f"({{{name}}} is the step's {name}); rename the parameter"
    )
    assert repo.refs() == {}


def test_an_empty_input_directory_is_named_as_such(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": '[steps.a]\ninputs = ["d"]\noutputs = ["o"]\nrun = "ls d > o"\n'})
    (repo.root / "d" / "sub").mkdir(parents=True)
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "gitcache: error: gitcache.toml: step 'a': input 'd' is an empty directory "
        "(no file in it to read) and no step produces it"
    )


def test_a_workflow_file_saved_with_a_byte_order_mark_is_read(make: Callable[..., Repo]) -> None:
    # Some Windows editors begin UTF-8 files with one; TOML parsers refuse it.
    repo = make({})
    (repo.root / "gitcache.toml").write_bytes(
        b'\xef\xbb\xbf[steps.a]\r\noutputs = ["o"]\r\nrun = "echo hi > o"\r\n'
    )
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert repo.read("o") == "hi\n"
