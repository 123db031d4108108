"""Rewritten commits: which records answer for a commit after amend and rebase.

`post-rewrite` gives old -> new pairs. For each pair whose old commit has records
(its own, or carried over to it by an earlier rewrite) gitcache creates
`refs/gitcache/rewritten/<old>/<new>`, pointing to a small commit whose parents
are old and new and whose tree holds `rewrite.json` (docs/format.md). The ref name
carries the whole mapping, so reading it needs no object; a ref is created once and
never moved, so two clones that fetch each other's mappings never conflict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from gitcache.gitrepo import MODE_FILE, GitRepo, RefConflict, RefUpdate, TreeEntry
from gitcache.locks import writing_objects
from gitcache.record import is_oid
from gitcache.store import REF_ROOT, SIG_PREFIX

REWRITTEN_PREFIX: Final = REF_ROOT + "rewritten/"
MAPPING_FILE: Final = "rewrite.json"
MAPPING_FORMAT: Final = 1

Kind = Literal["amend", "rebase"]


def rewritten_ref(old: str, new: str) -> str:
    return f"{REWRITTEN_PREFIX}{old}/{new}"


@dataclass(frozen=True)
class Rewrite:
    old: str
    new: str


def parse_rewritten_ref(name: str) -> Rewrite | None:
    """The pair a ref name of the shape `rewritten_ref` gives (two full commit ids), else None."""
    old, _, new = name.removeprefix(REWRITTEN_PREFIX).partition("/")
    if not name.startswith(REWRITTEN_PREFIX) or not (is_oid(old) and is_oid(new)):
        return None
    return Rewrite(old, new)


class RewriteMap:
    """Every stored old -> new pair, read from ref names alone."""

    def __init__(self, pairs: Iterable[Rewrite]) -> None:
        self.pairs = list(pairs)
        self._before: dict[str, set[str]] = {}
        for pair in self.pairs:
            self._before.setdefault(pair.new, set()).add(pair.old)

    @classmethod
    def load(cls, repo: GitRepo) -> RewriteMap:
        pairs = [parse_rewritten_ref(name) for name, _target in repo.refs(REWRITTEN_PREFIX)]
        return cls(pair for pair in pairs if pair is not None)  # other names are not ours

    def successors(self, old: str) -> list[str]:
        """What `old` was rewritten into, directly."""
        return sorted(p.new for p in self.pairs if p.old == old)

    def origins(self, commit: str) -> set[str]:
        """Every commit that became `commit` through one or more rewrites."""
        found: set[str] = set()
        todo = [commit]
        while todo:
            for old in self._before.get(todo.pop(), ()):
                if old not in found and old != commit:
                    found.add(old)
                    todo.append(old)
        return found


def answering_sources(repo: GitRepo, commit: str) -> set[str]:
    """The commit and every commit that amend or rebase turned into it."""
    return {commit} | RewriteMap.load(repo).origins(commit)


def records_by_source(repo: GitRepo) -> dict[str, list[str]]:
    """Source commit -> record commits made there (a record's parent is its source).

    Reads one commit header per record and no record.json: cheap enough for the rare
    hook that needs it, and never wrong about what keeps a commit alive.
    """
    found: dict[str, list[str]] = {}
    for _name, record in repo.refs(SIG_PREFIX):
        parents = repo.commit_parents(record)
        if parents:
            found.setdefault(parents[0], []).append(record)
    return found


class CommitRecords:
    """Which records answer for a commit: made there, or carried over by rewrites."""

    def __init__(self, repo: GitRepo) -> None:
        self.by_source = records_by_source(repo)
        self.rewrites = RewriteMap.load(repo)

    def sources(self, commit: str) -> list[str]:
        """The commit and every commit rewritten into it, that have records."""
        candidates = [commit, *sorted(self.rewrites.origins(commit))]
        return [c for c in candidates if c in self.by_source]

    def records(self, commit: str) -> list[str]:
        return [r for source in self.sources(commit) for r in self.by_source[source]]


def record_rewrites(repo: GitRepo, pairs: Sequence[Rewrite], kind: Kind) -> list[Rewrite]:
    """Store the pairs whose old commit has records; return those newly stored."""
    index = CommitRecords(repo)
    wanted = [
        p
        for p in dict.fromkeys(pairs)
        if p.old != p.new and index.sources(p.old) and repo.ref_target(_ref(p)) is None
    ]
    if not wanted:
        return []
    # The mapping commits are objects no ref holds until the transaction: no
    # `gitcache gc --prune` in between (locks.py).
    with writing_objects(repo.state_dir, repo.on_wait):
        return _store_mappings(repo, wanted, kind)


def _store_mappings(repo: GitRepo, wanted: list[Rewrite], kind: Kind) -> list[Rewrite]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    updates = [RefUpdate(_ref(p), _mapping_commit(repo, p, kind, stamp), None) for p in wanted]
    try:
        repo.update_refs(updates, message=f"gitcache: {kind}")
    except RefConflict:
        # Another process stored some of them first: keep ours one by one.
        stored = []
        for pair, update in zip(wanted, updates, strict=True):
            try:
                repo.update_refs([update], message=f"gitcache: {kind}")
                stored.append(pair)
            except RefConflict:
                continue
        return stored
    return wanted


def _ref(pair: Rewrite) -> str:
    return rewritten_ref(pair.old, pair.new)


def _mapping_commit(repo: GitRepo, pair: Rewrite, kind: Kind, stamp: str) -> str:
    """A commit holding rewrite.json, child of old and new so that both stay reachable."""
    doc = {"format": MAPPING_FORMAT, "kind": kind, "old": pair.old, "new": pair.new, "at": stamp}
    blob = repo.write_blob((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    tree = repo.write_tree([TreeEntry(MAPPING_FILE, blob, MODE_FILE)])
    message = f"gitcache: {kind} {pair.old[:12]} -> {pair.new[:12]}\n"
    return repo.write_commit(tree, [pair.old, pair.new], message)
