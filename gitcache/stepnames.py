"""Step names: the one rule, for gitcache.toml and for record.json.

A step's name becomes one component of a ref name (`refs/gitcache/step/<name>`), so
it must be a valid component by git's rules (`git check-ref-format`), written with
a small alphabet (SPEC §2: letters, digits, `.`, `_`, `-`). A name git refuses
would make `git fsck` report errors and `git gc` fail.
"""

from __future__ import annotations

import re

_ALPHABET = re.compile(r"^[A-Za-z0-9._-]+$")


def ref_component_problem(name: str) -> str | None:
    """Why `name` is not a safe one-component git ref name (None: it is).

    git's rules for a component (no leading `.`, no `..`, no trailing `.` or `.lock`;
    `@{`, `~`, `^`, `:`, `?`, `*`, `[`, `\\`, spaces and controls are outside the
    alphabet), plus no leading `-`, which would read as an option on a command line.
    """
    if not _ALPHABET.match(name):
        return "use only letters, digits, '.', '_' and '-'"
    if name.startswith((".", "-")):
        return "it may not start with '.' or '-'"
    if ".." in name:
        return "it may not contain '..'"
    if name.endswith("."):
        return "it may not end with '.'"
    if name.endswith(".lock"):
        return "it may not end with '.lock'"
    return None


def check_step_name(name: str) -> str:
    """The name, if it is a valid step name; ValueError saying why not."""
    why = ref_component_problem(name)
    if why is not None:
        raise ValueError(
            f"invalid step name {name!r}: {why} (it names the git ref refs/gitcache/step/{name})"
        )
    return name
