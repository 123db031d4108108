"""Reading a repository's files directly, without libgit2: where the repository is,
a ref, a loose object.

A Python step's hit in a new process reads one ref and four small objects; opening
the repository through libgit2 costs more than all of that (docs/benchmarks.md).
Everything here is a reader, and a cautious one: whatever it does not know for sure
(a layout libgit2 might see differently, a symbolic or reftable ref, a packed object,
a SHA-256 repository, a file it cannot parse) gives None, and the caller asks libgit2
(`gitrepo.py`) instead. Every object it returns was checked against its id.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import stat
import zlib
from dataclasses import dataclass
from typing import Any, Final

_small_sha1: Any
try:
    _small_sha1 = importlib.import_module("_sha1").sha1
except ImportError:  # a Python built without its own hashes: hashlib's for all
    _small_sha1 = None

# Bigger objects are left to libgit2 (a hit reads record.json and small results).
MAX_OBJECT: Final = 16 << 20
# Up to this size an object's id is checked by CPython's own SHA-1 (its first use in a
# process costs a few µs, OpenSSL's through hashlib tens), beyond by hashlib's (faster).
_SMALL_HASH: Final = 1 << 16
_HEX40: Final = re.compile(rb"[0-9a-f]{40}")
_OID40: Final = re.compile(r"[0-9a-f]{40}")
# Settings of the repository's config under which libgit2 may place the worktree or
# read refs and objects otherwise than the plain layout read here.
_CONFIG_UNSURE: Final = re.compile(
    rb"worktree|\[\s*include|\[\s*extensions|bare\s*=\s*(true|yes|on|1)", re.IGNORECASE
)


@dataclass(frozen=True)
class GitDirs:
    """Where a non-bare repository's files are, as libgit2 would find them."""

    root: str  # the worktree (a real path)
    git_dir: str  # this worktree's git dir
    common_dir: str  # the git dir shared by all worktrees (refs, objects, config)

    @property
    def objects(self) -> str:
        return os.path.join(self.common_dir, "objects")

    @property
    def linked(self) -> bool:
        return self.git_dir != self.common_dir


def find_repository(start: str) -> GitDirs | None:
    """The repository holding `start` (a real path: no symlinks in it, as os.getcwd()
    gives), found as libgit2's discovery would; None whenever that is not certain.

    Certain means: a `.git` directory, or a `.git` file of a linked worktree, in
    `start` or a parent on the same file system (libgit2 stops at a mount point);
    owned by this user (libgit2 refuses other owners' repositories unless configured);
    and a config without core.worktree, core.bare, includes or extensions.
    """
    path = start
    if not os.path.isabs(path) or "/.git/" in f"{path}/":
        return None
    device = None
    while True:
        dot_git = f"{path.rstrip('/')}/.git"
        try:
            return _repository_at(path, dot_git, os.lstat(dot_git))
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            if os.path.exists(os.path.join(path, "HEAD")):
                return None  # perhaps a git dir itself: libgit2 decides
            parent = os.path.dirname(path)
            if device is None:
                device = os.stat(path).st_dev
            if parent == path or os.stat(parent).st_dev != device:
                return None
        except OSError:
            return None
        path = parent


def _repository_at(root: str, dot_git: str, st: os.stat_result) -> GitDirs | None:
    uid = os.geteuid()
    if stat.S_ISDIR(st.st_mode):
        git_dir = common_dir = dot_git
    elif stat.S_ISREG(st.st_mode):
        text = _read_small(dot_git)
        if text is None or not text.startswith(b"gitdir: "):
            return None
        try:
            target = os.fsdecode(text[8:].strip())
            git_dir = os.path.realpath(os.path.join(root, target))
            common = _read_small(os.path.join(git_dir, "commondir"))
        except (OSError, ValueError):
            return None
        if common is None:
            return None  # a submodule's git dir (core.worktree), or no linked worktree
        common_dir = os.path.realpath(os.path.join(git_dir, os.fsdecode(common.strip())))
    else:
        return None  # a symlink: libgit2 resolves it its own way
    try:
        if os.stat(root).st_uid != uid or os.stat(git_dir).st_uid != uid:
            return None
    except OSError:
        return None
    # What libgit2 asks of a git dir before it takes it (else it looks further up).
    if not os.path.isfile(f"{git_dir}/HEAD") or not os.path.isdir(f"{common_dir}/objects"):
        return None
    config = _read_small(os.path.join(common_dir, "config"))
    if config is None or _CONFIG_UNSURE.search(config):
        return None
    return GitDirs(root, git_dir, common_dir)


def _read_small(path: str, limit: int = 1 << 16) -> bytes | None:
    """A small file's bytes (None: absent, unreadable, or `limit` bytes or more).
    os.open and one os.read: a fifth of open().read()'s cost for a 41-byte ref."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) < limit else None


def _read_all(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one more: a file that grew is read to its end
        if len(data) > size:
            pieces = [data]
            while piece := os.read(fd, 1 << 20):
                pieces.append(piece)
            data = b"".join(pieces)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data


def read_ref(common_dir: str, name: str) -> str | None:
    """The object id a shared ref (`refs/...`, not a per-worktree one) names: its
    loose file, else its line in packed-refs. None when absent, symbolic, or not
    readable as git writes it."""
    data = _read_small(f"{common_dir}/{name}", 4096)
    if data is not None:
        line = data.rstrip(b"\n")
        return line.decode() if _HEX40.fullmatch(line) else None
    packed = _read_packed(common_dir)
    if packed is None:
        return None
    wanted = b" " + name.encode() + b"\n"
    at = packed.find(wanted)
    while at >= 0:
        start = at - 40
        if start >= 0 and (start == 0 or packed[start - 1 : start] == b"\n"):
            oid = packed[start:at]
            return oid.decode() if _HEX40.fullmatch(oid) else None
        at = packed.find(wanted, at + 1)
    return None


def _read_packed(common_dir: str) -> bytes | None:
    data = _read_all(os.path.join(common_dir, "packed-refs"))
    if data is None:
        return None
    return data if data.endswith(b"\n") else data + b"\n"


def read_loose(objects: str, oid: str) -> tuple[str, bytes] | None:
    """(type, content) of a loose object, checked against its id; None when it is not
    loose here (packed, through alternates, a SHA-256 id), over MAX_OBJECT, or not a
    well-formed object with that id."""
    if not _OID40.fullmatch(oid):
        return None
    raw = _read_all(f"{objects}/{oid[:2]}/{oid[2:]}")
    if raw is None:
        return None
    engine = zlib.decompressobj()
    try:
        # At most one byte more than the limit: a bigger object is never inflated in full.
        data = engine.decompress(raw, MAX_OBJECT + 64)
    except zlib.error:
        return None
    end = data.find(b"\0", 0, 32)
    if end < 0 or not engine.eof:
        return None
    kind, _, digits = data[:end].partition(b" ")
    if kind not in (b"blob", b"tree", b"commit", b"tag") or not digits.isdigit():
        return None
    if int(digits) != len(data) - end - 1 or _sha1_hex(data) != oid:
        return None
    return kind.decode(), data[end + 1 :]


def _sha1_hex(data: bytes) -> str:
    if len(data) <= _SMALL_HASH and _small_sha1 is not None:
        return str(_small_sha1(data).hexdigest())
    return hashlib.sha1(data).hexdigest()


def commit_tree(content: bytes) -> str | None:
    """The tree id a commit object names (its first line)."""
    if content[:5] != b"tree " or content[45:46] != b"\n":
        return None
    oid = content[5:45]
    return oid.decode() if _HEX40.fullmatch(oid) else None


def tree_entries(content: bytes) -> dict[str, tuple[int, str]] | None:
    """name -> (mode, object id) of a tree object's entries; None if malformed."""
    entries: dict[str, tuple[int, str]] = {}
    pos = 0
    size = len(content)
    while pos < size:
        space = content.find(b" ", pos)
        nul = content.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 21 > size:
            return None
        try:
            mode = int(content[pos:space], 8)
            name = content[space + 1 : nul].decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not name or "/" in name or name in entries:
            return None
        entries[name] = (mode, content[nul + 1 : nul + 21].hex())
        pos = nul + 21
    return entries
