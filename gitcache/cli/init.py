"""`gitcache init`."""

from __future__ import annotations

import click

from gitcache.cli.hooks import install_and_report
from gitcache.cli.main import Options, workflow_option
from gitcache.gitrepo import GitRepo
from gitcache.starter import STARTER_TOML
from gitcache.workflow import WORKFLOW_FILE


@click.command()
@workflow_option
@click.pass_obj
def init(options: Options) -> None:
    """Write a starter gitcache.toml (if there is none), install the hooks, say what next."""
    repo = GitRepo.discover(options.directory)
    path = options.workflow_file or repo.root / WORKFLOW_FILE
    path = options.directory / path  # a relative -f is taken from -C, as `run` reads it
    if path.exists():
        click.echo(f"{path} exists; leaving it as it is")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(STARTER_TOML)
        click.echo(f"wrote {path}")
    install_and_report(repo)
    click.echo("next: edit the steps, then `gitcache run`; `gitcache status` says what would run")


COMMANDS = [init]
