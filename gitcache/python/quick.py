"""A Python step's record read straight from the repository's files (gitread.py).

The first call of a step in a new process would open the repository through libgit2
only to read one ref and a handful of small objects. When they are all loose (as
gitcache writes a small record) and the record holds no outputs, they are read here:
the signature's ref, its commit, the commit's tree, record.json (validated as any
record: `parse_record`) and, when asked, the result's blobs, each object checked
against its id. Anything else (a packed object, chunks, outputs, a record that does
not parse) is None or `NotQuick`: the caller then takes the full path through
libgit2, which reads the record again and says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitcache.errors import UnsafeRecord
from gitcache.gitread import GitDirs, commit_tree, read_loose, read_ref, tree_entries
from gitcache.latest import LATEST_FILE, read_file, step_ref
from gitcache.record import parse_record
from gitcache.store import CHUNKS_DIR, OUTPUTS_TREE, RECORD_FILE, StoredRecord, sig_ref


class NotQuick(Exception):
    """The record (or one of its files) is not readable here: use the full path."""


@dataclass(frozen=True)
class QuickRecord:
    stored: StoredRecord
    objects: str
    tree: dict[str, tuple[int, str]]

    def read(self, path: str) -> bytes:
        """The blob at `path` in the record's tree, or NotQuick."""
        entries = self.tree
        *dirs, name = path.split("/")
        for part in dirs:
            entry = entries.get(part)
            if entry is None:
                raise NotQuick(path)
            found = read_loose(self.objects, entry[1])
            subtree = tree_entries(found[1]) if found and found[0] == "tree" else None
            if subtree is None:
                raise NotQuick(path)
            entries = subtree
        entry = entries.get(name)
        found = None if entry is None else read_loose(self.objects, entry[1])
        if found is None or found[0] != "blob":
            raise NotQuick(path)
        return found[1]


def read_record(dirs: GitDirs, signature: str) -> QuickRecord | None:
    """The record filed under `signature` if it can be read here, else None."""
    objects = dirs.objects
    commit = read_ref(dirs.common_dir, sig_ref(signature))
    if commit is None:
        return None
    found = read_loose(objects, commit)
    tree_id = commit_tree(found[1]) if found and found[0] == "commit" else None
    tree = read_loose(objects, tree_id) if tree_id else None
    entries = tree_entries(tree[1]) if tree and tree[0] == "tree" else None
    # A record with chunks has its layout checked by `RecordStore.load`, and one with
    # outputs its outputs/ tree (format 3: the list of its outputs, outputtree.py).
    if entries is None or CHUNKS_DIR.rstrip("/") in entries or OUTPUTS_TREE in entries:
        return None
    entry = entries.get(RECORD_FILE)
    blob = None if entry is None else read_loose(objects, entry[1])
    if blob is None or blob[0] != "blob":
        return None
    try:
        record = parse_record(blob[1], f"record {commit[:12]}", list)
    except UnsafeRecord:
        return None
    if record.outputs or record.signature != signature:
        return None
    return QuickRecord(StoredRecord(commit, record), objects, entries)


def is_latest(dirs: GitDirs, step: str, commit: str) -> bool:
    """Whether `commit` is already the step's latest record in this worktree (latest.py)."""
    if dirs.linked:
        return read_file(Path(dirs.git_dir, "gitcache", LATEST_FILE)).get(step) == commit
    return read_ref(dirs.common_dir, step_ref(step)) == commit
