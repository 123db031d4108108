"""The step graph: a step needs another when one of its inputs is, lies under, or
contains one of the other's outputs, or is a glob that could match a path at or
under one (or a directory above one)."""

from __future__ import annotations

import fnmatch
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from gitcache.errors import ConfigError

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not GLOB_CHARS.isdisjoint(pattern)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + "/")


def _component_matches(pattern: str, name: str) -> bool:
    """One path component against one pattern component, as Worktree.expand matches
    them: the name it spells (`x[1].csv`), or what its wildcards match."""
    if pattern == name or not is_glob(pattern):
        return pattern == name
    # glob's wildcards never match a leading dot unless the pattern starts with one.
    return not (name.startswith(".") and not pattern.startswith(".")) and (
        fnmatch.fnmatchcase(name, pattern)
    )


NO_MATCH, IF_DIRECTORY, MATCH = 0, 1, 2  # how surely an input reaches an output


def _reach(pattern: Sequence[str], path: Sequence[str], literal: bool = True) -> int:
    """How surely a declared input (components) reads what the output `path` holds.

    MATCH: the pattern matches the path or a directory above it, or some prefix of it
    matches the whole path through a literal last component (`gen/*.txt` and `gen`:
    the user named `gen` as a directory). IF_DIRECTORY: a wildcard matched the path's
    last component and the pattern goes on below it (`*/result.txt` and `summary.txt`):
    a match only if that output is a directory, which is known only once it exists.
    `**` matches zero or more components; wildcards skip dot files, as in `glob.glob`.

    The states (pattern position, whether the last component matched was spelled out)
    reachable after each component of `path`, as `_covers` does: no recursion per
    component (an output may nest deeper than Python's recursion limit), and no
    exponential search through `**/**/...`. The answer is the surest way through.
    """
    end = len(pattern)
    if "**" not in pattern:  # one way through (the common case, without the sets)
        spelled = literal
        for i, part in enumerate(path):
            if i == end:
                return MATCH
            head = pattern[i]
            if not _component_matches(head, part):
                return NO_MATCH
            spelled = head == part or not is_glob(head)
        return MATCH if len(path) == end or spelled else IF_DIRECTORY
    states = {(0, literal)}
    for part in path:
        todo = list(states)
        while todo:  # `**` may match no component
            i, spelled = todo.pop()
            if i < end and pattern[i] == "**" and (i + 1, spelled) not in states:
                states.add((i + 1, spelled))
                todo.append((i + 1, spelled))
        following: set[tuple[int, bool]] = set()
        for i, _spelled in states:
            if i == end:  # all of the pattern matched a directory above the output
                return MATCH
            head = pattern[i]
            if head == "**":
                if not part.startswith("."):
                    following.add((i, False))
            elif _component_matches(head, part):
                following.add((i + 1, head == part or not is_glob(head)))
        if not following:
            return NO_MATCH
        states = following
    # The whole output matched: by all of the pattern, or by a part of it that ends in
    # a spelled-out name (the output is that directory); else only if it is a directory.
    return max(MATCH if i == end or spelled else IF_DIRECTORY for i, spelled in states)


def _covers(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """All of `pattern` matches `path` or a directory above it: its expansion holds `path`.

    The pattern positions reachable after each component of `path`, not recursion per
    component: `path` is a file found under an output, which may nest deeper than
    Python's recursion limit. `**` matches zero or more components (no dot names).
    """
    end = len(pattern)

    def closure(found: set[int]) -> set[int]:  # `**` may match no component
        more = [i for i in found if i < end and pattern[i] == "**"]
        while more:
            i = more.pop() + 1
            if i not in found:
                found.add(i)
                if i < end and pattern[i] == "**":
                    more.append(i)
        return found

    states = closure({0})
    for part in path:
        if end in states:  # all of the pattern matched a directory above
            return True
        following: set[int] = set()
        for i in states:
            if i == end:
                continue
            if pattern[i] == "**":
                if not part.startswith("."):
                    following.add(i)
            elif _component_matches(pattern[i], part):
                following.add(i + 1)
        states = closure(following)
        if not states:
            return False
    return end in states


def reach(pattern: str, output: str) -> int:
    """MATCH, IF_DIRECTORY or NO_MATCH: can a declared input read what `output` holds."""
    return _reach(pattern.split("/"), output.split("/"))


def input_matches_output(pattern: str, output: str) -> bool:
    """Whether a declared input (path, directory or glob) can read what `output` holds.

    An output may be a directory whose files are known only after the step ran, so a
    glob can read it when it could match a path at or under the output, or a
    directory above it (component by component, as `glob.glob` expands it).
    """
    return reach(pattern, output) != NO_MATCH


def input_covers(pattern: str, path: str) -> bool:
    """Whether expanding the declared input gives the file `path` (when it exists)."""
    return _covers(pattern.split("/"), path.split("/"))


def literal_prefix(pattern: str) -> str:
    """The components of a glob before its first wildcard (`gen` for `gen/*.txt`)."""
    parts = []
    for part in pattern.split("/"):
        if is_glob(part):
            break
        parts.append(part)
    return "/".join(parts)


def _ancestors(path: str) -> list[str]:
    """The path itself, then each directory above it: a/b/c, a/b, a."""
    found = [path]
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        found.append(path)
    return found


def _reached(
    pattern: str, owner: Mapping[str, str], below: Mapping[str, list[str]], rank: Mapping[str, int]
) -> list[tuple[str, int]]:
    """The outputs an input can read, in declaration order, each with how surely."""
    # Outputs are indexed by path and by every directory above them: a plain input, or
    # a glob through its literal start, finds its outputs in O(depth) without a scan.
    base = literal_prefix(pattern) if is_glob(pattern) else pattern
    if base:
        matched = [a for a in _ancestors(base) if a in owner]
        matched = sorted(matched + below.get(base, []), key=rank.__getitem__)
    else:
        matched = list(owner)  # `*.txt`, `**/x`: any output
    if base == pattern:
        return [(out, MATCH) for out in matched]
    return [(out, how) for out in matched if (how := reach(pattern, out)) != NO_MATCH]


def _with_uncertain(
    needs: Mapping[str, list[str]], wanted: Sequence[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    """The needs plus the (step, producer) pairs that hold only if an output is a
    directory: all of them when that makes no cycle (the usual case), else those that
    agree with one run order: steps with fewer such pairs first, then as declared.
    A match that depends on an output being a directory never makes a cycle."""
    full = {name: list(found) for name, found in needs.items()}
    for name, producer in wanted:
        full[name].append(producer)
    try:
        StepGraph({n: tuple(f) for n, f in full.items()})._check_cycles("")
        return {n: tuple(f) for n, f in full.items()}
    except ConfigError:
        pass
    position = _run_order(needs, wanted)
    kept = {name: list(found) for name, found in needs.items()}
    for name, producer in wanted:
        if position[producer] < position[name]:
            kept[name].append(producer)
    return {n: tuple(f) for n, f in kept.items()}


def _run_order(needs: Mapping[str, list[str]], wanted: Sequence[tuple[str, str]]) -> dict[str, int]:
    """A position per step in one order that respects `needs` (Kahn's algorithm, taking
    first the steps with the fewest uncertain needs, then in declaration order)."""
    uncertain = Counter(name for name, _producer in wanted)
    declared = {name: i for i, name in enumerate(needs)}
    waiting = {name: len(found) for name, found in needs.items()}
    users: dict[str, list[str]] = {}
    for name, found in needs.items():
        for dep in found:
            users.setdefault(dep, []).append(name)
    ready = [(uncertain[n], declared[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    position: dict[str, int] = {}
    while ready:
        _count, _index, name = heapq.heappop(ready)
        position[name] = len(position)
        for user in users.get(name, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, (uncertain[user], declared[user], user))
    return position


def _raise_duplicate(label: str, name: str, out: str, owner: Mapping[str, str]) -> NoReturn:
    """Name the first earlier output that `out` overlaps (declaration order)."""
    for other_out, other in owner.items():
        if _under(out, other_out) or _under(other_out, out):
            raise ConfigError(overlap_message(label, other, other_out, name, out))
    raise AssertionError(f"no output overlaps {out}")  # the index said one does


def overlap_message(label: str, first: str, first_out: str, second: str, second_out: str) -> str:
    """Two declared outputs that are one path, or one inside the other."""
    if first_out == second_out:
        return f"{label}: steps {first!r} and {second!r} both declare output {first_out!r}"
    inner, outer = (
        (second_out, first_out) if _under(second_out, first_out) else (first_out, second_out)
    )
    if first == second:
        return f"{label}: step {first!r} declares output {inner!r} inside its output {outer!r}"
    return (
        f"{label}: steps {first!r} and {second!r} both declare output {inner!r} "
        f"(one declares {outer!r}, which holds it)"
    )


@dataclass(frozen=True)
class StepGraph:
    needs: Mapping[str, tuple[str, ...]]  # step -> steps it needs, in declaration order

    @classmethod
    def build(
        cls, label: str, steps: Mapping[str, tuple[Iterable[str], Iterable[str]]]
    ) -> StepGraph:
        # Outputs are indexed by path and by every directory above them, so an input finds
        # its producers in O(depth) instead of scanning every output of every step:
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
        needs: dict[str, list[str]] = {}
        uncertain: list[tuple[str, str]] = []  # (step, producer): only if an output is a dir
        for name, (inputs, _outputs) in steps.items():
            found = needs.setdefault(name, [])
            seen: set[str] = set()  # a step reading 1,000 sweep items' outputs: no list scans
            for pattern in inputs:
                for out, how in _reached(pattern, owner, below, rank):
                    # A step reading its own output is a cycle (`a -> a`), found below.
                    if how == MATCH and owner[out] not in seen:
                        seen.add(owner[out])
                        found.append(owner[out])
                    elif how == IF_DIRECTORY:
                        uncertain.append((name, owner[out]))
        graph = cls({name: tuple(found) for name, found in needs.items()})
        graph._check_cycles(label)
        wanted = [(n, p) for n, p in dict.fromkeys(uncertain) if p != n and p not in needs[n]]
        if wanted:
            graph = cls(_with_uncertain(needs, wanted))
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
