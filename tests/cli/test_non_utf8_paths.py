"""File names that are not UTF-8 are refused wherever a path enters a signature or a
record: two such names would otherwise become one key (U+FFFD) and one signature."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from gitcache.record import check_relative_path
from tests.helpers import Repo


def with_names(make: Callable[..., Repo], inputs: str, *names: bytes) -> Repo:
    toml = f'[steps.s]\ninputs = ["{inputs}"]\noutputs = ["out.txt"]\nrun = "ls data > out.txt"\n'
    repo = make({"gitcache.toml": toml, "data/ok.txt": "ok\n", ".gitignore": "out.txt\n"})
    for name in names:
        with open(os.fsencode(repo.root / "data") + b"/" + name, "wb") as handle:
            handle.write(name)
    return repo


@pytest.mark.parametrize("inputs", ["data", "data/*", "data/**", "data/**/*", "*/*"])
def test_an_input_name_that_is_not_utf8_is_refused(make: Callable[..., Repo], inputs: str) -> None:
    repo = with_names(make, inputs, b"\xfe", b"\xff")
    for command in ("run", "status"):
        result = repo.run(command)
        assert result.exit_code == 2, result.stderr
        assert (
            "gitcache: error: data/\\xfe: path is not valid UTF-8; a record holds input paths "
            "as UTF-8 text, so rename it\n"
        ) in result.stderr
    assert not (repo.root / "out.txt").exists() and not repo.refs()


def test_an_output_name_that_is_not_utf8_fails_the_step(make: Callable[..., Repo]) -> None:
    toml = '[steps.s]\noutputs = ["out"]\nrun = "mkdir -p out && touch \\"out/$(printf \'\\\\376\')\\""\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n"})
    result = repo.run("run")
    assert result.exit_code == 1, result.stderr
    assert (
        "gitcache: error: step 's' failed: out/\\xfe: path is not valid UTF-8; a record holds "
        "output paths as UTF-8 text, so rename it"
    ) in result.stderr
    assert not repo.refs("refs/gitcache/sig/")


def test_a_record_path_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ValueError, match=r"out/\\xff: path is not valid UTF-8"):
        check_relative_path(os.fsdecode(b"out/\xff"))
