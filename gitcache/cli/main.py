"""The `gitcache` command group, error mapping and the shared options."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from gitcache import __version__
from gitcache.errors import EXIT_INTERRUPTED, EXIT_USAGE, GitcacheError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, available to every command as ctx.obj."""

    directory: Path
    workflow_file: Path | None
    debug: bool

    def project(self) -> Any:
        from gitcache.cli.output import warn
        from gitcache.project import Project

        return Project.open(self.directory, self.workflow_file, warn)


def error(message: str, hint: str | None = None) -> None:
    text = f"gitcache: error: {message}"
    if hint:
        text += f" ({hint})"
    click.echo(text, err=True)


class GitcacheGroup(click.Group):
    """Turns typed errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except GitcacheError as exc:
            if debug:
                traceback.print_exc()
            error(exc.message, exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("gitcache: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, traceback only on request
            if debug:
                traceback.print_exc()
            error(f"internal error: {exc!r}", "run with --debug for the traceback")
            ctx.exit(EXIT_USAGE)


@click.group(cls=GitcacheGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitcache")
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if started in this directory.",
)
@click.option(
    "-f",
    "--file",
    "workflow_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Workflow file (default: gitcache.toml at the repository root).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, directory: Path, workflow_file: Path | None, debug: bool) -> None:
    """Cache and record workflow steps in git."""
    ctx.obj = Options(directory.resolve(), workflow_file, debug)


def workflow_option(func: F) -> F:
    """`-f FILE` also after the command name (`gitcache run -f other.toml`)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.find_object(Options).workflow_file = value  # type: ignore[union-attr]

    return click.option(
        "-f",
        "--file",
        "workflow_file",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=remember,
        help="Workflow file.",
    )(func)


def _register() -> None:
    # One module per command (or group of closely related commands).
    from gitcache.cli import (
        demo,
        diff,
        gc,
        hooks,
        init,
        records,
        remove,
        restore,
        run,
        sharing,
        status,
    )

    for module in (run, status, records, init, demo, remove, restore, gc, diff, hooks, sharing):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
