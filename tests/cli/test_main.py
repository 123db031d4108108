"""The command registry: every command module's commands are reachable by name."""

from __future__ import annotations

import importlib

import click
from click.testing import CliRunner

from gitcache.cli.main import COMMAND_MODULES, main


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


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr
