"""The `outputs/` tree of a record of format 3, read as a hostile one could be laid out.

From format 3 on, record.json lists only the outputs stored in chunks: every other
output is a blob entry of the record's tree under `outputs/`, and that tree is the list
(path, mode, blob id; the size is the object's header). So re-recording a directory of
50,000 files of which one changed writes that blob, the trees above it and a small
record.json, not a 5 MB list of every file again (docs/format.md).

A fetched tree can hold what git itself never writes: names with a slash, `..`, `.git`
in any case, non-UTF-8 bytes, the same name twice, gitlinks, odd modes, entries that
name missing objects or objects of another type. Each is refused here, naming the
record, so nothing downstream sees a path that check_relative_path would refuse.

Two readings of one rule: `_usual` takes a tree as git and gitcache write it, each tree's
entries parsed and checked in a few C-level passes, its blobs' sizes read from their
pack entries in one pass, and gives up (None) at anything else; the entry-by-entry walk
then reads it again and says what is wrong. So a hostile tree meets the walk's checks
and messages, and a usual one of 50,000 files costs a few times less.
"""

from __future__ import annotations

import re
from typing import NoReturn

import pygit2

from gitcache.errors import RepositoryError, UnsafeRecord
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE, GitRepo
from gitcache.processes import collector_paused
from gitcache.record import (
    LINK_MAX,
    PLAIN_COMPONENT,
    OutputFile,
    check_relative_path,
    shown_path,
    validate_outputs,
)

_BLOB_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK})

_MODES = {b"100644": MODE_FILE, b"100755": MODE_EXEC, b"120000": MODE_LINK}
# Names, NUL-separated, each a component that check_relative_path takes at first sight.
_PLAIN_NAMES = re.compile(rf"(?:{PLAIN_COMPONENT}\0)*{PLAIN_COMPONENT}", re.ASCII)


def read_outputs(repo: GitRepo, tree: str | None, where: str) -> tuple[list[OutputFile], bool]:
    """The outputs stored whole in a record's `outputs/` tree (`tree`: that tree's id,
    None when the record has none), sorted by path, and whether every tree under `tree`
    is laid out as git writes it (GitRepo.written_tree: the record's next one may be an
    edit of it); raises UnsafeRecord, or RepositoryError for an object the repository
    lacks."""
    if tree is None:
        return [], False
    with collector_paused():  # 50,000 OutputFiles: a tenth of the cost otherwise
        usual = _usual(repo, tree)
    return (usual, True) if usual is not None else (_walk(repo, tree, where), False)


def _walk(repo: GitRepo, tree: str, where: str) -> list[OutputFile]:
    """read_outputs entry by entry, through libgit2: any tree, each defect named."""
    rows: list[tuple[str, str, int]] = []  # (path, blob id, mode)
    # A stack of (entries being listed, path prefix, names seen there), not recursion:
    # a fetched tree may nest deeper than Python's recursion limit.
    stack = [(iter(_tree(repo, tree, where, "outputs")), "", set[bytes]())]
    while stack:
        items, base, seen = stack[-1]
        for item in items:
            raw = item.raw_name or b""  # None only for objects that are no tree entry
            if raw in seen:
                raise UnsafeRecord(f"{where}: outputs/{base}{_shown(raw)} is in its tree twice")
            seen.add(raw)
            path = base + _name(raw, base, where)
            mode = item.filemode
            if mode == MODE_TREE:
                stack.append((iter(_tree(repo, str(item.id), where, path)), path + "/", set()))
                break
            if mode not in _BLOB_MODES:
                raise UnsafeRecord(
                    f"{where}: outputs/{shown_path(path)} has mode {mode:o}, not a file's "
                    "(100644, 100755) or a symlink's (120000)"
                )
            try:
                check_relative_path(path)
            except ValueError as exc:
                raise UnsafeRecord(f"{where}: outputs/{shown_path(path)}: {exc}") from None
            rows.append((path, str(item.id), int(mode)))
        else:
            stack.pop()
    return _outputs(repo, sorted(rows), where)


def _outputs(repo: GitRepo, rows: list[tuple[str, str, int]], where: str) -> list[OutputFile]:
    """The rows as validated OutputFiles, each size read from its blob's header."""
    found: list[dict[str, object]] = []
    for path, oid, mode in rows:
        header = repo.read_header(oid)
        if header is None or header[0] != "blob":
            _not_a_blob(repo, header, path, oid, where)
        found.append({"path": path, "blob": oid, "mode": mode, "size": header[1]})
    # Validated as record.json's outputs are, a symlink's size under PATH_MAX included.
    try:
        return validate_outputs(found)
    except ValueError as exc:
        index, message = exc.args
        path = rows[index][0] if isinstance(index, int) else "?"
        raise UnsafeRecord(f"{where}: outputs/{shown_path(path)}: {message}") from None


def _usual(repo: GitRepo, tree: str) -> list[OutputFile] | None:
    """The outputs, as the walk gives them, of a tree with nothing unusual; else None.

    None for anything the walk refuses and more (an odd mode, a SHA-256 id, an empty
    tree, a packed delta is left to it too, or to libgit2): what this takes, the walk
    would take as well, with the same outputs."""
    paths: list[str] = []
    ids: list[bytes] = []
    modes: list[int] = []
    stack = [(tree, "")]
    while stack:
        oid, base = stack.pop()
        entries = repo.written_tree(oid)  # as git lays it out, or None
        if entries is None:
            return None
        raw = [name for _, name, _ in entries]
        if len(set(raw)) != len(raw):
            return None
        try:
            text = b"\0".join(raw).decode()
        except UnicodeDecodeError:
            return None
        names = text.split("\0")
        # A path is safe when each of its components is (check_relative_path's rules
        # are all per component), and a name here holds no '/'.
        if not _PLAIN_NAMES.fullmatch(text):
            try:
                for name in names:
                    check_relative_path(name)
            except ValueError:
                return None
        for (kind, _, entry), name in zip(entries, names, strict=True):
            if kind == b"40000":
                stack.append((entry.hex(), f"{base}{name}/"))
            else:
                paths.append(base + name)
                ids.append(entry)
                modes.append(_MODES[kind])
    order = sorted(range(len(paths)), key=paths.__getitem__)
    oids = [ids[i].hex() for i in order]
    sizes = repo.blob_sizes(oids)
    outputs = []
    for index, oid, size in zip(order, oids, sizes, strict=True):
        mode = modes[index]
        if size is None or (mode == MODE_LINK and size >= LINK_MAX):
            return None
        outputs.append(OutputFile(path=paths[index], blob=oid, mode=mode, size=size))
    return outputs


def _not_a_blob(
    repo: GitRepo, header: tuple[str, int] | None, path: str, oid: str, where: str
) -> NoReturn:
    if header is None:  # git fetch brings every object a record names: the repository's
        raise RepositoryError(
            f"object {oid} (outputs/{path} of {where}) is missing from {repo.git_dir} or "
            "cannot be read",
            hint="`git fsck` lists the damaged objects; fetch them again from a clone",
        )
    raise UnsafeRecord(f"{where}: outputs/{path}: object {oid} is a {header[0]}, not a blob")


def _tree(repo: GitRepo, oid: str, where: str, path: str) -> pygit2.Tree:
    tree = repo.tree_object(oid)
    if tree is None:
        raise UnsafeRecord(f"{where}: {shown_path(path)} is not a directory of its tree")
    return tree


def _name(raw: bytes, base: str, where: str) -> str:
    """One entry's name as a path component: UTF-8, no slash (git trees never hold
    one; a crafted entry `a/b` would pass for a file b in a directory a)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeRecord(
            f"{where}: outputs/{base}{_shown(raw)}: path is not valid UTF-8"
        ) from None
    if "/" in name:
        raise UnsafeRecord(f"{where}: outputs/{base}{name!r}: a name in a tree may not hold '/'")
    return name


def _shown(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")
