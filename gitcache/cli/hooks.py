"""`gitcache hooks install|uninstall|status`, and the hidden `gitcache hook NAME`."""

from __future__ import annotations

import os
import sys

import click

from gitcache import hook_events, hooks
from gitcache.cli.main import Options
from gitcache.cli.output import warn
from gitcache.gitrepo import GitRepo

_STATES = {
    "installed": "installed",
    "outdated": "installed, outdated (run `gitcache hooks install`)",
    "absent": "not installed",
    "foreign": "another hook (not gitcache's)",
}


def describe(hook: hooks.HookStatus) -> str:
    line = f"{hook.name:<22} {_STATES[hook.state]}"
    if hook.behind_pre_commit:
        line += f" as {hook.path.name}, behind pre-commit's hook"
    if hook.legacy:
        line += f"; runs {hook.name}{hooks.SAVED_SUFFIX} first"
    if hook.python is not None and not os.access(hook.python, os.X_OK):
        line += f"; its python {hook.python} is gone (run `gitcache hooks install`)"
    return line


def _rewrite_policy(repo: GitRepo) -> str:
    warnings: list[str] = []
    rewrite = hook_events.policy(repo, warnings).rewrite
    for message in warnings:
        warn(message)
    return rewrite


def install_and_report(repo: GitRepo) -> None:
    """Install the hooks the policy needs and say where (shared with `gitcache init`)."""
    before = {h.name: h for h in hooks.status(repo)}
    after = {h.name: h for h in hooks.install(repo, _rewrite_policy(repo))}
    changed = False
    for name, hook in after.items():
        old = before[name]
        if old.state == hook.state:
            continue
        changed = True
        if hook.state == "installed":
            kept = f" (kept the previous hook as {name}{hooks.SAVED_SUFFIX})"
            click.echo(f"installed {hook.path}{kept if hook.legacy and not old.legacy else ''}")
        else:
            click.echo(f'removed {hook.path} (needed only with rewrite = "block")')
    if not changed:
        click.echo(f"hooks already installed in {hooks.hooks_dir(repo)}")


@click.group(name="hooks")
def hooks_group() -> None:
    """Manage gitcache's git hooks (amend and rebase keep records linked)."""


@hooks_group.command()
@click.pass_obj
def install(options: Options) -> None:
    """Install the hooks into the repository's hooks directory (core.hooksPath honoured)."""
    install_and_report(GitRepo.discover(options.directory))


@hooks_group.command()
@click.pass_obj
def uninstall(options: Options) -> None:
    """Remove gitcache's hooks and restore the hooks that were there before."""
    repo = GitRepo.discover(options.directory)
    hooks.opt_out(repo)  # first: a choice that cannot be kept changes nothing
    removed = hooks.uninstall(repo)
    if not removed:
        click.echo(f"no gitcache hooks in {hooks.hooks_dir(repo)}")
    for hook in removed:
        restored = f" (put back the hook it kept, {hook.name}{hooks.SAVED_SUFFIX})"
        click.echo(f"removed {hook.path}{restored if hook.legacy else ''}")


@hooks_group.command(name="status")
@click.pass_obj
def status_command(options: Options) -> None:
    """What is installed, where."""
    repo = GitRepo.discover(options.directory)
    rewrite = _rewrite_policy(repo)
    click.echo(f"hooks directory: {hooks.hooks_dir(repo)}")
    click.echo(f"rewrite policy:  {rewrite}")
    needed = hooks.wanted(rewrite)
    for hook in hooks.status(repo):
        line = describe(hook)
        if hook.name not in needed and hook.state == "absent":
            line += ' (needed only with rewrite = "block")'
        elif hook.name in needed and hook.state != "installed":
            line += " (needed: run `gitcache hooks install`)"
        click.echo(line)


@click.command(
    name="hook",
    hidden=True,
    # git's own arguments pass through untouched: pre-rebase may get "--root"
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def hook(options: Options, name: str, args: tuple[str, ...]) -> None:
    """Run the slow path of hook NAME (called by the installed hook scripts)."""
    repo = GitRepo.discover(options.directory)
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    env = os.environ
    if name == "reference-transaction":
        outcome = hook_events.reference_transaction(repo, args[0] if args else "", stdin, env)
    elif name == "pre-rebase":
        upstream = args[0] if args else env.get("PRE_COMMIT_PRE_REBASE_UPSTREAM")
        branch = args[1] if len(args) > 1 else env.get("PRE_COMMIT_PRE_REBASE_BRANCH")
        outcome = hook_events.pre_rebase(repo, upstream, branch or None, env)
    elif name == "post-rewrite":
        kind = args[0] if args else env.get("PRE_COMMIT_REWRITE_COMMAND", "")
        outcome = hook_events.post_rewrite(repo, kind, stdin)
    else:
        warn(f"unknown hook {name!r}; nothing to do")
        return
    for message in outcome.warnings:
        warn(message)
    for message in outcome.notes:
        click.echo(f"gitcache: {message}", err=True)
    for message in outcome.errors:
        click.echo(f"gitcache: error: {message}", err=True)
    click.get_current_context().exit(outcome.status)


COMMANDS = [hooks_group, hook]
