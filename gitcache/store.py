"""Records as git commits under refs/gitcache/ (docs/format.md).

A record commit's tree holds `record.json`, `outputs/<worktree path>` and
`logs/stdout`, `logs/stderr`; its parent is the commit that ran the step. A file over
the chunk threshold is not at its path but at `chunks/<path>/00000000`, ... (record
format 2). Objects are written first and the refs last, in one reference transaction.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from gitcache.errors import (
    GitcacheError,
    RecordNotFound,
    RepositoryError,
    StepFailed,
    UnsafeRecord,
    command_line_text,
)
from gitcache.gitrepo import MODE_FILE, MODE_TREE, GitRepo, RefConflict, RefUpdate, TreeEntry
from gitcache.latest import ITEM_PREFIX as ITEM_PREFIX  # re-exported: refs/gitcache/item/
from gitcache.latest import STEP_PREFIX as STEP_PREFIX  # re-exported: refs/gitcache/step/
from gitcache.latest import LatestRecords, latest_key
from gitcache.latest import item_ref as item_ref
from gitcache.latest import step_ref as step_ref
from gitcache.objects.stored import StoredFile
from gitcache.outputtree import read_outputs
from gitcache.record import CHUNKED, RECORD_JSON_MAX, OutputFile, Record, is_oid, parse_record
from gitcache.recordindex import RecordIndex, RecordSummary, record_outputs

REF_ROOT: Final = "refs/gitcache/"
SIG_PREFIX: Final = REF_ROOT + "sig/"
# STEP_PREFIX, step_ref, ITEM_PREFIX, item_ref (latest.py): the main worktree's latest
# record of each step and of each sweep item.
# A second record for a signature that already has one here (fetched from a remote
# where the step ran too): refs/gitcache/alt/<2 hex>/<signature>/<record commit>.
ALT_PREFIX: Final = REF_ROOT + "alt/"
RECORD_FILE: Final = "record.json"
OUTPUTS_DIR: Final = "outputs/"
OUTPUTS_TREE: Final = OUTPUTS_DIR.rstrip("/")
CHUNKS_DIR: Final = "chunks/"
LOG_STREAMS: Final = ("stdout", "stderr")
_SIG_NAME = re.compile(r"^refs/gitcache/sig/([0-9a-f]{2})/(\1[0-9a-f]{62})$")
_ALT_NAME = re.compile(
    r"^refs/gitcache/alt/([0-9a-f]{2})/(\1[0-9a-f]{62})/([0-9a-f]{40}(?:[0-9a-f]{24})?)$"
)


def sig_ref(signature: str) -> str:
    return f"{SIG_PREFIX}{signature[:2]}/{signature}"


def alt_ref(signature: str, commit: str) -> str:
    return f"{ALT_PREFIX}{signature[:2]}/{signature}/{commit}"


def parse_sig_ref(name: str) -> str | None:
    """The signature a ref name of the shape `sig_ref` gives, else None."""
    match = _SIG_NAME.match(name)
    return None if match is None else match[2]


def parse_alt_ref(name: str) -> tuple[str, str] | None:
    """(signature, commit) of a ref name of the shape `alt_ref` gives, else None."""
    match = _ALT_NAME.match(name)
    return None if match is None else (match[2], match[3])


class StoredRecord:
    """A record and the id of the commit that holds it.

    `verified` is False when only record.json was read (`lookup(quick=True)`): the tree
    has not been checked against it yet; `RecordStore.verified` does that before a
    restore. A record a seal vouches for (`RecordStore.sealed`) is read only when
    first used: a no-op over a 50,000-file output never parses its record.json.
    """

    __slots__ = ("_commit", "_read", "_record", "_signature", "_write", "chunks", "verified")

    def __init__(
        self,
        commit: str | None,
        record: Record | None,
        verified: bool = True,
        *,
        read: Callable[[], Record] | None = None,
        signature: str | None = None,
        chunks: Mapping[str, tuple[str, ...]] | None = None,
        write: Callable[[], str] | None = None,
    ) -> None:
        if record is None and read is None:
            raise TypeError("StoredRecord needs a record or a way to read it")
        if commit is None and write is None:
            raise TypeError("StoredRecord needs a commit or a way to write it")
        self._commit = commit
        # A sweep item's record whose objects a RefBatch writes later (`defer`): its
        # commit is known once they are, at the latest when asked for.
        self._write = write
        self.verified = verified
        # Output path -> its chunk blob ids in order, for outputs stored in chunks
        # (checked by `load`; empty when not verified).
        self.chunks: Mapping[str, tuple[str, ...]] = {} if chunks is None else chunks
        self._record = record
        self._read = read
        self._signature = signature if record is None else record.signature

    @property
    def commit(self) -> str:
        if self._commit is None:
            assert self._write is not None
            self._commit = self._write()
        return self._commit

    @property
    def record(self) -> Record:
        if self._record is None:
            assert self._read is not None
            self._record = self._read()
        return self._record

    @property
    def parsed(self) -> Record | None:
        """The record if record.json was read already, without reading it."""
        return self._record

    @property
    def short(self) -> str:
        return (self._signature or self.record.signature)[:12]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredRecord):
            return NotImplemented
        return (self.commit, self.verified, self.chunks, self.record) == (
            other.commit,
            other.verified,
            other.chunks,
            other.record,
        )

    def __hash__(self) -> int:
        return hash(self.commit)

    def __repr__(self) -> str:
        return f"StoredRecord(commit={self.commit!r}, verified={self.verified!r})"


@dataclass(frozen=True)
class NewRecord:
    """What the runner hands to the store: the record and the files to put beside it."""

    record: Record  # its outputs' blobs (and chunks) already written
    logs: dict[str, Path]  # stream name -> captured file
    extra: Sequence[TreeEntry] = ()  # further tree entries (e.g. the dirty worktree snapshot)
    # A record whose outputs this one's mostly are, the very OutputFile objects (`-s
    # build` after a few files changed): its outputs/ tree is edited (RecordStore._edited).
    like: StoredRecord | None = None


class RecordStore:
    def __init__(self, repo: GitRepo, warn: Callable[[str], None] | None = None) -> None:
        self.repo = repo
        self._warn_to = warn or (lambda _msg: None)
        self._warned: set[str] = set()
        self._index: RecordIndex | None = None
        self._latest = LatestRecords(repo)  # this worktree's
        # Records whose record.json leaves the list of outputs to the tree (parsed from
        # it: `load` need not check the tree against it again).
        self._from_tree: set[str] = set()
        self._as_written: set[str] = set()  # of those, the ones whose trees git could write

    def _warn(self, message: str) -> None:
        """Say it once per command: one bad record is looked up by several steps and
        modes (the quick read, the full one, the latest pointer)."""
        if message not in self._warned:
            self._warned.add(message)
            self._warn_to(message)

    # -- reading ------------------------------------------------------------------

    def load(self, commit: str, parsed: Record | None = None) -> StoredRecord:
        """Parse and validate the record held by a commit (raises UnsafeRecord).

        `parsed`: its record.json, already parsed from this commit (a quick look-up's),
        so a 50,000-output record is not parsed twice; the tree is checked all the same.
        """
        tree = self.repo.commit_tree(commit)
        record = parsed
        if record is None:
            data = self._record_json(commit, tree)
            if data is None:
                raise UnsafeRecord(f"record commit {commit[:12]} has no {RECORD_FILE}")
            record = self._parse(commit, data, tree)
        if commit not in self._from_tree:  # a list read from the tree matches it
            self._check_listed(commit, tree, record)
        chunks = ChunkLayout(self.repo, tree, commit[:12])
        found: dict[str, tuple[str, ...]] = {}
        for out in record.outputs:
            if out.chunks is not None:
                ids = chunks.take(OUTPUTS_DIR + out.path, out.chunks, out.size)
                found[out.path] = ids
        chunks.take_rest(_other_chunked(record.python is not None))
        return StoredRecord(commit, record, chunks=found)

    def _parse(self, commit: str, data: bytes, tree: str | None = None) -> Record:
        """Parse a record's record.json, the outputs of format 3 read from its tree."""
        where = f"record {commit[:12]}"

        def whole() -> list[OutputFile]:
            self._from_tree.add(commit)  # a commit never changes: nor does how it is read
            top = self.repo.tree_entry(tree or self.repo.commit_tree(commit), OUTPUTS_TREE)
            if top is not None and top.mode != MODE_TREE:
                raise UnsafeRecord(f"{where}: {OUTPUTS_TREE} is not a directory")
            found, as_written = read_outputs(self.repo, None if top is None else top.oid, where)
            if as_written:
                self._as_written.add(commit)
            return found

        return parse_record(data, where, whole)

    def sizes_read(self, stored: StoredRecord) -> bool:
        """Whether this store read the record's outputs stored whole from its tree
        (format 3): each size is then its blob's header's, so each is a blob of that
        size in the repository, and need not be looked up again."""
        return stored.commit in self._from_tree

    def _check_listed(self, commit: str, tree: str, record: Record) -> None:
        """Every output the record lists is in the tree as it says."""
        # One walk of outputs/ rather than a path lookup per output: a lookup scans its
        # directory, so 10,000 outputs in one directory would cost seconds.
        subtree = self.repo.tree_entry(tree, OUTPUTS_TREE) if record.outputs else None
        held = (
            {}
            if subtree is None or subtree.mode != MODE_TREE
            else {e.path: e for e in self.repo.walk_tree(subtree.oid)}
        )
        for out in record.outputs:
            stored = held.get(out.path)
            if out.chunks is not None:
                if stored is not None:
                    raise UnsafeRecord(
                        f"record {commit[:12]}: outputs/{out.path} is there, but record.json "
                        f"says it is stored in {out.chunks} chunks"
                    )
            elif stored is None or stored.oid != out.blob or stored.mode != out.mode:
                raise UnsafeRecord(
                    f"record {commit[:12]}: outputs/{out.path} does not match record.json"
                )

    def _record_json(self, commit: str, tree: str | None = None) -> bytes | None:
        """A record's record.json (None if it has none), its size checked from the
        object's header before it is read: a fetched one may be of any size
        (RECORD_JSON_MAX). Raises UnsafeRecord when it is too big."""
        entry = self.repo.tree_entry(tree or self.repo.commit_tree(commit), RECORD_FILE)
        if entry is None or entry.mode == MODE_TREE:
            return None
        header = self.repo.read_header(entry.oid)
        if header is None or header[0] != "blob":
            raise RepositoryError(
                f"object {entry.oid} ({RECORD_FILE} of commit {commit[:12]}) is missing from "
                f"{self.repo.git_dir}; `git fsck` lists what else is"
            )
        if header[1] > RECORD_JSON_MAX:
            raise UnsafeRecord(
                f"record {commit[:12]}: its {RECORD_FILE} is {header[1]:,} bytes, more than "
                f"the {RECORD_JSON_MAX >> 20} MiB gitcache reads"
            )
        return self.repo.read_blob(entry.oid)

    def lookup(
        self, signature: str, quick: bool = False, step: str | None = None
    ) -> StoredRecord | None:
        """The record of a signature; a corrupt one is a miss with a warning, and so is
        one of another step than `step` (when given).

        `quick` reads and validates record.json only, leaving the check that the tree
        holds the outputs it names for `verified` (a no-op compares blob ids and writes
        nothing, so it need not walk the tree; anything that restores must verify).
        """
        commit = self.repo.ref_target(sig_ref(signature))
        return None if commit is None else self._usable(commit, signature, quick, step)

    def sig_commit(self, signature: str) -> str | None:
        """The commit the signature's ref names (one ref read), not yet read or checked."""
        return self.repo.ref_target(sig_ref(signature))

    def usable(self, commit: str, signature: str, step: str | None = None) -> StoredRecord | None:
        """`lookup(signature, quick=True, step=step)` once the ref was read (`sig_commit`)."""
        return self._usable(commit, signature, True, step)

    def sealed(self, commit: str, signature: str) -> StoredRecord:
        """The record of a commit that a seal (statcache.py) says is the signature's and
        matches the worktree: record.json is read and validated when first used."""

        def read() -> Record:
            return self._parse(commit, self._record_json(commit) or b"")

        return StoredRecord(commit, None, False, read=read, signature=signature)

    def verified(self, stored: StoredRecord) -> StoredRecord:
        """The record fully loaded and checked (raises UnsafeRecord)."""
        if stored.verified:
            return stored
        return self.load(stored.commit, stored.parsed)

    def _quick(self, commit: str) -> StoredRecord | None:
        try:
            data = self._record_json(commit)
        except GitcacheError:
            data = None
        if data is None:
            return self._load_or_warn(commit)  # names what is wrong
        try:
            return StoredRecord(commit, self._parse(commit, data), False)
        except UnsafeRecord as exc:
            self._warn(f"ignoring unreadable record: {exc.message}")
            return None

    def _usable(
        self, commit: str, signature: str, quick: bool = False, step: str | None = None
    ) -> StoredRecord | None:
        stored = self._quick(commit) if quick else self._load_or_warn(commit)
        if stored is not None and stored.record.signature != signature:
            # A fetched ref may point at another signature's record: never a silent wrong hit.
            self._warn(
                f"ignoring record {commit[:12]}: it is for signature "
                f"{stored.record.signature[:12]}, not {signature[:12]}"
            )
            return None
        if stored is not None and step is not None and stored.record.step != step:
            # The step is not part of the signature: a record that says another step would
            # be listed, expired and trusted as that step's (trust.check_step).
            self._warn(
                f"ignoring record {commit[:12]}: it is filed under the signature "
                f"{signature[:12]} of step {step!r}, but its record.json says step "
                f"{stored.record.step!r} (a renamed step runs once under its new name)"
            )
            return None
        return stored

    def latest(self, step: str, item: Mapping[str, Any] | None = None) -> StoredRecord | None:
        """The latest record of a step, or of one item of a sweep step, in this worktree
        (latest.py)."""
        commit = self._latest.get(latest_key(step, item))
        return None if commit is None else self._load_or_warn(commit)

    def load_or_none(self, commit: str) -> StoredRecord | None:
        """The record of a commit, or None with a warning when it cannot be read."""
        return self._load_or_warn(commit)

    def _load_or_warn(self, commit: str) -> StoredRecord | None:
        try:
            return self.load(commit)
        except UnsafeRecord as exc:
            self._warn(f"ignoring unreadable record: {exc.message}")
            return None

    def summaries(self) -> list[RecordSummary]:
        """A summary of every record a signature ref names, through the record index.

        A record the index does not know is read once (record.json only, checked for
        shape); one that does not look right is loaded fully, which warns and skips it.
        """
        index = self._index_of()
        found: list[RecordSummary] = []
        for name, commit in self.repo.refs(SIG_PREFIX):
            summary = index.get(commit)
            if summary is None:
                summary = self._summarize(commit)
                if summary is None:
                    continue
                index.add(summary)
            if parse_sig_ref(name) == summary.signature:
                found.append(summary)
            else:
                self._warn(f"ignoring record {commit[:12]}: it does not match its ref {name}")
        index.save({s.commit for s in found})
        return found

    def summary_outputs(self, summary: RecordSummary) -> dict[str, str]:
        """A summarized record's outputs (path -> blob id), from its record.json (or,
        from format 3 on, its tree) when they were too many for the index; none when it
        cannot be read (a warning)."""
        if summary.outputs is not None:
            return summary.outputs
        try:  # record.json alone, as _summarize reads it
            data = self._record_json(summary.commit)
            found = None if data is None else record_outputs(json.loads(data))
            if found:
                return found
        except (ValueError, RecursionError, GitcacheError):  # nested too deeply, say
            pass
        stored = self._load_or_warn(summary.commit)
        return {} if stored is None else {o.path: o.blob for o in stored.record.outputs}

    def alternate_summaries(self) -> list[RecordSummary]:
        """Summaries of the records kept under alt refs, marked as alternates."""
        index = self._index_of()
        found: list[RecordSummary] = []
        for name, commit in self.repo.refs(ALT_PREFIX):
            summary = index.get(commit) or self._summarize(commit)
            # Only a well-formed name: alt/<2>/<the record's signature>/<the record commit>.
            if summary is not None and parse_alt_ref(name) == (summary.signature, commit):
                index.add(summary)
                found.append(replace(summary, alternate=True))
        return found

    def _summarize(self, commit: str) -> RecordSummary | None:
        try:
            data = self._record_json(commit)
            doc = None if data is None else json.loads(data)
            summary = None if doc is None else RecordSummary.from_json(commit, doc)
            if summary is None and data is not None and isinstance(doc, dict) and CHUNKED in doc:
                # Format 3 lists its outputs in its tree: parsed with them (no chunk
                # layout check, which a restore's full load does).
                summary = RecordSummary.of(commit, self._parse(commit, data))
        except (ValueError, TypeError, RecursionError, GitcacheError):
            summary = None
        if summary is not None:
            return summary
        stored = self._load_or_warn(commit)
        return None if stored is None else RecordSummary.of(commit, stored.record)

    def _index_of(self) -> RecordIndex:
        if self._index is None:
            self._index = RecordIndex(self.repo.state_dir)
        return self._index

    def remember(self, stored: StoredRecord) -> None:
        """Add a validated record to the listing index (e.g. one just fetched)."""
        self._index_of().add(RecordSummary.of(stored.commit, stored.record))

    def flush_index(self) -> None:
        """Persist summaries of records this process wrote (bulk writers call this)."""
        if self._index is not None:
            self._index.save()

    def log(self, stored: StoredRecord, stream: str) -> bytes:
        return b"".join(self.log_pieces(stored, stream))

    def log_pieces(self, stored: StoredRecord, stream: str) -> Iterator[memoryview]:
        """A log's bytes in order, a chunk at a time when it is stored in chunks."""
        for oid in self.file_blobs(stored.commit, f"logs/{stream}"):
            yield self.repo.blob_view(oid)

    def log_size(self, stored: StoredRecord, stream: str) -> int:
        """A log's size, from its objects' headers."""
        return sum(
            self.repo.blob_size(oid) for oid in self.file_blobs(stored.commit, f"logs/{stream}")
        )

    def file_blobs(self, commit: str, path: str) -> list[str]:
        return file_blobs(self.repo, commit, path)

    def resolve(self, ident: str, steps: Sequence[str] = ()) -> StoredRecord:
        """A record from a step name, a (short) signature or a (short) record commit id."""
        command_line_text(ident, "record or step")
        if ident in steps:
            found = self.latest(ident)
            if found is None:
                raise RecordNotFound(f"step {ident!r} has no record yet")
            return found
        # A step that no workflow file declares (a Python step) is known by its latest
        # record: this worktree's, else the main worktree's.
        latest = self._latest.get(ident) or self.repo.ref_target(step_ref(ident))
        if latest is not None:
            found = self._load_or_warn(latest)
            if found is not None:
                return found
        if len(ident) >= 4 and all(c in "0123456789abcdef" for c in ident):
            matches = [
                (name, commit)
                for name, commit in self.repo.refs(SIG_PREFIX)
                if name.rsplit("/", 1)[1].startswith(ident) or commit.startswith(ident)
            ]
            matches += [
                (name, commit)
                for name, commit in self.repo.refs(ALT_PREFIX)
                if commit.startswith(ident)
            ]
            commits = sorted({commit for _name, commit in matches})
            if len(commits) == 1:
                return self.load(commits[0])
            if len(commits) > 1:
                listed = ", ".join(c[:12] for c in commits[:10])
                raise RecordNotFound(
                    f"record id {ident!r} is ambiguous: {listed}", hint="give more characters"
                )
            if is_oid(ident) and self.repo.has_object(ident):
                return self.load(ident)
        known = ", ".join(steps) if steps else "none"
        raise RecordNotFound(f"no record or step named {ident!r} (steps: {known})")

    # -- writing ------------------------------------------------------------------

    def write(
        self,
        new: NewRecord,
        parent: str | None,
        replace: bool = False,
        set_latest: bool = True,
        batch: RefBatch | None = None,
        then: Callable[[str], None] | None = None,
    ) -> StoredRecord:
        """Write the record's objects, then its refs in one transaction; `then(commit)`
        once ours is written.

        Without `replace`, an existing record for the signature wins (another process
        got there first) and is returned instead; with it, the ref moves only if it
        still holds what we read (compare-and-swap). With `batch`, the refs wait in it
        until it is flushed, and so may the writing of the objects (RefBatch.defer):
        the logs are read now (the next item's command reuses their capture files),
        the rest is made from what the record holds already.
        """
        logs = self._log_entries(new.logs)
        if batch is None or not batch.defers(new.record):
            stored = self._write(new, logs, parent, replace, set_latest, batch)
            if then is not None and stored.record is new.record:
                then(stored.commit)
            return stored

        def write() -> str:
            commit = self._write(new, logs, parent, replace, set_latest, batch).commit
            if then is not None:
                then(commit)
            return commit

        return StoredRecord(None, new.record, write=batch.defer(write))

    def _log_entries(self, logs: Mapping[str, Path]) -> list[TreeEntry]:
        entries: list[TreeEntry] = []
        empty: StoredFile | None = None
        for stream, path in sorted(logs.items()):
            # Most commands of a sweep print nothing: an empty log is not opened and read.
            if path.stat().st_size == 0:
                empty = log = empty or StoredFile(self.repo.write_blob(b""), 0)
            else:
                log = self.repo.write_blob_file(path)
            if log.chunks is None:
                entries.append(TreeEntry(f"logs/{stream}", log.oid, MODE_FILE))
            else:
                entries += chunk_entries(f"logs/{stream}", log.chunks)
        return entries

    def _write(
        self,
        new: NewRecord,
        logs: list[TreeEntry],
        parent: str | None,
        replace: bool,
        set_latest: bool,
        batch: RefBatch | None,
    ) -> StoredRecord:
        record = new.record
        data = record.to_json()
        if len(data) > RECORD_JSON_MAX:  # it could never be read back (`_record_json`)
            raise StepFailed(
                f"step {record.step}: its {RECORD_FILE} would be {len(data):,} bytes, more than "
                f"the {RECORD_JSON_MAX >> 20} MiB gitcache reads; nothing was recorded",
                hint=None
                if record.python is None
                else "pass big data as gitcache.File or numpy arguments, not as JSON values",
            )
        record_json = self.repo.write_blob(data, new=True)
        entries = [TreeEntry(RECORD_FILE, record_json, MODE_FILE)]
        edited = self._edited(new)
        if edited is not None:
            entries.append(TreeEntry(OUTPUTS_TREE, edited, MODE_TREE))
        for out in record.outputs:
            if out.chunks is None:
                if edited is None:
                    entries.append(TreeEntry(OUTPUTS_DIR + out.path, out.blob, out.mode))
                continue
            ids = self.repo.chunks_of(out.blob)
            if ids is None or len(ids) != out.chunks:
                raise GitcacheError(
                    f"output {out.path}: its chunks were not stored by this process"
                )
            entries += chunk_entries(OUTPUTS_DIR + out.path, ids)
        entries += logs
        entries += list(new.extra)
        tree = self.repo.write_tree(entries)
        message = f"gitcache record: {record.step} {record.signature[:12]}\n"
        # A batch's records wait in the object writer until the batch's refs are written.
        commit = self.repo.write_commit(
            tree, [parent] if parent else [], message, publish=batch is None
        )

        name = sig_ref(record.signature)
        expected = self.repo.ref_target(name) if replace else None
        updates = [RefUpdate(name, commit, expected)]
        in_files: list[str] = []
        if set_latest:
            keys = [latest_key(record.step)]
            if record.item is not None:
                keys.append(latest_key(record.step, record.item))
            for key in keys:
                update = self._latest.ref_update(key, commit)
                if update is None:  # a linked worktree's: its file, after the record's refs
                    in_files.append(key)
                else:
                    updates.append(update)
        if batch is not None:
            batch.add(commit, record, updates, in_files)
            return StoredRecord(commit, record)
        return self._apply(commit, record, updates, in_files)

    def _edited(self, new: NewRecord) -> str | None:
        """The new record's outputs/ tree as an edit of its `like`'s (GitRepo.edit_tree),
        when that one was read from its tree (format 3) laid out as git writes it: the
        outputs that differ from like's set, like's others removed.
        None: the tree is written from every output, as when most changed."""
        like = new.like
        if like is None or like.commit not in self._as_written:
            return None
        if any(e.path.split("/")[0] == OUTPUTS_TREE for e in new.extra):
            return None
        top = self.repo.tree_entry(self.repo.commit_tree(like.commit), OUTPUTS_TREE)
        if top is None or top.mode != MODE_TREE:
            return None
        before = {o.path: o for o in like.record.outputs if o.chunks is None}
        changes: dict[str, TreeEntry | None] = {}
        for out in new.record.outputs:
            if out.chunks is None:
                was = before.pop(out.path, None)
                if was is not out and was != out:  # most are the very same object
                    changes[out.path] = TreeEntry(out.path, out.blob, out.mode)
        changes.update(dict.fromkeys(before))  # gone since
        if len(changes) > len(new.record.outputs) // 4:
            return None
        return self.repo.edit_tree(top.oid, changes)

    def _apply(
        self, commit: str, record: Record, updates: list[RefUpdate], in_files: Sequence[str] = ()
    ) -> StoredRecord:
        """Point a written record's refs at it; an existing usable record of its
        signature wins (returned instead)."""
        name = updates[0].name
        try:
            self.repo.update_refs(updates, message=f"gitcache: record {record.step}")
        except RefConflict as exc:
            if exc.name != name or exc.found is None:
                raise
            existing = self._usable(exc.found, record.signature, step=record.step)
            if existing is not None:
                return existing
            # The ref holds no usable record (corrupt, or another signature's, e.g. from
            # a plain `git fetch`): a miss, so ours replaces it, still compare-and-swap.
            updates[0] = RefUpdate(name, commit, exc.found)
            self.repo.update_refs(updates, message=f"gitcache: record {record.step}")
        self._latest.set_many((key, commit) for key in in_files)
        self._index_of().add(RecordSummary.of(commit, record))
        return StoredRecord(commit, record)

    def set_latest(
        self, stored: StoredRecord, item: Mapping[str, Any] | None = None, step: str | None = None
    ) -> None:
        """The record is now what the worktree holds for its step (or for `item`, a
        sweep item: its item pointer only, so a no-op over many items moves no step ref).
        `step`: the record's step, when the caller knows it (the record is not read)."""
        self._latest.set(latest_key(step or stored.record.step, item), stored.commit)

    def remove(self, stored: StoredRecord) -> None:
        """Drop a record's signature ref (and the step ref if it points at it)."""
        updates = [RefUpdate(sig_ref(stored.record.signature), None, stored.commit)]
        latest = [step_ref(stored.record.step)]
        if stored.record.item is not None:
            latest.append(item_ref(stored.record.step, stored.record.item))
        for name in latest:
            if self.repo.ref_target(name) == stored.commit:
                updates.append(RefUpdate(name, None, stored.commit))
        self.repo.update_refs(updates, message="gitcache: remove")


def file_blobs(repo: GitRepo, commit: str, path: str) -> list[str]:
    """The blob ids that hold a file of a record's tree, in order: the blob at `path`,
    or its chunks under chunks/<path>/ ([] when it has neither)."""
    tree = repo.commit_tree(commit)
    entry = repo.tree_entry(tree, path)
    if entry is not None:
        return [entry.oid] if entry.mode != MODE_TREE else []
    group = repo.tree_entry(tree, CHUNKS_DIR + path)
    if group is None or group.mode != MODE_TREE:
        return []
    return [e.oid for e in repo.list_tree(group.oid) if e.mode != MODE_TREE]


def read_file_into(repo: GitRepo, commit: str, path: str) -> bytearray | None:
    """A file of a record's tree copied into one buffer, each blob's id checked as it is
    copied (None if absent): a big Python result costs one copy, not a join of copies.
    UnsafeRecord when a blob is missing or does not hash to its id."""
    from gitcache.objects.stream import blob_id
    from gitcache.objects.writer import PACKED_MAX

    blobs = file_blobs(repo, commit, path)
    if not blobs:
        return None
    sizes: list[int] = []
    for oid in blobs:
        found = repo.read_header(oid)
        if found is None or found[0] != "blob":
            raise UnsafeRecord(f"{path} in record {commit[:12]}: blob {oid} is missing")
        sizes.append(found[1])
    content = bytearray(sum(sizes))
    view = memoryview(content)
    at = 0
    with repo.unchecked_reads():  # each blob is hashed here
        for oid, size in zip(blobs, sizes, strict=True):
            start, end = at, at + size
            for piece in repo.blob_pieces(oid, loose=size > PACKED_MAX):
                if at + len(piece) > end:
                    break
                view[at : at + len(piece)] = piece
                at += len(piece)
            if at != end or blob_id(view[start:end]) != oid:
                raise UnsafeRecord(f"{path} in record {commit[:12]}: blob {oid} is corrupt")
    return content


def chunk_entries(path: str, chunks: Sequence[str]) -> list[TreeEntry]:
    """The tree entries of a file stored in chunks: chunks/<path>/00000000, ..."""
    return [
        TreeEntry(f"{CHUNKS_DIR}{path}/{index:08d}", oid, MODE_FILE)
        for index, oid in enumerate(chunks)
    ]


def _other_chunked(python: bool) -> Callable[[str], bool]:
    """Which paths other than outputs a record may hold in chunks: its logs, and a
    Python record's results."""

    def allowed(path: str) -> bool:
        if path in ("logs/stdout", "logs/stderr"):
            return True
        return python and (path in ("result.json", "result.pickle") or path.startswith("result/"))

    return allowed


class ChunkLayout:
    """The `chunks/` tree of a record, checked group by group as a hostile one could be
    laid out: each group a tree of blobs named 00000000 to N-1 in order, sizes (from the
    objects' headers, never by reading them) summing to the file's size, no group for a
    path the record does not hold in chunks, none beside a whole file at that path."""

    def __init__(self, repo: GitRepo, tree: str, where: str) -> None:
        self._repo = repo
        self._tree = tree
        self._where = f"record {where}"
        top = repo.tree_entry(tree, CHUNKS_DIR.rstrip("/"))
        if top is not None and top.mode != MODE_TREE:
            raise UnsafeRecord(f"{self._where}: chunks is not a directory")
        self._top = None if top is None else top.oid
        self._taken: set[str] = set()

    def take(self, path: str, count: int, size: int | None) -> tuple[str, ...]:
        """The chunk ids of `path` (count of them, adding up to `size` if given)."""
        name = CHUNKS_DIR + path
        group = None if self._top is None else self._repo.tree_entry(self._top, path)
        if group is None or group.mode != MODE_TREE:
            raise UnsafeRecord(f"{self._where}: {name} does not hold the {count} chunks of {path}")
        entries = list(self._repo.list_tree(group.oid))
        if len(entries) != count:
            raise UnsafeRecord(
                f"{self._where}: {name} holds {len(entries)} entries, record.json says "
                f"{count} chunks"
            )
        total = 0
        for index, entry in enumerate(entries):
            if entry.path != f"{index:08d}" or entry.mode != MODE_FILE:
                raise UnsafeRecord(
                    f"{self._where}: {name}/{entry.path} is not chunk {index:08d} (a blob)"
                )
            header = self._repo.read_header(entry.oid)
            if header is None or header[0] != "blob":
                raise UnsafeRecord(f"{self._where}: chunk {name}/{entry.path} is missing")
            total += header[1]
        if size is not None and total != size:
            raise UnsafeRecord(
                f"{self._where}: the chunks of {path} hold {total} bytes, record.json says {size}"
            )
        self._taken.add(path)
        return tuple(e.oid for e in entries)

    def take_rest(self, allowed: Callable[[str], bool]) -> None:
        """Check every group not taken yet: allowed, with no whole file beside it."""
        if self._top is None:
            return
        groups: dict[str, int] = {}
        for leaf in self._repo.walk_tree(self._top):
            group = leaf.path.rpartition("/")[0]
            groups[group] = groups.get(group, 0) + 1
        for group, count in sorted(groups.items()):
            if group in self._taken:
                continue
            if not group or not allowed(group) or self._repo.tree_entry(self._tree, group):
                raise UnsafeRecord(
                    f"{self._where}: {CHUNKS_DIR}{group or '<top>'} holds chunks of a file "
                    "the record does not hold in chunks"
                )
            self.take(group, count, None)


class RefBatch:
    """The ref updates of several written records, applied in one step.

    Recording a thousand sweep items one transaction each costs a new file per ref
    per item; queued here they cost one rewrite of packed-refs (packedrefs.py) per
    `limit` records. A queued record's objects wait in the object writer, which
    publishes them (one pack) before the refs are written.

    The writing of a record's objects may wait here too (`defer`): a sweep item's
    record is made from what it holds already, so the engine has it written while the
    next item's command runs (`run_deferred`), where it costs the items nothing. A
    deferred record is written before any flush, and whenever its commit is asked for.
    A record whose command took `max_wait` or more is never deferred.

    Flushing happens when the first queued or deferred record has waited `max_wait`
    seconds (`add`, `tick`; and `wait_left` tells the engine when, so that it flushes
    while a long command runs) or a record's command took that long (so a kill -9 loses
    at most about that much finished work: slow items are written one by one), when
    `limit` records wait and the engine has a command running (`due`: written while it
    runs; with twice `limit` waiting, at once), before waiting for another process's
    signature lock, and in the engine's `finally` (also after a failure or Ctrl-C).
    Signature locks handed to `hold` stay taken until their refs are written, so
    another process waiting on one still finds the record instead of running it again.

    Not thread-safe: the engine uses it, and asks for deferred records' commits, only
    under its lock.
    """

    def __init__(self, store: RecordStore, limit: int = 100, max_wait: float = 1.0) -> None:
        self._store = store
        self._limit = limit
        self._max_wait = max_wait
        self._queued: list[tuple[str, Record, list[RefUpdate], list[str]]] = []
        self._since = 0.0  # time.monotonic() when the first queued or deferred one came
        self._held = ExitStack()
        self._deferred: deque[_Once] = deque()
        self._running = False  # run_deferred is writing the deferred records

    @property
    def max_wait(self) -> float:
        return self._max_wait

    def defers(self, record: Record) -> bool:
        """Whether `record`'s writing may wait (`defer`): not a slow command's."""
        return record.duration < self._max_wait

    def defer(self, write: Callable[[], str]) -> Callable[[], str]:
        """Keep `write` (which writes a record and queues its refs here, returning its
        commit) for `run_deferred`; the callable returned runs it once, when first
        called by either."""
        once = _Once(write)
        self._start_clock(time.monotonic())
        self._deferred.append(once)
        return once

    def _start_clock(self, now: float) -> None:
        """The first record to wait starts the `max_wait` clock."""
        if not self._queued and not self._deferred:
            self._since = now

    def run_deferred(self) -> None:
        """Write the deferred records (their refs then wait in the batch)."""
        if self._running:  # a flush asked for by one of them (`add`): this loop goes on
            return
        self._running = True
        try:
            while self._deferred:
                self._deferred.popleft()()
        finally:
            self._running = False

    def wait_left(self) -> float | None:
        """Seconds until the first record waiting here has waited `max_wait` (None:
        none waits)."""
        if not self._queued and not self._deferred:
            return None
        return max(0.0, self._since + self._max_wait - time.monotonic())

    def tick(self) -> None:
        """Flush if the first record waiting has waited `max_wait` (called between
        steps: a deferred record is otherwise written with the next command)."""
        if self.wait_left() == 0.0:
            self.flush()

    def add(
        self, commit: str, record: Record, updates: list[RefUpdate], in_files: list[str]
    ) -> None:
        now = time.monotonic()
        self._start_clock(now)
        self._queued.append((commit, record, updates, in_files))
        # While deferred records are written, their refs wait for the caller's flush:
        # a flush from here would write the next deferred one, which would flush from
        # here... one stack level per record (a RecursionError past a few hundred).
        if not self._running and (
            len(self._queued) >= 2 * self._limit
            or record.duration >= self._max_wait
            or now - self._since >= self._max_wait
        ):
            self.flush()

    @property
    def due(self) -> bool:
        """Enough records wait to be written at the next chance (`add`)."""
        return len(self._queued) + len(self._deferred) >= self._limit

    def hold(self, locks: ExitStack) -> None:
        """Keep these (signature locks) until the queued refs are written."""
        self._held.enter_context(locks)

    def flush(self) -> None:
        failure: BaseException | None = None
        try:
            self.run_deferred()
        except BaseException as exc:  # the records written before it still get their refs
            failure = exc
        queued, self._queued = self._queued, []
        try:
            if queued:
                self._write_refs(queued)
        finally:
            self._held.close()
            self._held = ExitStack()
        if failure is not None:
            raise failure

    def _write_refs(self, queued: list[tuple[str, Record, list[RefUpdate], list[str]]]) -> None:
        merged: dict[str, RefUpdate] = {}
        for _commit, _record, updates, _in_files in queued:
            for update in updates:  # a step ref set by several items: the last wins
                merged.pop(update.name, None)
                merged[update.name] = update
        try:
            self._store.repo.update_refs(list(merged.values()), message="gitcache: record")
            self._store._latest.set_many(
                (key, commit) for commit, _record, _updates, in_files in queued for key in in_files
            )
            index = self._store._index_of()
            for commit, record, _updates, _in_files in queued:
                index.add(RecordSummary.of(commit, record))
        except RefConflict:  # another process recorded one of them: one by one
            for commit, record, updates, in_files in queued:
                self._store._apply(commit, record, updates, in_files)


class _Once:
    """A deferred record's writing: run on the first call, its commit on every call."""

    __slots__ = ("_commit", "_write")

    def __init__(self, write: Callable[[], str]) -> None:
        self._write: Callable[[], str] | None = write
        self._commit: str | None = None

    def __call__(self) -> str:
        if self._commit is None:
            write, self._write = self._write, None
            if write is None:
                raise GitcacheError("a record's writing failed earlier in this run")
            self._commit = write()
        return self._commit
