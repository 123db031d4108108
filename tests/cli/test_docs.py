"""docs/commands.md lists every option of the commands it documents."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from gitcache.cli.main import main

DOC = (Path(__file__).resolve().parents[2] / "docs" / "commands.md").read_text()
DOCUMENTED = [
    "run",
    "status",
    "log",
    "show",
    "diff",
    "restore",
    "remove",
    "gc",
    "init",
    "demo",
    "hooks",
    "push",
    "fetch",
]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_option_is_documented(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert f"## gitcache {name}\n" in DOC
    section = DOC.split(f"## gitcache {name}\n", 1)[1].split("\n## ", 1)[0]
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "workflow_file"):
            continue
        assert any(f"{opt} " in section or f"{opt}`" in section for opt in param.opts), (
            f"{name}: {'/'.join(param.opts)} is not documented"
        )


def test_every_command_is_documented() -> None:
    ctx = click.Context(main)
    commands = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    visible = {name for name, command in commands.items() if command and not command.hidden}
    assert visible == set(DOCUMENTED)
