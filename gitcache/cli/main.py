"""The `gitcache` command group, error mapping and the shared options."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from gitcache import __version__
from gitcache.errors import EXIT_INTERRUPTED, EXIT_USAGE, GitcacheError, no_space
from gitcache.processes import Terminated, stopped_by

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, available to every command as ctx.obj."""

    directory: Path
    workflow_file: Path | None
    debug: bool

    def project(self, require_workflow: bool = True) -> Any:
        from gitcache.cli.output import note, warn
        from gitcache.project import Project

        return Project.open(self.directory, self.workflow_file, warn, require_workflow, note)


def error(message: str, hint: str | None = None) -> None:
    text = f"gitcache: error: {message}"
    if hint:
        text += f" ({hint})"
    click.echo(text, err=True)


# Where each command lives (one module per command or group of related commands),
# in the order `gitcache --help` lists them.
# A command's module is imported only when that command is invoked: a no-op
# `gitcache run` should cost little more than Python's start-up and the dependencies'
# imports, so it does not import every other command (docs/benchmarks.md).
COMMAND_MODULES = {
    "run": "gitcache.cli.run",
    "status": "gitcache.cli.status",
    "log": "gitcache.cli.records",
    "show": "gitcache.cli.records",
    "diff": "gitcache.cli.diff",
    "restore": "gitcache.cli.restore",
    "remove": "gitcache.cli.remove",
    "gc": "gitcache.cli.gc",
    "push": "gitcache.cli.sharing",
    "fetch": "gitcache.cli.sharing",
    "hooks": "gitcache.cli.hooks",
    "hook": "gitcache.cli.hooks",
    "init": "gitcache.cli.init",
    "demo": "gitcache.cli.demo",
}


class GitcacheGroup(click.Group):
    """Turns typed errors into one line on stderr and the documented exit code.

    Commands are loaded on first lookup from COMMAND_MODULES.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            with _quick_import():
                loaded = importlib.import_module(module)
            for command in loaded.COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] == "run" and "run" not in self.commands:
            # Big inputs hashed on a thread while the engine is imported (prefetch.py).
            from gitcache.prefetch import run_arguments

            run_arguments(ctx.params, args[1:])
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMAND_MODULES)  # in the order a user meets them

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:  # the global options (`gitcache --bogus`) are parsed here
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            _click_error(exc, info_name or "gitcache")

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a command's own options and arguments
            _click_error(exc, ctx.command_path)
        except GitcacheError as exc:
            if debug:
                import traceback  # here: only --debug prints one

                traceback.print_exc()
            error(exc.message, exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("gitcache: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as exc:  # SIGTERM/SIGHUP outside a step's command (processes.py)
            error(stopped_by(exc.signum))
            ctx.exit(128 + exc.signum)
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, traceback only on request
            if debug:
                import traceback  # here: only --debug prints one

                traceback.print_exc()
            if no_space(exc):  # a full disk wherever gitcache wrote (refs, state): no bug
                assert isinstance(exc, OSError)
                where = f"cannot write {exc.filename}" if exc.filename else "cannot write"
                error(f"{where}: {exc.strerror or exc}", "free some disk space and run again")
                ctx.exit(EXIT_USAGE)
            error(f"internal error: {exc!r}", "run with --debug for the traceback")
            ctx.exit(EXIT_USAGE)


def _click_error(exc: click.ClickException, command_path: str) -> NoReturn:
    """click's own errors (an unknown option, a missing argument, a bad choice) in the
    documented form: one line, `gitcache: error: ...`, the usage hint in parentheses."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc  # `gitcache` alone: the help text, as click shows it
    text = " ".join(exc.format_message().split())
    text = (text[:1].lower() + text[1:]).rstrip(".")
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        command_path = exc.ctx.command_path  # the subcommand's own, when it has one
    error(text, f"see '{command_path} -h'")
    raise click.exceptions.Exit(exc.exit_code)


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
    from gitcache import forkedwriter

    forkedwriter.allow()  # this process is the command: a restore may fork a writer
    ctx.obj = Options(directory.resolve(), workflow_file, debug)


@contextmanager
def _quick_import() -> Iterator[None]:
    """Import command modules cheaply: the cyclic garbage collector would run over and
    over while their classes are created, and again over all of them when the
    interpreter exits. It is paused during the import, and what the import made is
    then frozen (moved to the permanent generation, see gc.freeze): those objects
    live until exit anyway, and later collections, the one at exit included, no
    longer walk them (docs/benchmarks.md)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


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


def params_option(help_text: str) -> Callable[[F], F]:
    """`-p/--param NAME=VALUE`, repeatable, passed as `params` (a tuple of strings)."""
    return click.option(
        "-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help=help_text
    )
