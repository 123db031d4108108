"""The command registry: every command module's commands are reachable by name."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gitcache.cli.main import COMMAND_MODULES, main
from tests.helpers import Repo, gitcache_env


def test_every_command_of_every_module_is_registered() -> None:
    for module_name in set(COMMAND_MODULES.values()):
        module = importlib.import_module(module_name)
        for command in module.COMMANDS:
            assert COMMAND_MODULES.get(command.name or "") == module_name, command.name


def test_names_resolve_to_their_commands() -> None:
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["frobnicate"], "no such command 'frobnicate' (see 'gitcache -h')"),
        (["--bogus", "run"], "no such option '--bogus' (see 'gitcache -h')"),
        (["run", "--x"], "no such option '--x' (see 'gitcache run -h')"),
        (["show"], "missing argument 'RECORD|STEP' (see 'gitcache show -h')"),
        (
            ["run", "-s", "bogus"],
            "invalid value for '-s' / '--signature-mode': 'bogus' is not one of 'default', "
            "'ignore', 'force', 'build', 'assert', 'skip' (see 'gitcache run -h')",
        ),
        (
            ["log", "-n", "0"],
            "invalid value for '-n' / '--max-count': 0 is not in the range x>=1 "
            "(see 'gitcache log -h')",
        ),
        (["hooks", "bogus"], "no such command 'bogus' (see 'gitcache hooks -h')"),
        (["-C"], "option '-C' requires an argument (see 'gitcache -h')"),
    ],
)
def test_click_usage_errors_are_one_line(args: list[str], line: str) -> None:
    result = CliRunner().invoke(main, args, prog_name="gitcache")
    assert result.exit_code == 2
    assert result.stderr == f"gitcache: error: {line}\n"
    assert result.stdout == ""


def test_no_command_shows_the_help() -> None:
    result = CliRunner().invoke(main, [], prog_name="gitcache")
    assert "Commands:" in result.output and "gitcache: error" not in result.output


def test_python_m_gitcache_names_itself_gitcache() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gitcache", "run", "--x"],
        capture_output=True,
        text=True,
        env=gitcache_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "gitcache: error: no such option '--x' (see 'gitcache run -h')\n"


def test_shell_completion_script_and_lazy_commands() -> None:
    runner = CliRunner()
    script = runner.invoke(
        main, [], prog_name="gitcache", env={"_GITCACHE_COMPLETE": "bash_source"}
    )
    assert script.exit_code == 0
    assert "_gitcache_completion()" in script.stdout and "complete -o nosort" in script.stdout
    words = runner.invoke(
        main,
        [],
        prog_name="gitcache",
        env={"_GITCACHE_COMPLETE": "bash_complete", "COMP_WORDS": "gitcache ru", "COMP_CWORD": "1"},
    )
    assert words.stdout.split() == ["plain,run"]
    options = runner.invoke(
        main,
        [],
        prog_name="gitcache",
        env={
            "_GITCACHE_COMPLETE": "bash_complete",
            "COMP_WORDS": "gitcache run --sig",
            "COMP_CWORD": "2",
        },
    )
    assert options.stdout.split() == ["plain,--signature-mode"]


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["status"],
        ["log"],
        ["show", "a"],
        ["diff", "a", "a"],
        ["restore", "a"],
        ["remove", "a"],
        ["gc", "--keep", "1"],
        ["push", "a"],
    ],
)
def test_f_after_the_command_names_the_workflow_file(
    make: Callable[..., Repo], args: list[str]
) -> None:
    repo = make({"other/flow.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > a.txt"\n'})
    result = repo.run(*args, "-f", "missing.toml")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"gitcache: error: no missing.toml in {repo.root}")
    assert repo.run(*args, "-f", "other/flow.toml").stderr.count("no missing.toml") == 0


def test_init_f_after_the_command_writes_that_file(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make({"README": "x\n"})
    result = CliRunner().invoke(main, ["-C", str(repo.root), "init", "-f", "flows/one.toml"])
    assert result.exit_code == 0, result.output
    assert (repo.root / "flows/one.toml").read_text().startswith("#")
    assert not (repo.root / "gitcache.toml").exists()
    assert repo.run("run", "-f", "flows/one.toml", "-n").exit_code == 0


def test_the_documented_completion_line_produces_the_script() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs/commands.md").read_text()
    assert 'eval "$(_GITCACHE_COMPLETE=bash_source gitcache)"' in doc
    done = subprocess.run(
        [sys.executable, "-m", "gitcache"],
        capture_output=True,
        text=True,
        env={**gitcache_env(), "_GITCACHE_COMPLETE": "bash_source"},
        check=False,
    )
    assert done.returncode == 0 and "_gitcache_completion()" in done.stdout
