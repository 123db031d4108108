"""The one door to pygit2: objects, trees, commits and compare-and-swap ref updates.

Nothing else in gitcache imports pygit2. Object ids travel as hex strings so the
rest of the code (and the record classes) never sees a pygit2 type.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import pygit2

from gitcache.errors import GitcacheError, RepositoryError
from gitcache.filehash import hash_file, read_stable
from gitcache.objects.loose import blob_id
from gitcache.objects.stored import StoredFile

if TYPE_CHECKING:  # imported when first used: a no-op run writes no object
    from gitcache.objects.reader import PackedBlobs
    from gitcache.objects.writer import ObjectWriter

MODE_FILE: Final = 0o100644
MODE_EXEC: Final = 0o100755
MODE_LINK: Final = 0o120000
MODE_TREE: Final = 0o040000

# Sentinel for "whatever the ref holds now" in a RefUpdate.
ANY: Final = "any"
_LOCK_WAIT_SECONDS: Final = 10.0  # git's own core.filesRefLockTimeout is shorter (0.1 s)
_LOCK_NOTICE_SECONDS: Final = 1.0  # then say what we are waiting for
_LOCK_FILE = re.compile(r"failed to lock file '([^']+\.lock)'")
# libgit2 writes a loose object to a temporary file, makes its fan-out directory
# (objects/ab/) and renames the file into it. Any `git prune` (the one `git gc --auto`
# runs too, whatever its expiry) removes empty fan-out directories, so one can vanish
# between the two; writing the object again is harmless (its id is its content).
_OBJECT_WRITE_RACE = re.compile(r"failed to rename lockfile|failed to create locked file")
_FULL_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # libgit2 takes a prefix as well
_OBJECT_WRITE_ATTEMPTS: Final = 20
T = TypeVar("T")
_TYPE_NAMES: Final = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_TREE_LOOKUP_MIN: Final = 64  # entries: a bigger tree the repository has is not written again
_TREE_MODES: Final = frozenset({0o100644, 0o100755, 0o120000, 0o040000, 0o160000})
# A tree's entries as git writes them (SHA-1 ids): `<mode> <name>\0<20 bytes>`, the
# modes of a file, an executable, a symlink and a directory only, a name of at most
# NAME_MAX bytes (libgit2 refuses a tree with one over 65,535) and without '/'.
_GIT_ENTRY: Final = rb"(100644|100755|120000|40000) ([^\0/]{1,255})\0(.{20})"
_GIT_ENTRY_ONE: Final = re.compile(_GIT_ENTRY, re.DOTALL)
_GIT_ENTRIES: Final = re.compile(rb"(?:%s)*" % _GIT_ENTRY, re.DOTALL)

# libgit2 looks up every object a new tree entry or commit names ("strict object
# creation"); every such object gitcache names it has just written or read, and the
# look-ups were a tenth of a first run over 1,000 sweep items (0.2 ms per tree entry
# in a busy object store). Process-wide; gitcache is the only user of pygit2 here.
pygit2.option(pygit2.enums.Option.ENABLE_STRICT_OBJECT_CREATION, False)


class RefConflict(GitcacheError):
    """A compare-and-swap ref update found another value than the one expected."""

    def __init__(self, name: str, expected: str | None, found: str | None) -> None:
        super().__init__(f"ref {name} changed under us (expected {expected}, found {found})")
        self.name = name
        self.expected = expected
        self.found = found


@dataclass(frozen=True)
class RefUpdate:
    """Set `name` to `new` (None deletes) if it still holds `expected` (None: absent)."""

    name: str
    new: str | None
    expected: str | None = ANY


@dataclass(frozen=True)
class TreeEntry:
    path: str  # posix path relative to the tree root
    oid: str
    mode: int


class GitRepo:
    """A non-bare git repository opened through pygit2."""

    def __init__(self, repo: pygit2.Repository) -> None:
        if repo.is_bare or repo.workdir is None:
            raise RepositoryError(f"{repo.path} is a bare repository; gitcache needs a worktree")
        self._repo = repo
        # Told once when a ref update has waited a while for another process's lock.
        self.on_wait: Callable[[str], None] | None = None
        # os.path.realpath, not Path.resolve: the same answer at a fraction of the cost
        # (a Python step's first call in a new process opens the repository).
        self.root = Path(os.path.realpath(repo.workdir))
        self.git_dir = Path(os.path.realpath(repo.path))
        try:
            common = (self.git_dir / "commondir").read_text().strip()
        except FileNotFoundError:
            self.common_dir = self.git_dir
        else:
            self.common_dir = Path(os.path.realpath(self.git_dir / common))
        self._writer: ObjectWriter | None = None
        self._writer_chosen = False  # decided on first write (reads the config)
        self._unchecked = False  # inside unchecked_reads
        self._identity: bytes | None = None  # `name <email>` of the commits we write
        # The index's paths, with the index file's stat they were read at (tracks_any).
        self._tracked: tuple[tuple[int, ...] | None, frozenset[str]] | None = None
        self._index_file = Path(repo.path) / "index"  # this worktree's
        self._packed_ok: bool | None = None  # packed-refs may be written (read once)

    @classmethod
    def discover(cls, start: Path) -> GitRepo:
        # Opening `start` searches its parents as discover_repository does, in one step.
        try:
            repo = pygit2.Repository(str(start))
        except pygit2.GitError as exc:
            if "not found" not in str(exc):
                raise RepositoryError(f"cannot open the git repository of {start}: {exc}") from None
            raise RepositoryError(
                f"not a git repository: {start}",
                hint="run `git init` first, or cd into a repository",
            ) from None
        return cls(repo)

    @classmethod
    def init(cls, path: Path) -> GitRepo:
        return cls(pygit2.init_repository(str(path), initial_head="main"))

    @functools.cached_property
    def state_dir(self) -> Path:
        """gitcache's private directory shared by all worktrees (locks, scratch, record
        index), inside the common git dir."""
        return self.common_dir / "gitcache"

    @property
    def worktree_state_dir(self) -> Path:
        """gitcache's files about this worktree (stat cache, outputs removed on purpose,
        latest records), in the worktree's own git dir: `state_dir` for the main one."""
        return self.git_dir / "gitcache"

    @property
    def is_linked_worktree(self) -> bool:
        """A worktree made by `git worktree add` (its git dir is not the common dir)."""
        return self.git_dir != self.common_dir

    def worktree_roots(self) -> list[Path]:
        """The root of every worktree of the repository (the main one first, if any)."""
        main = pygit2.Repository(str(self.common_dir))
        roots = [] if main.workdir is None else [Path(main.workdir)]
        for name in main.list_worktrees():
            try:
                linked = main.lookup_worktree(name)
            except (KeyError, pygit2.GitError):
                continue
            if not linked.is_prunable:  # its directory still exists
                roots.append(Path(linked.path))
        return roots

    def worktree_state_dirs(self) -> list[Path]:
        """`worktree_state_dir` of every worktree of the repository, the main one first."""
        linked = self.common_dir / "worktrees"
        try:
            others = sorted(p / "gitcache" for p in linked.iterdir() if p.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            others = []
        return [self.state_dir, *others]

    # -- commits and revisions -------------------------------------------------

    def head_commit(self) -> str | None:
        if self._repo.head_is_unborn:
            return None
        return str(self._repo.head.target)

    def head_branch(self) -> str | None:
        """The short name of the branch HEAD is on; None when detached or unborn."""
        if self._repo.head_is_detached:
            return None
        target = self._repo.references["HEAD"].target
        name = str(target)
        return name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else None

    def resolve_commit(self, rev: str) -> str:
        try:
            self.flush_objects()
            obj = self._repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise RepositoryError(f"unknown revision: {rev}") from exc
        return str(commit.id)

    def commit_parents(self, oid: str) -> list[str]:
        return [str(p) for p in self._commit(oid).parent_ids]

    def commit_tree(self, oid: str) -> str:
        return str(self._commit(oid).tree_id)

    def is_descendant(self, oid: str, ancestor: str) -> bool:
        self.flush_objects()
        return oid == ancestor or bool(
            self._repo.descendant_of(pygit2.Oid(hex=oid), pygit2.Oid(hex=ancestor))
        )

    def _commit(self, oid: str) -> pygit2.Commit:
        obj = self._get(oid)
        if not isinstance(obj, pygit2.Commit):
            raise RepositoryError(f"{oid} is not a commit in {self.git_dir}")
        return obj

    def _get(self, oid: str) -> pygit2.Object | None:
        """An object through libgit2, once the objects our writer holds are published."""
        self.flush_objects()
        return self._lookup(oid)

    def _lookup(self, oid: str) -> pygit2.Object | None:
        """`Repository.get`, a damaged object (a bad zlib stream in a pack, a truncated
        loose file) said as a RepositoryError naming it rather than libgit2's GitError,
        which no caller expects (an internal error, mid-restore)."""
        try:
            return self._repo.get(oid)
        except pygit2.GitError as exc:
            reason = str(exc).removeprefix(f"{oid}: ")
            raise RepositoryError(
                f"object {oid} in {self.common_dir / 'objects'} cannot be read ({reason}): "
                "the repository is damaged",
                hint="`git fsck` lists the damaged objects; fetch them again from a clone",
            ) from None

    # -- blobs ------------------------------------------------------------------

    @staticmethod
    def hash_file(path: Path) -> str:
        """Blob id of a file's bytes, as `git hash-object --no-filters` gives it.

        Read again while the file changes (filehash.py); UnreadableFile if it keeps
        changing or is not a regular file.
        """
        return hash_file(path, str(path))[0]

    @staticmethod
    def hash_bytes(data: bytes) -> str:
        return str(pygit2.hash(data))

    @property
    def objects(self) -> ObjectWriter | None:
        """gitcache's own object writer (objects/), None for a SHA-256 repository, whose
        objects libgit2 writes. Objects go to the common git dir's `objects/` (linked
        worktrees share it); `objects/info/alternates` counts only for reading."""
        if not self._writer_chosen:
            from gitcache.objects.writer import ObjectWriter

            self._writer_chosen = True
            sha256 = (self.config_value("extensions.objectformat") or "").lower() == "sha256"
            if not sha256:
                self._writer = ObjectWriter(self.common_dir / "objects", self._exists_unflushed)
        return self._writer

    def _exists_unflushed(self, oid: str) -> bool:
        # The object database's own look-up: `oid in repository` reads (and hashes) the
        # whole object, 8 MiB for a chunk, and fails on a corrupt one.
        return bool(self._repo.odb.exists(oid))

    def flush_objects(self) -> None:
        """Publish the blobs our writer holds back for a pack (before anything names them
        from a commit, and before any read)."""
        if self._writer is not None and self._writer.pending:
            self._writer.flush()

    def pack_waiting_objects(self) -> None:
        """Deflate the objects our writer holds back into its pack, unpublished: work
        for the time a command runs (ObjectWriter.pack_waiting)."""
        if self._writer is not None and self._writer.pending:
            self._writer.pack_waiting()

    def objects_mark(self) -> int:
        """Where the objects our writer holds back stand now (`discard_objects`)."""
        return 0 if self._writer is None else self._writer.mark()

    def discard_objects(self, mark: int = 0) -> None:
        """Drop the objects held back for a pack since `mark` (objects_mark): no record
        will name them (a failed step). Earlier ones, of records whose refs wait in a
        batch, stay."""
        if self._writer is not None:
            self._writer.discard(mark)

    def write_blob_file(
        self, path: Path, progress: Callable[[int], None] | None = None
    ) -> StoredFile:
        """Store a file in one pass: whole, or in chunks when big (objects/stream.py);
        `progress` hears the bytes as they are read."""
        writer = self.objects
        if writer is not None:
            return writer.write_file(path, progress)
        # libgit2 (a SHA-256 repository): the file's bytes as they are, as our writer and
        # hash_file take them (create_blob_fromdisk would apply the worktree's clean
        # filters), and the size of the blob stored, that is of what was read, for
        # read_stable to check against the stat (a size stat'ed here could be older).
        with open(path, "rb") as file:

            def write() -> pygit2.Oid:
                file.seek(0)  # again from the start when tried again
                return self._repo.create_blob_fromiobase(file)

            oid = str(_write_object(write))
        stored = StoredFile(oid, self.blob_size(oid))
        if progress is not None:
            progress(stored.size)
        return stored

    def write_buffer(self, data: bytes | memoryview) -> StoredFile:
        """Store bytes whole, or in chunks when big (a Python step's result)."""
        writer = self.objects
        if writer is not None:
            return writer.write_buffer(data)
        return StoredFile(self.write_blob(bytes(data)), len(data))

    def chunks_of(self, oid: str) -> tuple[str, ...] | None:
        """The chunk blob ids of a file this process stored in chunks (else None)."""
        writer = self.objects
        return None if writer is None else writer.chunks_of(oid)

    def write_blob(self, data: bytes, new: bool = False) -> str:
        """`new`: the caller knows the repository cannot have it (a record.json, which
        names its signature and start time): it is not looked up first."""
        writer = self.objects
        if writer is not None:
            return writer.write_object("blob", data, not new) if new else writer.write_blob(data)
        return str(_write_object(lambda: self._repo.create_blob(data)))

    def read_blob(self, oid: str) -> bytes:
        return bytes(self.blob_view(oid))

    def blob_view(self, oid: str, verified: bool = True) -> memoryview:
        """A blob's content without a copy (the view keeps the object alive).

        libgit2's own check of the object's id (collision-detecting SHA-1, ~200 MB/s
        here) is replaced by hashlib's SHA-1 (~1.5 GB/s) when `verified`, and skipped
        otherwise: for a caller that hashes what it reads itself, as a restore does with
        the whole-file blob id. A SHA-256 repository keeps libgit2's check.
        """
        self.flush_objects()
        own = len(oid) == 40  # a SHA-1 id (hashlib checks it)
        with self.unchecked_reads(own):
            obj = self._lookup(oid)
        if not isinstance(obj, pygit2.Blob):
            raise RepositoryError(f"object {oid} is not a blob")
        view = memoryview(obj)
        if own and verified and blob_id(view) != oid:
            raise RepositoryError(f"object {oid} is corrupt: its content has another id")
        return view

    @contextlib.contextmanager
    def unchecked_reads(self, unchecked: bool = True) -> Iterator[None]:
        """libgit2's id check off meanwhile (for callers that hash what they read): set
        once around a restore's many reads, not per blob (~12 µs a toggle)."""
        if not unchecked or self._unchecked:
            yield
            return
        pygit2.option(pygit2.enums.Option.ENABLE_STRICT_HASH_VERIFICATION, False)
        self._unchecked = True
        try:
            yield
        finally:
            self._unchecked = False
            pygit2.option(pygit2.enums.Option.ENABLE_STRICT_HASH_VERIFICATION, True)

    def blob_pieces(self, oid: str, loose: bool = True) -> list[memoryview]:
        """A blob's content as views, its id NOT checked (the caller hashes them): a
        loose blob of stored blocks straight from its mapped file, another loose one
        inflated by ISA-L (objects/reader.py), any other through libgit2. `loose=False`:
        the blob is small, so likely packed (objects/writer.py): libgit2 at once, without
        looking for a loose file."""
        self.flush_objects()
        if len(oid) == 40:
            from gitcache.objects.reader import loose_blob, loose_truncated

            objects = self.common_dir / "objects"
            if loose:
                pieces = loose_blob(objects, oid)
                if pieces is not None:
                    return pieces
            # Only what the fast paths did not read comes here: libgit2 would never
            # return from a loose object that is cut short.
            if loose_truncated(objects, oid):
                raise RepositoryError(
                    f"object {oid} in {objects} is truncated: the repository is damaged",
                    hint="`git fsck` lists the damaged objects; fetch them again from a clone",
                )
        return [self.blob_view(oid, verified=False)]

    def packed_blobs(self, oids: Sequence[str]) -> PackedBlobs:
        """A reader of many small blobs straight from the packs (objects/reader.py), for
        a restore: it reads the packs' indexes newest first, at most a few times as many
        entries as `oids` (then libgit2 finds the rest). Ids are NOT checked there."""
        from gitcache.objects.reader import PackedBlobs

        self.flush_objects()
        return PackedBlobs(self.common_dir / "objects", oids, 4 * len(oids) + 65536)

    def has_object(self, oid: str) -> bool:
        self.flush_objects()
        return self._exists_unflushed(oid)

    def stores(self, oid: str) -> bool:
        """has_object without publishing what our writer holds back (it counts too): for
        a caller about to name the object from a record it writes itself. Only a whole
        lowercase id counts (one from a damaged stat cache row may be anything)."""
        if _FULL_ID.fullmatch(oid) is None:
            return False
        writer = self._writer
        return writer.has(oid) if writer is not None else self._exists_unflushed(oid)

    def read_header(self, oid: str) -> tuple[str, int] | None:
        """(type name, size) of an object from its header, without reading it; None if
        the repository does not have it."""
        self.flush_objects()
        try:
            kind, size = self._repo.odb.read_header(oid)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return _TYPE_NAMES.get(int(kind), "unknown"), int(size)

    def blob_sizes(self, oids: Sequence[str]) -> list[int | None]:
        """Each blob's size from its header, None for an object that is missing or no
        blob: read_header for many ids, those in the packs from their entries' headers
        in one pass (PackedBlobs), not one libgit2 look-up each."""
        found = None
        if len(oids) >= 64:
            from gitcache.objects.reader import packed_sizes

            self.flush_objects()
            found = packed_sizes(self.common_dir / "objects", oids, 4 * len(oids) + 65536)
        sizes: list[int | None] = []
        for index, oid in enumerate(oids):
            size = None if found is None else found[index]
            if size is None:  # not in a pack read, a delta: libgit2 says
                header = self.read_header(oid)
                size = header[1] if header is not None and header[0] == "blob" else None
            sizes.append(size)
        return sizes

    def blob_size(self, oid: str) -> int:
        found = self.read_header(oid)
        if found is None or found[0] != "blob":
            raise RepositoryError(f"object {oid} is not a blob")
        return found[1]

    # -- trees --------------------------------------------------------------------

    def write_tree(self, entries: Sequence[TreeEntry]) -> str:
        """Write nested trees for entries with slash-separated paths; return the root id."""
        nested: dict[str, object] = {}
        for entry in entries:
            parts = entry.path.split("/")
            node = nested
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise RepositoryError(f"tree path {entry.path} crosses a file")
                node = child
            node[parts[-1]] = entry
        return self._write_nested(nested)

    def _write_nested(self, root: Mapping[str, object]) -> str:
        """Write the trees of a nested mapping, each subtree before the tree naming it.

        An explicit stack, not recursion: an output directory may nest deeper than
        Python's recursion limit (Linux allows it with relative paths).
        """
        written: dict[int, str] = {}  # id() of a node (all alive meanwhile) -> its tree id
        stack: list[tuple[Mapping[str, object], bool]] = [(root, False)]
        while stack:
            node, children_written = stack.pop()
            if not children_written:
                stack.append((node, True))
                stack.extend((child, False) for child in node.values() if isinstance(child, dict))
                continue
            written[id(node)] = self._write_one_tree(node, written)
        return written[id(root)]

    def _write_one_tree(self, node: Mapping[str, object], written: Mapping[int, str]) -> str:
        """One tree of `_write_nested`, its subtrees' ids in `written`."""
        writer = self.objects
        if writer is not None:  # our writer: the tree waits with the record's blobs
            # A big tree is looked up first: re-recording a directory of which one file
            # changed leaves its other trees as they were, and writing them again would
            # cost more than the change (1,000 entries, ~40 KB, per tree). A small one
            # is written again: a look-up of a missing object makes libgit2 list the
            # pack directory again (~80 us), and a sweep's records are all new trees.
            check = len(node) > _TREE_LOOKUP_MIN
            return writer.write_object("tree", self._tree_bytes(node, written), check)
        builder = self._repo.TreeBuilder()
        for name, value in node.items():
            if isinstance(value, TreeEntry):
                builder.insert(name, pygit2.Oid(hex=value.oid), value.mode)
            else:
                builder.insert(name, pygit2.Oid(hex=written[id(value)]), MODE_TREE)
        return str(_write_object(builder.write))

    def _tree_bytes(self, node: Mapping[str, object], written: Mapping[int, str]) -> bytes:
        """A tree object's content (its subtrees' ids in `written`), as git lays it out:
        entries sorted by name, a subtree's name compared as if it ended in `/`."""
        rows: list[tuple[bytes, bytes]] = []
        for name, value in node.items():
            raw = _entry_name(name)
            if isinstance(value, TreeEntry):
                if value.mode not in _TREE_MODES:
                    raise RepositoryError(f"tree entry {value.path}: invalid mode {value.mode:o}")
                mode, oid = value.mode, value.oid
            else:
                mode, oid = MODE_TREE, written[id(value)]
            key = raw + b"/" if mode == MODE_TREE else raw
            rows.append((key, b"%o %s\0%s" % (mode, raw, bytes.fromhex(oid))))
        rows.sort()
        return b"".join(row for _key, row in rows)

    def walk_tree(self, oid: str, prefix: str = "") -> Iterator[TreeEntry]:
        """Every non-tree entry under a tree, depth first, with full paths.

        A stack of the trees being listed, not recursion: a fetched record's tree may
        nest deeper than Python's recursion limit.
        """
        stack = [(iter(self._tree(oid)), prefix)]
        while stack:
            items, base = stack[-1]
            for item in items:
                path = f"{base}{item.name}"
                if item.filemode == MODE_TREE:
                    stack.append((iter(self._tree(str(item.id))), path + "/"))
                    break
                yield TreeEntry(path, str(item.id), int(item.filemode))
            else:
                stack.pop()

    def tree_object(self, oid: str) -> pygit2.Tree | None:
        """A tree through libgit2, to iterate its entries; None if `oid` is no tree."""
        tree = self._get(oid)
        return tree if isinstance(tree, pygit2.Tree) else None

    def _tree(self, oid: str) -> pygit2.Tree:
        tree = self.tree_object(oid)
        if tree is None:
            raise RepositoryError(f"object {oid} is not a tree")
        return tree

    def written_tree(self, oid: str) -> list[tuple[bytes, bytes, bytes]] | None:
        """The entries (mode, name, raw id) of a tree laid out as git writes it (a SHA-1
        id, `_GIT_ENTRY`), parsed in two passes over its bytes rather than one libgit2
        object per entry; None if `oid` is missing, unreadable, no tree or another one."""
        if len(oid) != 40:
            return None
        self.flush_objects()
        try:
            kind, data = self._repo.odb.read(oid)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if kind != pygit2.enums.ObjectType.TREE or not _GIT_ENTRIES.fullmatch(data):
            return None
        return _GIT_ENTRY_ONE.findall(data)

    def edit_tree(self, base: str, changes: Mapping[str, TreeEntry | None]) -> str | None:
        """Tree `base` with the entries at the paths of `changes` set (a file's TreeEntry)
        or removed (None), directories made or left out as they fill or empty: only the
        trees on those paths are read and written, the others stay the base's own. So
        a record of 50,000 outputs of which one changed costs that one's trees.

        None (the caller writes the whole tree) when a tree on those paths is not laid
        out as git writes it (`written_tree`), a change crosses a file or replaces a
        directory, or nothing is left."""
        root = self._editable(base)
        if root is None:
            return None
        # Removals first: a file may give way to a directory, a directory to a file.
        for path, entry in sorted(changes.items(), key=lambda change: change[1] is not None):
            *parents, leaf = path.split("/")
            node = root
            for part in parents:
                child = self._edited_child(node, part)
                if child is None:
                    return None
                node = child
            there = node.get(leaf)
            if entry is None:
                node.pop(leaf, None)
            elif there is None or there == {} or getattr(there, "mode", MODE_TREE) != MODE_TREE:
                node[leaf] = entry  # new, in place of a file, or of a directory now empty
            else:
                return None
        # Directories the removals emptied go, innermost first.
        nodes: list[tuple[dict[str, object], str, dict[str, object]]] = []
        pending = [(root, "", root)]
        while pending:
            parent, name, node = pending.pop()
            nodes.append((parent, name, node))
            pending.extend((node, k, v) for k, v in node.items() if isinstance(v, dict))
        for parent, name, node in reversed(nodes):
            if not node and node is not root:
                del parent[name]
        return self._write_nested(root) if root else None

    def _edited_child(self, node: dict[str, object], name: str) -> dict[str, object] | None:
        """The directory `name` of an edited tree's `node`, read from the base when first
        entered, made when new; None when a file is there."""
        child = node.get(name)
        if isinstance(child, dict):
            return child
        if child is None:
            made: dict[str, object] = {}
            node[name] = made
            return made
        assert isinstance(child, TreeEntry)
        entered = self._editable(child.oid) if child.mode == MODE_TREE else None
        if entered is not None:
            node[name] = entered
        return entered

    def _editable(self, oid: str) -> dict[str, object] | None:
        """A tree's entries by name, as `_write_nested` takes them."""
        rows = self.written_tree(oid)
        if rows is None:
            return None
        try:
            entries: dict[str, object] = {
                name.decode(): TreeEntry(name.decode(), raw.hex(), int(mode, 8))
                for mode, name, raw in rows
            }
        except UnicodeDecodeError:
            return None
        return entries if len(entries) == len(rows) else None  # no name twice

    def list_tree(self, oid: str) -> Iterator[TreeEntry]:
        """The entries of one tree (not recursive), in git's order."""
        tree = self._get(oid)
        if not isinstance(tree, pygit2.Tree):
            raise RepositoryError(f"object {oid} is not a tree")
        for item in tree:
            yield TreeEntry(str(item.name), str(item.id), int(item.filemode))

    def read_commit_file(self, commit: str, path: str) -> bytes | None:
        """The bytes of a blob at `path` in a commit's tree (None if absent or not a blob)."""
        self.flush_objects()
        try:
            obj = self._commit(commit).tree[path]
        except KeyError:
            return None
        if not isinstance(obj, pygit2.Blob):
            return None
        try:
            return bytes(obj.data)
        except KeyError:  # libgit2's NotFoundError: the tree names a blob that is gone
            raise RepositoryError(
                f"object {obj.id} ({path} of commit {commit[:12]}) is missing from "
                f"{self.git_dir}; `git fsck` lists what else is"
            ) from None

    def tree_entry(self, tree_oid: str, path: str) -> TreeEntry | None:
        tree = self._get(tree_oid)
        if not isinstance(tree, pygit2.Tree):
            raise RepositoryError(f"object {tree_oid} is not a tree")
        try:
            item = tree[path]
        except KeyError:
            return None
        return TreeEntry(path, str(item.id), int(item.filemode))

    # -- commits ------------------------------------------------------------------

    def write_commit(
        self, tree: str, parents: Sequence[str], message: str, publish: bool = True
    ) -> str:
        """Create a commit object without moving any ref; it and every object written
        before it are in the store when this returns. `publish=False` (a sweep item's
        record, whose refs wait in a batch): they wait in our writer, to go into one pack
        with the batch's other records; any ref update or object read publishes them."""
        writer = self.objects
        if writer is not None:
            data = self._commit_bytes(tree, parents, message)
            written = writer.write_object("commit", data, False)
            if publish:
                self.flush_objects()
            return written
        author = self._signature()
        oid = _write_object(
            lambda: self._repo.create_commit(
                None,
                author,
                author,
                message,
                pygit2.Oid(hex=tree),
                [pygit2.Oid(hex=p) for p in parents],
            )
        )
        return str(oid)

    def commit_all(self, message: str) -> str:
        """Stage every file and commit on HEAD, like `git add -A && git commit` (demo, tests)."""
        index = self._repo.index
        index.add_all()
        index.write()
        tree = index.write_tree()
        head = self.head_commit()
        author = self._signature()
        parents = [] if head is None else [pygit2.Oid(hex=head)]
        return str(self._repo.create_commit("HEAD", author, author, message, tree, parents))

    def _commit_bytes(self, tree: str, parents: Sequence[str], message: str) -> bytes:
        """A commit object's content as libgit2 writes it: author and committer are the
        repository's default identity (read once), now, in the local time zone."""
        if self._identity is None:
            found = self._signature()
            self._identity = b"%s <%s>" % (found.raw_name, found.raw_email)
        now = time.time()
        offset = (time.localtime(now).tm_gmtoff or 0) // 60
        sign = "-" if offset < 0 else "+"
        stamp = b"%s %d %s%02d%02d" % (
            self._identity,
            int(now),
            sign.encode(),
            abs(offset) // 60,
            abs(offset) % 60,
        )
        lines = [b"tree " + _hex_oid(tree)]
        lines += [b"parent " + _hex_oid(p) for p in parents]
        lines += [b"author " + stamp, b"committer " + stamp, b"", message.encode()]
        return b"\n".join(lines)

    def _signature(self) -> pygit2.Signature:
        try:
            return self._repo.default_signature
        except (KeyError, pygit2.GitError):
            return pygit2.Signature("gitcache", "gitcache@localhost")

    # -- refs -----------------------------------------------------------------------

    def ref_target(self, name: str) -> str | None:
        ref = self._repo.references.get(name)
        if ref is None:
            return None
        return str(ref.resolve().target)

    def refs(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(name, target) of every direct ref whose name starts with prefix, sorted by name."""
        found: list[tuple[str, str]] = []
        # One pass over the refs, reading each target as we go (10,000 refs in ~0.1 s);
        # looking each name up again would double the cost.
        for ref in self._repo.references.iterator():
            name = ref.name
            if name.startswith(prefix):
                target = ref.target
                if isinstance(target, pygit2.Oid):
                    found.append((name, str(target)))
                else:
                    resolved = self.ref_target(name)
                    if resolved is not None:
                        found.append((name, resolved))
        found.sort()
        yield from found

    def update_refs(self, updates: Sequence[RefUpdate], message: str = "gitcache") -> None:
        """Apply all updates atomically, or none; raise RefConflict on a lost race.

        Every ref is locked (git's own `.lock` names) before its current value is
        compared, so the comparison and the write cannot be separated by another writer.
        The objects our writer holds are published first: objects before refs, always.
        Refs are set in one rewrite of packed-refs when that can be done
        (packedrefs.py): one new file for any number of refs (a batch of sweep items'),
        and its locks are links that a killed gitcache's successor recognizes and takes
        over (a killed libgit2 transaction leaves `.lock` files that only a person may
        remove). Else (deletions, a lock someone holds, reftable, ...) as below.
        """
        self.flush_objects()
        if self._packed_refs_ok():
            from gitcache import packedrefs

            try:
                packedrefs.update_packed(self.common_dir, self.state_dir, updates, ANY)
                return
            except packedrefs.Conflict as exc:
                raise RefConflict(exc.name, exc.expected, exc.found) from None
            except packedrefs.InTheWay as exc:
                raise RepositoryError(
                    f"cannot write ref {exc.name}: the ref {exc.other} is in the way",
                    hint=f"remove it if it is not yours: git update-ref -d {exc.other}",
                ) from None
            except packedrefs.Unsuitable:
                pass  # a reference transaction waits for locks and says what is wrong
        start = time.monotonic()
        told = retried = False
        while True:
            try:
                self._apply_refs(updates, message)
                return
            except pygit2.GitError as exc:
                # A ref in the way (libgit2 says "cannot lock ref" for that too) will not
                # go away by waiting; looked for once, not on every retry.
                blocked = None if retried else self._in_the_way(updates)
                if blocked is not None:
                    raise blocked from exc
                if "lock" not in str(exc).lower():
                    raise RepositoryError(f"could not update refs: {exc}") from exc
                held = _LOCK_FILE.search(str(exc))
                lock = held[1] if held else "a ref's .lock file"
                waited = time.monotonic() - start
                if waited > _LOCK_WAIT_SECONDS:
                    raise RepositoryError(
                        f"could not update refs: {lock} exists: another git process is "
                        f"updating that ref, or one was killed (waited {waited:.0f} s)",
                        hint=f"if no git process is running, remove it: rm '{lock}'"
                        if held
                        else f"libgit2 said: {exc}",
                    ) from exc
                if not told and waited > _LOCK_NOTICE_SECONDS and self.on_wait is not None:
                    self.on_wait(f"waiting for lock {lock} (another git process?)")
                    told = True
                retried = True
                time.sleep(0.02)

    def _packed_refs_ok(self) -> bool:
        """Whether refs may be written straight into packed-refs: the files backend (not
        reftable), and no reflog asked for every ref (libgit2 writes those)."""
        if self._packed_ok is None:
            storage = (self.config_value("extensions.refstorage") or "files").lower()
            logs = (self.config_value("core.logallrefupdates") or "").lower()
            self._packed_ok = storage == "files" and logs != "always"
        return self._packed_ok

    def _in_the_way(self, updates: Sequence[RefUpdate]) -> RepositoryError | None:
        """A ref that stands where an update needs a directory, or refs below an update."""
        for update in updates:
            parts = update.name.split("/")
            for n in range(2, len(parts)):
                above = "/".join(parts[:n])
                if self.ref_target(above) is not None:
                    return RepositoryError(
                        f"cannot write ref {update.name}: the ref {above} is in the way",
                        hint=f"remove it if it is not yours: git update-ref -d {above}",
                    )
            below = next(self.refs(update.name + "/"), None)
            if update.new is not None and below is not None:
                return RepositoryError(
                    f"cannot write ref {update.name}: the ref {below[0]} is in the way",
                    hint=f"remove it if it is not yours: git update-ref -d {below[0]}",
                )
        return None

    def _apply_refs(self, updates: Sequence[RefUpdate], message: str) -> None:
        with self._repo.transaction() as txn:
            for update in updates:
                txn.lock_ref(update.name)
            for update in updates:
                if update.expected != ANY:
                    current = self.ref_target(update.name)
                    if current != update.expected:
                        raise RefConflict(update.name, update.expected, current)
            for update in updates:
                if update.new is None:
                    if self.ref_target(update.name) is not None:
                        txn.remove(update.name)
                else:
                    txn.set_target(update.name, pygit2.Oid(hex=update.new), message=message)

    # -- worktree state ------------------------------------------------------------------

    def changed_tracked_files(self) -> list[str]:
        """Tracked paths whose worktree or index content differs from HEAD."""
        flags = self._repo.status(untracked_files="no")
        return sorted(
            path for path, flag in flags.items() if flag != pygit2.enums.FileStatus.CURRENT
        )

    def source_state(self, changed: Sequence[str]) -> tuple[object, ...]:
        """What a status of the tracked files depends on, short of a stat of every one:
        HEAD, the index file's stat and the stat of each of `changed` (provenance.py)."""
        head = None if self._repo.head_is_unborn else str(self._repo.head.target)
        return (
            head,
            _stat_key(self._index_file),
            *(_stat_key(self.root / path) for path in changed),
        )

    def tracks_any(self, paths: Sequence[str]) -> bool:
        """Whether the index holds any of `paths` (files, relative to the root)."""
        state = _stat_key(self._index_file)
        if self._tracked is None or self._tracked[0] != state:
            index = self._repo.index
            index.read(False)  # again if the file changed (a command ran `git add`)
            self._tracked = (state, frozenset(entry.path for entry in index))
        tracked = self._tracked[1]
        return bool(tracked) and any(path in tracked for path in paths)

    def worktree_tree(self, changed: Sequence[str]) -> str:
        """The tree `git add -u && git write-tree` would give, without touching the index.

        Starts from HEAD's tree (empty when unborn) and applies `changed` (from
        changed_tracked_files): a path still in the index takes its worktree content
        (through git's clean filters), a path gone from the worktree or the index goes.
        """
        snapshot = pygit2.Index()
        head = self.head_commit()
        if head is not None:
            snapshot.read_tree(self._commit(head).tree)
        index = self._repo.index
        filemode = self.config_value("core.filemode") not in ("false", "False")
        for path in changed:
            try:
                st = os.lstat(self.root / path)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            try:
                tracked: pygit2.IndexEntry | None = index[path]
            except KeyError:
                tracked = None
            if st is None or tracked is None:
                if path in snapshot:
                    snapshot.remove(path)
                continue
            if stat.S_ISDIR(st.st_mode):  # a submodule: keep the recorded gitlink
                continue
            # Read again if the file changes meanwhile (a step may be writing it).
            (oid, _size), _ = read_stable(
                self.root / path, path, self._blob_from_workdir, size_of=lambda v: v[1]
            )
            if stat.S_ISLNK(st.st_mode):
                mode = MODE_LINK
            elif not filemode:
                mode = int(tracked.mode)
            else:
                mode = MODE_EXEC if st.st_mode & 0o111 else MODE_FILE
            snapshot.add(pygit2.IndexEntry(path, oid, pygit2.enums.FileMode(mode)))
        return str(snapshot.write_tree(self._repo))

    def _blob_from_workdir(self, path: Path) -> tuple[pygit2.Oid, int | None]:
        """A worktree file as a blob, through git's clean filters (as `git add` does), and
        the blob's size when no filter applies to the path: the bytes read, which
        read_stable checks against the stat (None when a filter may change the size)."""
        rel = path.relative_to(self.root).as_posix()
        oid = _write_object(lambda: self._repo.create_blob_fromworkdir(rel))
        if self._repo.load_filter_list(rel) is not None:
            return oid, None
        return oid, self.blob_size(str(oid))

    def commits_between(self, tip: str, hide: Sequence[str] = ()) -> list[str]:
        """Commits reachable from tip but from none of `hide` (`git rev-list tip ^hide...`)."""
        self.flush_objects()
        walker = self._repo.walk(pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL)
        for oid in hide:
            walker.hide(pygit2.Oid(hex=oid))
        return [str(commit.id) for commit in walker]

    def last_amend(self) -> tuple[str, str] | None:
        """(old, new) of HEAD's newest reflog entry, if `git commit --amend` wrote it."""
        try:
            entry = next(iter(self._repo.references["HEAD"].log()))
        except (KeyError, StopIteration, pygit2.GitError):
            return None
        if not str(entry.message).startswith("commit (amend)"):
            return None
        return str(entry.oid_old), str(entry.oid_new)

    def add_config_include(self, path: str) -> None:
        """Add `include.path = path` to the repository's config, once."""
        pattern = "^" + re.escape(path) + "$"
        self._repo.config.set_multivar("include.path", pattern, path)

    def remove_config_include(self, path: str) -> None:
        pattern = "^" + re.escape(path) + "$"
        with contextlib.suppress(KeyError, pygit2.GitError):
            self._repo.config.delete_multivar("include.path", pattern)

    def config_value(self, name: str) -> str | None:
        try:
            return str(self._repo.config[name])
        except KeyError:
            return None


def _write_object(write: Callable[[], T]) -> T:
    """Call a libgit2 object write, again when a `git prune` removed its directory."""
    for attempt in range(_OBJECT_WRITE_ATTEMPTS):
        try:
            return write()
        except OSError as exc:
            if attempt + 1 == _OBJECT_WRITE_ATTEMPTS or not _OBJECT_WRITE_RACE.search(str(exc)):
                raise
            time.sleep(0.001 * (attempt + 1))
    raise AssertionError("unreachable")


def _entry_name(name: str) -> bytes:
    """A tree entry's name, refused as libgit2 and `git fsck` refuse it."""
    if name in ("", ".", "..") or "/" in name or "\0" in name or name.lower() == ".git":
        raise RepositoryError(f"invalid tree entry name {name!r}")
    return name.encode()


def _hex_oid(oid: str) -> bytes:
    if len(oid) != 40 or not all(c in "0123456789abcdef" for c in oid):
        raise RepositoryError(f"invalid object id {oid!r}")
    return oid.encode()


def relative_posix(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _stat_key(path: Path) -> tuple[int, ...] | None:
    """What changes when a file is written, replaced or removed (None: absent)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)
