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
"""

from __future__ import annotations

from typing import NoReturn

import pygit2
from pydantic import TypeAdapter, ValidationError

from gitcache.errors import RepositoryError, UnsafeRecord
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, MODE_TREE, GitRepo
from gitcache.record import OutputFile, check_relative_path, shown_path

_BLOB_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK})
_OUTPUT_LIST = TypeAdapter(list[OutputFile])


def whole_outputs(repo: GitRepo, tree: str | None, where: str) -> list[OutputFile]:
    """The outputs stored whole in a record's `outputs/` tree (`tree`: that tree's id,
    None when the record has none), sorted by path; raises UnsafeRecord, or
    RepositoryError for an object the repository lacks."""
    if tree is None:
        return []
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
    # Validated as record.json's outputs are (in one call: ~4 us an output, a third of
    # what constructing them one by one costs), a symlink's size under PATH_MAX included.
    try:
        return _OUTPUT_LIST.validate_python(found)
    except ValidationError as exc:
        first = exc.errors()[0]
        index = first["loc"][0]
        path = rows[index][0] if isinstance(index, int) else "?"
        raise UnsafeRecord(f"{where}: outputs/{shown_path(path)}: {first['msg']}") from None


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
