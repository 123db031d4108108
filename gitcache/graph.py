"""The step graph: a step needs another when one of its inputs is, lies under, or
contains one of the other's outputs (or a glob input matches one)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from gitcache.errors import ConfigError


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + "/")


def input_matches_output(pattern: str, output: str) -> bool:
    if any(c in pattern for c in "*?["):
        # fnmatch's `*` also crosses `/`, so a glob matches files under a matched directory.
        return fnmatch.fnmatchcase(output, pattern) or fnmatch.fnmatchcase(output, pattern + "/*")
    return _under(pattern, output) or _under(output, pattern)


def _ancestors(path: str) -> list[str]:
    """The path itself, then each directory above it: a/b/c, a/b, a."""
    found = [path]
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        found.append(path)
    return found


def _raise_duplicate(label: str, name: str, out: str, owner: Mapping[str, str]) -> NoReturn:
    """Name the first earlier output that `out` overlaps (declaration order)."""
    for other_out, other in owner.items():
        if _under(out, other_out) or _under(other_out, out):
            raise ConfigError(
                f"{label}: steps {other!r} and {name!r} both declare output "
                f"{out if out == other_out else other_out + ' / ' + out!r}"
            )
    raise AssertionError(f"no output overlaps {out}")  # the index said one does


@dataclass(frozen=True)
class StepGraph:
    needs: Mapping[str, tuple[str, ...]]  # step -> steps it needs, in declaration order

    @classmethod
    def build(
        cls, label: str, steps: Mapping[str, tuple[Iterable[str], Iterable[str]]]
    ) -> StepGraph:
        # Outputs are indexed by path and by every directory above them, so a plain input
        # finds its producers in O(depth) instead of scanning every output of every step:
        # building the graph stays linear in the number of steps (a no-op run pays for it).
        owner: dict[str, str] = {}
        below: dict[str, list[str]] = {}  # directory -> outputs under it, in declaration order
        for name, (_inputs, outputs) in steps.items():
            for out in outputs:
                if out in below or any(a in owner for a in _ancestors(out)):
                    _raise_duplicate(label, name, out, owner)
                owner[out] = name
                for parent in _ancestors(out)[1:]:
                    below.setdefault(parent, []).append(out)
        rank = {out: i for i, out in enumerate(owner)}
        needs: dict[str, tuple[str, ...]] = {}
        for name, (inputs, _outputs) in steps.items():
            found: list[str] = []
            for pattern in inputs:
                if any(c in pattern for c in "*?["):
                    matched = [o for o in owner if input_matches_output(pattern, o)]
                else:
                    matched = [a for a in _ancestors(pattern) if a in owner]
                    matched = sorted(matched + below.get(pattern, []), key=rank.__getitem__)
                for out in matched:
                    producer = owner[out]
                    if producer != name and producer not in found:
                        found.append(producer)
            needs[name] = tuple(found)
        graph = cls(needs)
        graph._check_cycles(label)
        return graph

    def _check_cycles(self, label: str) -> None:
        self._walk(self.needs, label)

    def order(self, targets: Iterable[str]) -> list[str]:
        """Targets and what they need, each after its needs (declaration order otherwise)."""
        return self._walk(targets, "")

    def _walk(self, roots: Iterable[str], label: str) -> list[str]:
        """Depth-first post-order from roots, with an explicit stack (chains may be long)."""
        result: list[str] = []
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in roots:
            if root in state:
                continue
            state[root] = 1
            path = [root]
            stack = [iter(self.needs[root])]
            while stack:
                for dep in stack[-1]:
                    seen = state.get(dep)
                    if seen == 1:
                        cycle = [*path[path.index(dep) :], dep]
                        raise ConfigError(f"{label}: steps form a cycle: {' -> '.join(cycle)}")
                    if seen is None:
                        state[dep] = 1
                        path.append(dep)
                        stack.append(iter(self.needs[dep]))
                        break
                else:
                    stack.pop()
                    done = path.pop()
                    state[done] = 2
                    result.append(done)
        return result
