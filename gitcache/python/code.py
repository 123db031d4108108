"""The code of a Python step: its function and what it uses from the same repository.

A step's code is its function's normalized syntax tree (`astnorm`), plus,
transitively, every function, class and module-level constant *of the same
repository* it references through its globals and closure cells (also from
default values, annotations and decorators of the helpers). Editing a helper
therefore changes the step's signature; reformatting, comments and docstrings do
not. Code from outside the repository (the standard library, site-packages) is
not followed: the top-level names of such modules are collected instead, so that
their versions can be recorded.

"Same repository" means defined in a file under the worktree root that is not in
a `site-packages` or `dist-packages` directory, or defined interactively (a
notebook cell, whose source `linecache` holds but which is no file on disk).

Every item is keyed by where it lives, `<file relative to the root>:<qualname>`
(`<interactive>:<qualname>` for notebook cells), never by module name, so a
script's function (`__main__`) and the same function imported by a task worker
have the same code.

Standard library only (see astnorm): constants other than JSON-like literals are
encoded by a function the caller passes in.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import functools
import hashlib
import importlib.util
import inspect
import json
import linecache
import os
import stat
import sys
import tempfile
import time
import types
import typing
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gitcache.python.astnorm import constant, normalize

INTERACTIVE: Final = "<interactive>"
FORMS_DIR: Final = "python-code-v1"  # under the state dir (.git/gitcache/)
# `gitcache gc` drops form files no process has read for this long, then the least
# recently used ones while they hold more than FORMS_MAX_BYTES.
FORMS_UNUSED_DAYS: Final = 30
FORMS_MAX_BYTES: Final = 64 << 20
_TOUCH_SECONDS: Final = 86400  # a form file read is marked used at most once a day
_OUTSIDE_DIRS: Final = frozenset({"site-packages", "dist-packages"})
_MISSING: Final = object()
_OBJECT_DEPTH: Final = 2  # objects within objects whose attributes are walked for code
# Top-level modules whose versions are not worth recording (gitcache records its own).
_NOT_PACKAGES: Final = frozenset({"builtins", "__main__", "gitcache"})


class CodeError(Exception):
    """The code of a function cannot be read or described (message names what)."""


@dataclass
class CodeDocument:
    """What a step's code component is computed from."""

    main: str  # key of the step function
    entries: dict[str, Any]  # key -> canonical JSON value, the step function included
    packages: set[str] = field(default_factory=set)  # top-level modules from outside the repo
    # (namespace, name, value) of every global binding read, and (cell, value) of every
    # closure cell: while all still hold the same objects, the document is still true.
    bindings: list[tuple[Mapping[str, Any], str, Any]] = field(default_factory=list)
    cells: list[tuple[types.CellType, Any]] = field(default_factory=list)
    # key -> hash of its entry, for the entries whose hash came with their cached form
    digests: dict[str, str] = field(default_factory=dict)
    # (form, how to compute it again) of every constant that can change in place (a
    # dict, a list, an array, an object's attributes): the same object, mutated, is
    # another constant.
    mutables: list[tuple[Any, Callable[[], Any]]] = field(default_factory=list)

    def still_valid(self) -> bool:
        """Whether every binding the document was built from still holds the same object,
        and every mutable constant still has the value it had."""
        for namespace, name, value in self.bindings:
            if namespace.get(name, _MISSING) is not value:
                return False
        for cell, value in self.cells:
            try:
                if cell.cell_contents is not value:
                    return False
            except ValueError:  # emptied
                return False
        return all(compute() == form for form, compute in self.mutables)

    def settle(self) -> None:
        """Take the mutable constants' values as they are now (after a step's function
        ran: what the code itself changes, a cache it fills, is no edit of the code)."""
        self.mutables = [(compute(), compute) for _form, compute in self.mutables]


# The documents built in this process, settled after every step's run (`settle_all`).
_LIVE: weakref.WeakValueDictionary[int, CodeDocument] = weakref.WeakValueDictionary()


def settle_all() -> None:
    """After a step's function ran: mutable constants it (or a helper) changed, in any
    step's document, are not changes made between calls."""
    for document in list(_LIVE.values()):
        if document.mutables:
            document.settle()


def json_constant(value: Any) -> Any:
    """A JSON-like constant's canonical value; raise TypeError for anything else."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return constant(value)
    if isinstance(value, list | tuple):
        return [type(value).__name__, [json_constant(v) for v in value]]
    if isinstance(value, set | frozenset):
        items = [json_constant(v) for v in value]
        items.sort(key=repr)
        return [type(value).__name__, items]
    if isinstance(value, dict):
        pairs = [[json_constant(k), json_constant(v)] for k, v in value.items()]
        pairs.sort(key=repr)
        return ["dict", pairs]
    raise TypeError(f"not a literal constant: {type(value).__name__}")


class FormCache:
    """Normalized forms of definitions, by the hash of their file's bytes, on disk.

    A new process asking for a step's code would parse and normalize every file the
    step's code lives in; the forms (and the names each definition loads) depend only
    on the file's bytes (its text), so they are kept under their hash (no stat
    involved: an edit within one mtime tick still changes the key), one small JSON
    file per version of a source file: `.git/gitcache/python-code-v1/<2 hex>/<hash>.json`
    (a notebook cell's: by the hash of its text). A process reads only the files of
    the sources it uses, and marks each it reads used (its mtime, once a day):
    `prune_forms` (run by `gitcache gc`) drops those unused for a while.
    """

    def __init__(self, directory: Path | None) -> None:
        self._dir = directory
        self._files: dict[str, dict[str, Any]] = {}  # source hash -> forms of that source
        self._changed: set[str] = set()

    def _forms_of(self, digest: str) -> dict[str, Any]:
        forms = self._files.get(digest)
        if forms is None:
            forms = {}
            if self._dir is not None:
                path = f"{self._dir}/{digest[:2]}/{digest}.json"
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        st = os.fstat(fd)
                        raw = _read_rest(fd, st.st_size)
                        # Used now (gc drops the unused): to the day, one write a day.
                        if time.time() - st.st_mtime > _TOUCH_SECONDS:
                            with contextlib.suppress(OSError):
                                os.utime(fd)
                    finally:
                        os.close(fd)
                    data = json.loads(raw)
                    if isinstance(data, dict):
                        forms = data
                except (OSError, ValueError):
                    forms = {}  # only a cache: parse again
            self._files[digest] = forms
        return forms

    def get(self, digest: str, key: str) -> Any:
        return self._forms_of(digest).get(key)

    def put(self, digest: str, key: str, value: Any) -> None:
        self._forms_of(digest)[key] = value
        self._changed.add(digest)

    def save(self) -> None:
        if self._dir is None:
            return
        for digest in sorted(self._changed):
            target = self._dir / digest[:2] / f"{digest}.json"
            payload = json.dumps(self._files[digest], separators=(",", ":"))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".forms-")
                with os.fdopen(fd, "w") as handle:
                    handle.write(payload)
                os.replace(tmp, target)
            except OSError:  # only a cache
                with contextlib.suppress(OSError, UnboundLocalError):
                    os.unlink(tmp)
        self._changed.clear()


_REAL_ROOTS: dict[Path, Path] = {}


def known_real_root(root: Path) -> None:
    """Tell the walkers that `root` is a real path already (the session found it so)."""
    _REAL_ROOTS[root] = root


def _read_file(filename: str) -> tuple[bool, bytes | None]:
    """(whether it is a regular file, its bytes; None if unreadable)."""
    try:
        # O_NONBLOCK: a FIFO of that name is not waited for (it is no file).
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return False, None
    except OSError:
        return os.path.isfile(filename), None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False, None
        return True, _read_rest(fd, st.st_size)
    except OSError:
        return True, None
    finally:
        os.close(fd)


def _read_rest(fd: int, size: int) -> bytes:
    """A file's bytes from an open descriptor, `size` (fstat's) being likely right."""
    data = os.read(fd, size + 1)  # one more: a file that grew is read to its end
    if len(data) <= size:
        return data
    pieces = [data]
    while piece := os.read(fd, 1 << 20):
        pieces.append(piece)
    return b"".join(pieces)


def _real_root(root: Path) -> Path:
    """`root` with symlinks resolved, once per process (walkers are made per call)."""
    real = _REAL_ROOTS.get(root)
    if real is None:
        real = _REAL_ROOTS[root] = Path(os.path.realpath(root))
    return real


def prune_forms(state_dir: Path, now: float) -> int:
    """Drop the form files (FormCache) unused for FORMS_UNUSED_DAYS, then the least
    recently used while the rest exceed FORMS_MAX_BYTES; how many went. Only cache:
    a process that needs one again parses its source file again."""
    directory = state_dir / FORMS_DIR
    found: list[tuple[float, int, Path]] = []
    try:
        buckets = list(directory.iterdir())
    except OSError:
        return 0
    for bucket in buckets:
        try:
            entries = list(bucket.iterdir()) if bucket.is_dir() else []
        except OSError:
            continue
        for path in entries:
            try:
                st = path.lstat()
            except OSError:
                continue
            found.append((st.st_mtime, st.st_size, path))
    found.sort(key=lambda item: item[0], reverse=True)  # most recently used first
    cutoff = now - FORMS_UNUSED_DAYS * 86400
    kept = 0
    dropped = 0
    for used, size, path in found:
        if used >= cutoff:
            # ".forms-" files are another process's writes in progress (a crash's
            # leftovers go once unused for long enough).
            if path.name.startswith("."):
                continue
            if kept + size <= FORMS_MAX_BYTES:
                kept += size
                continue
        with contextlib.suppress(OSError):
            path.unlink()
            dropped += 1
    for bucket in buckets:
        with contextlib.suppress(OSError):
            bucket.rmdir()  # only when empty
    return dropped


class CodeWalker:
    """Builds the CodeDocument of one function (one use: call `document` once)."""

    def __init__(
        self,
        root: Path,
        encode_constant: Callable[[Any], Any] | None = None,
        forms: FormCache | None = None,
        hash_entry: Callable[[Any], str] | None = None,
    ) -> None:
        self.root = _real_root(root)
        # The hash of a function's or class's entry, kept with its form in the cache: a
        # new process does not serialize a big definition's form again to hash it.
        self._hash_entry = hash_entry
        self._root_prefix = str(self.root).rstrip(os.sep) + os.sep
        self._encode = encode_constant
        self._forms = forms or FormCache(None)
        self._digests: dict[str, str] = {}
        self._sources: dict[str, bytes] = {}
        self._texts: dict[str, str] = {}
        self._trees: dict[str, ast.Module] = {}
        self._locations: dict[str, str | None] = {}
        self._doc: CodeDocument | None = None
        self._seen: set[int] = set()
        self._depth = 0  # objects whose attributes are being walked (_constant)

    # -- entry point ------------------------------------------------------------------

    def document(self, func: types.FunctionType) -> CodeDocument:
        main = self.key_of(func)
        self._doc = CodeDocument(main, {})
        _LIVE[id(self._doc)] = self._doc
        self._seen.add(id(func))
        self._check_running(func.__code__, func.__globals__)
        form, outer, body, digest = self._function_form(func, step=True)
        self._put(main, ["function", form], digest)
        self._follow_function(func, outer, body, main)
        return self._doc

    def class_document(self, cls: type) -> CodeDocument | None:
        """The code of a repository's class (its form, what it uses), for a class an
        argument's value has; None for a class from outside the repository."""
        filename = _filename_of(cls)
        if filename is None or self.location(filename) is None:
            return None
        main = self.key_of(cls)
        self._doc = CodeDocument(main, {})
        _LIVE[id(self._doc)] = self._doc
        self._visit(cls, [], main)
        return self._doc

    def _put(self, key: str, entry: list[Any], digest: str | None) -> None:
        assert self._doc is not None
        self._doc.entries[key] = entry
        if digest is None:
            self._doc.digests.pop(key, None)
        else:
            self._doc.digests[key] = digest

    def _file_digest(self, filename: str, namespace: dict[str, Any] | None) -> str | None:
        digest = self._digests.get(filename)
        if digest is None:
            data = self._source_bytes(filename, namespace)
            if data is None:
                return None
            digest = hashlib.blake2b(data, digest_size=20).hexdigest()
            self._digests[filename] = digest
        return digest

    def _source_bytes(self, filename: str, namespace: dict[str, Any] | None) -> bytes | None:
        """What a source's forms are keyed by, read once per walker (the text parsed is
        the text hashed): `file` and a file's bytes as they are on disk now, or `cell`
        and a notebook cell's text from linecache."""
        data = self._sources.get(filename)
        if data is None:
            is_file, content = _read_file(filename)
            if is_file:
                if content is None:
                    return None
                # Not linecache: it trusts a copy whose file kept its size and mtime.
                data = b"file\0" + content
            else:
                lines = linecache.getlines(filename, namespace)
                if not lines:
                    return None
                data = b"cell\0" + "".join(lines).encode("utf-8", "surrogatepass")
            self._sources[filename] = data
        return data

    def _source(self, filename: str, namespace: dict[str, Any] | None) -> str | None:
        """A file's text as it is on disk now; a notebook cell's from linecache."""
        text = self._texts.get(filename)
        if text is None:
            data = self._source_bytes(filename, namespace)
            if data is None:
                return None
            try:
                if data.startswith(b"file\0"):
                    text = importlib.util.decode_source(data[5:])
                else:
                    text = data[5:].decode("utf-8", "surrogatepass")
            except (SyntaxError, UnicodeDecodeError):
                return None
            self._texts[filename] = text
        return text

    def _function_form(
        self, func: types.FunctionType, step: bool = False
    ) -> tuple[Any, list[Any], list[Any], str | None]:
        """(normalized form, names its outer parts load, names its body loads, hash of
        its entry if known)."""
        code = func.__code__
        digest = self._file_digest(code.co_filename, func.__globals__)
        key = f"f:{code.co_firstlineno}:{code.co_name}:{int(step)}"
        cached = self._forms.get(digest, key) if digest is not None else None
        if cached is not None:
            return cached[0], cached[1], cached[2], self._cached_hash(cached, 3)
        node = self.function_node(func)
        outer, body = _outer_and_body(node, skip_decorators=step)
        found = [normalize(node, drop_decorators=step), _references(outer), _references(body)]
        if self._hash_entry is not None:
            found.append(self._hash_entry(["function", found[0]]))
        if digest is not None:
            self._forms.put(digest, key, found)
        return found[0], found[1], found[2], self._cached_hash(found, 3)

    def _check_running(self, code: types.CodeType, namespace: dict[str, Any] | None) -> None:
        """Raise CodeError unless `code`, which is what runs, is what its file on disk
        compiles to. The forms come from the file as it is now: a module edited after it
        was imported (a notebook without autoreload, a long-lived process) would give
        the new code's signature to the old code's result, and every later process with
        the new code would load that result."""
        if namespace is not None and "@pytest_ar" in namespace:
            return  # a module pytest rewrote (its asserts): not what the file compiles to
        filename = code.co_filename
        data = self._source_bytes(filename, namespace)
        if data is None or not data.startswith(b"file\0"):
            return  # a notebook cell: its text is the code that ran, and cannot change
        compiled = self._compiled(filename, data)
        if _code_print(code) not in compiled.get(f"{code.co_firstlineno}:{code.co_qualname}", ()):
            where = self.location(filename) or filename
            raise CodeError(
                f"{code.co_qualname} is not the code in {where} any more (the file was "
                "edited after it was imported): reload the module or start a new process"
            )

    def _compiled(self, filename: str, data: bytes) -> dict[str, list[str]]:
        """`line:qualname` -> prints of the code objects the file compiles to (as import
        compiles it), kept with the forms per Python version and optimization level."""
        digest = self._file_digest(filename, None)
        key = f"b:{sys.implementation.cache_tag}:{sys.flags.optimize}"
        cached = self._forms.get(digest, key) if digest is not None else None
        if isinstance(cached, dict):
            return cached
        try:
            module = compile(data[5:], filename, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            raise CodeError(f"cannot compile {filename}") from None
        found: dict[str, list[str]] = {}
        pending = [module]
        while pending:
            code = pending.pop()
            found.setdefault(f"{code.co_firstlineno}:{code.co_qualname}", []).append(
                _code_print(code)
            )
            pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        if digest is not None:
            self._forms.put(digest, key, found)
        return found

    def _cached_hash(self, cached: list[Any], at: int) -> str | None:
        found = cached[at] if self._hash_entry is not None and len(cached) > at else None
        return found if isinstance(found, str) else None

    # -- where things live --------------------------------------------------------------

    def location(self, filename: str) -> str | None:
        """`path/relative/to/root.py`, `<interactive>`, or None for code outside the repo."""
        if filename not in self._locations:
            self._locations[filename] = self._locate(filename)
        return self._locations[filename]

    def _locate(self, filename: str) -> str | None:
        real = self._real_file(filename)
        if real is not None:
            # String operations, not pathlib: this runs on a step's first call.
            if not real.startswith(self._root_prefix):
                return None
            parts = real[len(self._root_prefix) :].split(os.sep)
            if _OUTSIDE_DIRS.intersection(parts):
                return None
            return "/".join(parts)
        return INTERACTIVE if linecache.getlines(filename) else None

    def _real_file(self, filename: str) -> str | None:
        """os.path.realpath(filename) if it is a file (os.path.isfile), else None. A path
        under the root (a real path) with no symlink, '.' or '..' below it is its own
        real path: one lstat per component below the root, not realpath's from '/'."""
        prefix = self._root_prefix
        if filename.startswith(prefix):
            parts = filename[len(prefix) :].split(os.sep)
            if not {"", ".", ".."}.intersection(parts):
                path = prefix[:-1]
                mode = 0
                try:
                    for part in parts:
                        path = f"{path}{os.sep}{part}"
                        mode = os.lstat(path).st_mode
                        if stat.S_ISLNK(mode):
                            break
                    else:
                        return filename if stat.S_ISREG(mode) else None
                except OSError:
                    return None  # not a file (os.path.isfile says False too)
        return os.path.realpath(filename) if os.path.isfile(filename) else None

    def key_of(self, obj: Any) -> str:
        filename = _filename_of(obj)
        where = None if filename is None else self.location(filename)
        if where is None:
            raise CodeError(f"{_describe(obj)} is not defined in this repository")
        code = getattr(obj, "__code__", None)
        if isinstance(code, types.CodeType) and code.co_qualname != obj.__qualname__:
            # Renamed by functools.wraps: a decorator's wrapper calls itself the function
            # it wraps, which has that key. The wrapper's own code names it too.
            return f"{where}:{obj.__qualname__}<{code.co_qualname}>"
        return f"{where}:{obj.__qualname__}"

    def _module_tree(self, filename: str, namespace: dict[str, Any] | None) -> ast.Module:
        tree = self._trees.get(filename)
        if tree is None:
            text = self._source(filename, namespace)
            if text is None:
                raise CodeError(f"cannot read the source of {filename}")
            try:
                tree = ast.parse(text, filename)
            except SyntaxError as exc:
                raise CodeError(f"cannot parse {filename}: {exc}") from None
            self._trees[filename] = tree
        return tree

    def function_node(self, func: types.FunctionType) -> ast.AST:
        """The syntax tree of a function's definition, found by its first line."""
        code = func.__code__
        first = code.co_firstlineno
        tree = self._module_tree(code.co_filename, func.__globals__)
        if code.co_name == "<lambda>":
            lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == first]
            if len(lambdas) == 1:
                return lambdas[0]
            # Several lambdas on one line: the whole line's lambdas stand for it.
            if lambdas:
                return ast.Tuple(elts=list(lambdas), ctx=ast.Load())
        for node in ast.walk(tree):
            # co_name, not __name__: a decorator's wrapper (functools.wraps) is named
            # after the function it wraps, its code after its own `def`.
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == (
                code.co_name
            ):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if start == first or node.lineno == first:
                    return node
        raise CodeError(f"cannot find the source of {_describe(func)} in {code.co_filename}")

    def class_node(self, cls: type) -> ast.AST:
        filename = _filename_of(cls)
        if filename is None:
            raise CodeError(f"cannot find the source of class {cls.__qualname__}")
        module = sys.modules.get(cls.__module__)
        tree = self._module_tree(filename, getattr(module, "__dict__", None))
        path = [p for p in cls.__qualname__.split(".") if p != "<locals>"]
        found = [n for n in _class_defs(tree, path)]
        if not found:
            raise CodeError(f"cannot find the source of class {cls.__qualname__} in {filename}")
        if len(found) == 1:
            return found[0]
        # A class defined twice in one file (`if FAST: class Impl ... else: class Impl`):
        # the definition that ran, by its first line (3.13+), else by where its methods
        # are. The later one is not always it: its edits would change nothing.
        first = getattr(cls, "__firstlineno__", None)
        for node in found:
            if node.lineno == first or any(d.lineno == first for d in node.decorator_list):
                return node
        lines = _method_lines(cls, filename)
        holding = [
            n for n in found if all(n.lineno <= x <= (n.end_lineno or n.lineno) for x in lines)
        ]
        if lines and len(holding) == 1:
            return holding[0]
        # Nothing tells them apart (no methods): all of them stand for it.
        return ast.Module(body=list(found), type_ignores=[])

    # -- following references ----------------------------------------------------------------

    def _follow_function(
        self, func: types.FunctionType, outer: list[Any], body: list[Any], owner: str
    ) -> None:
        assert self._doc is not None
        names = _global_names(func.__code__)
        closure = dict(zip(func.__code__.co_freevars, func.__closure__ or (), strict=False))
        for name, attrs in outer:
            self._global(func.__globals__, name, attrs)
        for name, attrs in body:
            if name in closure:
                cell = closure[name]
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                self._doc.cells.append((cell, value))
                self._visit(value, attrs, f"{owner}.<closure>.{name}")
            elif name in names:
                self._global(func.__globals__, name, attrs)
        code = func.__code__
        key = f"i:{code.co_firstlineno}:{code.co_name}"
        imports = self._imports_in(code.co_filename, func.__globals__, key, func)
        self._follow_imports(imports, body, func.__globals__)

    def _imports_in(
        self, filename: str, namespace: dict[str, Any], key: str, definition: Any
    ) -> list[Any]:
        """The `import` statements inside a function's or class's body (kept with the forms)."""
        digest = self._file_digest(filename, namespace)
        cached = self._forms.get(digest, key) if digest is not None else None
        if cached is None:
            if isinstance(definition, type):
                node = self.class_node(definition)
            else:
                node = self.function_node(definition)
            cached = _local_imports(node)
            if digest is not None:
                self._forms.put(digest, key, cached)
        return list(cached)

    def _follow_imports(
        self, imports: list[Any], used: list[Any], namespace: dict[str, Any]
    ) -> None:
        """Names bound by imports inside a body (`import helpers`, `from helpers import
        g`, in the function to import lazily) are no globals: what the body uses of them
        is followed in the module they come from, as for module-level imports."""
        for bound, module_name, attribute, level in imports:
            uses = [attrs for name, attrs in used if name == bound]
            if not uses:
                continue
            module = self._import(module_name, level, namespace)
            if module is None:
                continue
            for attrs in uses:
                if attribute is None:
                    self._module(module, attrs)
                    continue
                if attribute not in module.__dict__:  # `from package import submodule`
                    sub = self._import(f"{module.__name__}.{attribute}", 0, namespace)
                    if sub is not None:
                        self._module(sub, attrs)
                    continue
                self._global(module.__dict__, attribute, attrs)

    def _import(self, name: str, level: int, namespace: dict[str, Any]) -> Any:
        """The module an import inside a body gives: already imported, or one of the
        repository's (imported now, as the body would); None for another package's that
        is not imported yet (its name is noted, not imported: a hit must stay cheap)."""
        try:
            full = importlib.util.resolve_name("." * level + name, namespace.get("__package__"))
        except (ImportError, ValueError):
            return None
        module = sys.modules.get(full)
        if module is not None:
            return module
        top = full.split(".")[0]
        found = sys.modules.get(top)
        try:  # the top-level package only: finding `a.b` would import `a`
            origin = getattr(found, "__file__", None) if found else importlib.util.find_spec(top)
        except (ImportError, ValueError):
            origin = None
        if origin is not None and not isinstance(origin, str):
            origin = origin.origin
        if not isinstance(origin, str) or self.location(origin) is None:
            if top not in sys.stdlib_module_names and top not in _NOT_PACKAGES:
                assert self._doc is not None
                self._doc.packages.add(top)
            return None
        try:
            return importlib.import_module(full)
        except Exception:  # it fails as the body would: nothing to follow
            return None

    def _global(self, namespace: dict[str, Any], name: str, attrs: list[str]) -> None:
        assert self._doc is not None
        value = namespace.get(name, _MISSING)
        if value is _MISSING:
            return  # a builtin, or a name not bound yet
        self._doc.bindings.append((namespace, name, value))
        where = self.location(namespace.get("__file__") or "") or INTERACTIVE
        key = f"{where}:{name}"
        self._visit(value, attrs, key)
        entry = self._doc.entries.get(key)
        if entry is not None and len(entry) == 2 and entry[0] == "constant" and _opaque(entry[1]):
            self._bound_by(namespace, name, key, entry)

    def _bound_by(self, namespace: dict[str, Any], name: str, key: str, entry: list[Any]) -> None:
        """A module-level constant holding an object counted by its type alone (a compiled
        regex, a Fraction, a third-party model's settings): its value says nothing of
        `WORD = re.compile("[a-z]+")`'s pattern, so the statements binding it count, and
        what they use (`re.compile(PATTERN)`, `make_model()`) is followed as code."""
        filename = namespace.get("__file__")
        if not isinstance(filename, str) or self.location(filename) is None:
            return  # a notebook's cells: no module text to find the statement in
        digest = self._file_digest(filename, namespace)
        if digest is None:
            return
        cached = self._forms.get(digest, f"s:{name}")
        if cached is None:
            try:
                tree = self._module_tree(filename, namespace)
            except CodeError:
                return
            statements: list[ast.AST] = list(_binding_statements(tree.body, name))
            cached = [[normalize(s) for s in statements], _references(statements)]
            self._forms.put(digest, f"s:{name}", cached)
        forms, references = cached
        if not forms:
            return
        self._put(key, [*entry, ["bound by", forms]], None)
        for used, attrs in references:
            if used != name and not (used.startswith("__") and used.endswith("__")):
                self._global(namespace, used, attrs)  # `__name__` differs in a script

    def _visit(self, value: Any, attrs: list[str], key: str) -> None:
        assert self._doc is not None
        if isinstance(value, types.ModuleType):
            self._module(value, attrs)
            return
        if isinstance(value, functools.partial):
            # `triple = partial(mul, 3)`: mul's code and the bound arguments count.
            self._visit(value.func, [], f"{key}.<partial>")
            bound = [list(value.args), dict(value.keywords)]
            self._put_constant(f"{key}.<partial args>", bound)
            return
        if isinstance(value, types.MethodType):
            # `apply = helper.apply`: the method's code and the object (or class) it is
            # bound to.
            self._visit(value.__func__, [], f"{key}.<method>")
            self._visit(value.__self__, [], f"{key}.<self>")
            return
        step_function = getattr(value, "__gitcache_function__", None)
        if step_function is not None:  # another step: its function is code we use
            value = step_function
        elif not isinstance(value, types.FunctionType | type) and callable(value):
            unwrapped = inspect.unwrap(value) if hasattr(value, "__wrapped__") else value
            if isinstance(unwrapped, types.FunctionType):
                value = unwrapped  # lru_cache and other wrappers: the wrapped code counts
        if isinstance(value, types.FunctionType | type):
            if id(value) in self._seen:
                return
            self._seen.add(id(value))
            filename = _filename_of(value)
            if filename is None or self.location(filename) is None:
                self._outside(value)
                return
            if isinstance(value, types.FunctionType):
                self._check_running(value.__code__, value.__globals__)
                form, outer, body, digest = self._function_form(value)
                # Closures of one function (`add2 = make_adder(2)`, `add3 = ...`) share a
                # qualname, and so do all lambdas of a module (`inc = lambda ...`, `dbl =
                # lambda ...`: one entry would stand for both): such a function is keyed
                # by the name it is reached through.
                shared = "<locals>" in value.__qualname__ or value.__name__ == "<lambda>"
                own = key if shared else self.key_of(value)
                self._put(own, ["function", form], digest)
                self._follow_function(value, outer, body, own)
            else:
                self._class(value)
            return
        if isinstance(value, types.BuiltinFunctionType):
            self._outside(value)
            return
        if key in self._doc.entries:
            return
        self._put_constant(key, value)

    def _put_constant(self, key: str, value: Any) -> None:
        assert self._doc is not None
        kind = type(value)
        filename = _filename_of(kind)
        if filename is not None and self.location(filename) is not None:
            self._visit(kind, [], key)  # an object of the repository's class: its code
        form = self._constant(value, key)
        if key in self._doc.entries:
            # The name is also a function's key: `helper = memo(helper)`, a decorator
            # that returns an object holding the function (whose entry is under it).
            key = f"{key}<value>"
        self._put(key, ["constant", form], None)
        if not _immutable(value):
            self._doc.mutables.append((form, lambda: self._constant(value, key)))

    def _module(self, module: types.ModuleType, attrs: list[str]) -> None:
        assert self._doc is not None
        filename = getattr(module, "__file__", None)
        if filename is None or self.location(filename) is None:
            top = module.__name__.split(".")[0]
            if top not in sys.stdlib_module_names and top not in _NOT_PACKAGES:
                self._doc.packages.add(top)
            return
        if attrs:  # `helpers.smooth(...)`: what is used from the repository's module
            self._global(module.__dict__, attrs[0], attrs[1:])

    def _class_key(self, cls: type) -> tuple[str | None, str]:
        """The hash of the class's file and the key of its form in the form cache."""
        filename = _filename_of(cls)
        module = sys.modules.get(cls.__module__)
        digest = None
        if filename is not None:
            digest = self._file_digest(filename, getattr(module, "__dict__", None))
        first = getattr(cls, "__firstlineno__", "")
        lines = _method_lines(cls, filename) if first == "" and filename is not None else []
        # Which definition of a class defined twice in the file (class_node): in the key.
        return digest, f"c:{cls.__qualname__}:{first}" + (f":m{min(lines)}" if lines else "")

    def _class_literals(self, cls: type) -> list[Any]:
        """[name, literal's form] of the class body's `NAME = <literal>` statements."""
        digest, key = self._class_key(cls)
        key = "l" + key[1:]
        cached = self._forms.get(digest, key) if digest is not None else None
        if cached is None:
            cached = _literal_attributes(self.class_node(cls))
            if digest is not None:
                self._forms.put(digest, key, cached)
        return list(cached)

    def _class_form(self, cls: type) -> tuple[Any, list[Any], str | None]:
        digest, key = self._class_key(cls)
        cached = self._forms.get(digest, key) if digest is not None else None
        if cached is not None:
            return cached[0], cached[1], self._cached_hash(cached, 2)
        node = self.class_node(cls)
        found = [normalize(node), _references([node])]
        if self._hash_entry is not None:
            found.append(self._hash_entry(["class", found[0]]))
        if digest is not None:
            self._forms.put(digest, key, found)
        return found[0], found[1], self._cached_hash(found, 2)

    def _class(self, cls: type) -> None:
        assert self._doc is not None
        form, references, digest = self._class_form(cls)
        self._put(self.key_of(cls), ["class", form], digest)
        module = sys.modules.get(cls.__module__)
        namespace = getattr(module, "__dict__", {})
        for name, attrs in references:
            if name in namespace:
                self._global(namespace, name, attrs)
        if not issubclass(cls, enum.Enum):  # members are no literals, and cannot be set
            self._class_attributes(cls)
        if module is not None:
            key = "i" + self._class_key(cls)[1][1:]
            imports = self._imports_in(_filename_of(cls) or "", namespace, key, cls)
            self._follow_imports(imports, references, namespace)
        filename = _filename_of(cls)
        for method in _class_functions(cls):
            if method.__code__.co_filename != filename:
                continue  # generated by a decorator (dataclass): its class's source says it
            self._check_running(method.__code__, namespace)
            # Closure cells of methods (rare, but they count); __class__ is the class.
            cells = zip(method.__code__.co_freevars, method.__closure__ or (), strict=False)
            for name, cell in cells:
                if name == "__class__":
                    continue
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                self._doc.cells.append((cell, value))
                self._visit(value, [], f"{self.key_of(method)}.<closure>.{name}")

    def _class_attributes(self, cls: type) -> None:
        """A class attribute whose body says `K = 2` but which holds another value now
        (`Config.K = 3` in a script, a list appended to) counts by that value: the class's
        text no longer says what the code uses. Equal values add nothing."""
        assert self._doc is not None
        state = vars(cls)
        for name, literal in self._class_literals(cls):
            value = state.get(name, _MISSING)
            if value is _MISSING or hasattr(type(value), "__get__"):
                continue  # a field a decorator or metaclass took over (pydantic, NamedTuple)
            self._doc.bindings.append((state, name, value))
            if _json_form(value) == literal:
                if not _immutable(value):  # appended to later: another value
                    self._doc.mutables.append((literal, functools.partial(_json_form, value)))
                continue
            self._put_constant(f"{self.key_of(cls)}.{name}", value)

    def _container(self, value: Any, key: str) -> Any:
        """A list, tuple, set or dict holding code (`OPS = {"add": add}`, `PIPE = [f, g]`):
        each function, class or module in it is followed as code and named by its key,
        the other elements are constants; None for any other value."""
        if isinstance(value, dict):
            pairs = [
                [self._element(k, f"{key}.<key>"), self._element(v, f"{key}[{i}]")]
                for i, (k, v) in enumerate(value.items())
            ]
            pairs.sort(key=repr)
            return ["dict", pairs]
        if isinstance(value, list | tuple):
            elements = [self._element(v, f"{key}[{i}]") for i, v in enumerate(value)]
            return [type(value).__name__, elements]
        if isinstance(value, set | frozenset):
            items = [self._element(v, f"{key}{{}}") for v in value]
            items.sort(key=repr)
            return [type(value).__name__, items]
        return None

    def _element(self, value: Any, key: str) -> Any:
        if _is_code(value):
            self._visit(value, [], key)
            if isinstance(value, types.FunctionType | type):
                filename = _filename_of(value)
                if filename is not None and self.location(filename) is not None:
                    shared = "<locals>" in value.__qualname__ or value.__name__ == "<lambda>"
                    return ["code", key if shared else self.key_of(value)]
                return ["code", f"{value.__module__}.{value.__qualname__}"]
            if isinstance(value, types.BuiltinFunctionType):  # `len`, `math.sqrt`
                return ["code", f"{value.__module__}.{value.__qualname__}"]
            if isinstance(value, types.ModuleType):
                return ["code", value.__name__]
            return ["code", key]
        return self._constant(value, key)

    def _outside(self, value: Any) -> None:
        assert self._doc is not None
        module = getattr(value, "__module__", None) or ""
        top = module.split(".")[0]
        if top and top not in sys.stdlib_module_names and top not in _NOT_PACKAGES:
            self._doc.packages.add(top)

    def _constant(self, value: Any, key: str) -> Any:
        try:
            return json_constant(value)
        except TypeError:
            pass
        found = self._container(value, key)
        if found is not None:
            return found
        if isinstance(value, typing.TypeVar) or type(value).__module__ in ("typing", "types"):
            return ["typing", repr(value)]
        if self._encode is not None:
            try:
                return ["value", self._encode(value)]
            except (TypeError, ValueError):
                pass
        # Neither a literal nor a value the codecs know: an object of an outside class (a
        # logger, a lock, a client) counts by its type (its attributes hold caches and
        # connections that change as it is used); one of the repository's own classes
        # (`helper = Helper(k=3)`) also by its attributes.
        kind = type(value)
        self._outside(value)
        filename = _filename_of(kind)
        own = filename is not None and self.location(filename) is not None
        # A class of the repository by its code key: the same whether its module runs as
        # a script (`__main__`) or is imported.
        name = self.key_of(kind) if own else f"{kind.__module__}.{kind.__qualname__}"
        state = getattr(value, "__dict__", None)
        if not own or not isinstance(state, dict) or not state or self._encode is None:
            return ["object", name]
        try:
            return ["object", name, self._encode(state)]
        except (TypeError, ValueError):
            pass
        # Attributes holding code (`Pipeline(steps=[clean, fit])`) count as code; walked
        # a few objects deep only (a logger's attributes lead to every logger).
        if self._depth >= _OBJECT_DEPTH:
            return ["object", name]
        self._depth += 1
        try:
            return ["object", name, self._container(dict(state), f"{key}.<state>")]
        finally:
            self._depth -= 1


def _is_code(value: Any) -> bool:
    """A module, function, class, partial, bound method or wrapped callable: what the
    walker follows as code rather than taking as a value."""
    if isinstance(
        value,
        types.ModuleType
        | types.FunctionType
        | type
        | functools.partial
        | types.MethodType
        | types.BuiltinFunctionType,
    ):
        return True
    if getattr(value, "__gitcache_function__", None) is not None:
        return True
    return callable(value) and hasattr(value, "__wrapped__")


def _immutable(value: Any) -> bool:
    """Whether a constant can never change in place (so its object identity is enough)."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v) for v in value)
    return False


def _filename_of(obj: Any) -> str | None:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return str(code.co_filename)
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        filename = getattr(module, "__file__", None)
        if filename is not None:
            return str(filename)
        # A class from a notebook cell: its module (__main__) has no file, its methods
        # name the cell. Methods a decorator generated (dataclasses: "<string>") do not.
        for value in _class_functions(obj):
            inner = value.__code__.co_filename
            if linecache.getlines(inner):
                return str(inner)
    return None


def _class_functions(cls: type) -> Iterator[Any]:
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        if isinstance(value, types.FunctionType) and value.__qualname__.startswith(
            cls.__qualname__ + "."
        ):
            yield value


def _local_imports(node: ast.AST) -> list[Any]:
    """[bound name, module, attribute or None, level] of every import statement in a
    definition's body (`import a.b` binds `a`; `import a.b as x` binds x to `a.b`;
    `from .a import f as g` binds g to `f` of `.a`)."""
    found: list[Any] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            for alias in sub.names:
                if alias.asname is None:
                    top = alias.name.split(".")[0]
                    found.append([top, top, None, 0])
                else:
                    found.append([alias.asname, alias.name, None, 0])
        elif isinstance(sub, ast.ImportFrom):
            for alias in sub.names:
                if alias.name != "*":
                    bound = alias.asname or alias.name
                    found.append([bound, sub.module or "", alias.name, sub.level])
    return found


def _json_form(value: Any) -> Any:
    try:
        return json_constant(value)
    except TypeError:
        return None


def _literal_attributes(node: ast.AST) -> list[Any]:
    """[name, json form] of a class body's `NAME = <literal>` (or `NAME: T = <literal>`)
    statements, the last one of each name (nothing for several definitions at once)."""
    found: dict[str, Any] = {}
    for stmt in node.body if isinstance(node, ast.ClassDef) else []:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        try:
            form = json_constant(ast.literal_eval(value))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            for target in targets:  # computed: its text counts, not a value
                if isinstance(target, ast.Name):
                    found.pop(target.id, None)
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = form
    return [[name, form] for name, form in found.items()]


def _opaque(form: Any) -> bool:
    """Whether a constant's form holds an object counted by its type alone."""
    if not isinstance(form, list) or len(form) < 2:
        return False
    tag, rest = form[0], form[1]
    if tag == "object":
        return len(form) == 2 or _opaque(form[2])
    if tag in ("list", "tuple", "set", "frozenset") and isinstance(rest, list):
        return any(_opaque(v) for v in rest)
    if tag == "dict" and isinstance(rest, list):
        return any(_opaque(v) for pair in rest if isinstance(pair, list) for v in pair)
    return False


def _binding_statements(body: list[ast.stmt], name: str) -> Iterator[ast.stmt]:
    """Module-level statements that bind `name` (in `if`/`try`/`with` blocks too; not
    inside functions and classes, whose code counts as such)."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        blocks = [getattr(stmt, f, None) for f in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(stmt, "handlers", ())]
        blocks += [c.body for c in getattr(stmt, "cases", ())]
        nested = [b for b in blocks if isinstance(b, list) and b]
        if not nested:
            if _stores(stmt, name):
                yield stmt
            continue
        heads = [getattr(stmt, f) for f in ("target", "items") if hasattr(stmt, f)]
        if any(_stores(h, name) for h in heads):  # `for NAME in ...`, `with ... as NAME`
            yield stmt
            continue
        for block in nested:
            yield from _binding_statements(block, name)


def _stores(node: Any, name: str) -> bool:
    nodes = node if isinstance(node, list) else [node]
    return any(
        isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
        for top in nodes
        for n in ast.walk(top)
    )


def _method_lines(cls: type, filename: str) -> list[int]:
    """First lines of the class's own functions in its file (not a decorator's)."""
    return [
        f.__code__.co_firstlineno
        for f in _class_functions(cls)
        if f.__code__.co_filename == filename
    ]


def _class_defs(tree: ast.AST, path: list[str]) -> Iterator[ast.ClassDef]:
    """ClassDef nodes whose nesting of class and function names ends in `path`."""

    def walk(node: ast.AST, trail: list[str]) -> Iterator[ast.ClassDef]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                here = [*trail, child.name]
                if isinstance(child, ast.ClassDef) and here == path:
                    yield child
                if len(here) < len(path) and path[: len(here)] == here:
                    yield from walk(child, here)
            else:
                yield from walk(child, trail)

    return walk(tree, [])


def _code_print(code: types.CodeType) -> str:
    """What a code object does, its positions left out (a comment added within it does
    not count): its bytecode, names, argument counts, flags and constants, nested code
    by its own print. The same in every process for the same text and Python."""
    text = repr(
        [
            code.co_code.hex(),
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags,
            [_const_print(c) for c in code.co_consts],
        ]
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _const_print(value: Any) -> Any:
    if isinstance(value, types.CodeType):
        return ["code", _code_print(value)]
    if isinstance(value, tuple):
        return ["tuple", [_const_print(v) for v in value]]
    if isinstance(value, frozenset):  # its order follows string hashes, which vary
        return ["frozenset", sorted(repr(_const_print(v)) for v in value)]
    return [type(value).__name__, repr(value)]


def _global_names(code: types.CodeType) -> set[str]:
    """Names a code object (and the code nested in it) loads from globals or attributes."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _outer_and_body(node: ast.AST, skip_decorators: bool) -> tuple[list[ast.AST], list[ast.AST]]:
    """A definition's parts evaluated where it is defined (decorators, defaults,
    annotations), and the parts that run when it is called."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        outer: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        outer += [a.annotation for a in every if a.annotation is not None]
        if isinstance(node, ast.Lambda):
            return outer, [node.body]
        if not skip_decorators:
            outer += node.decorator_list
        if node.returns is not None:
            outer.append(node.returns)
        return outer, list(node.body)
    return [], [node]


def _references(roots: list[ast.AST]) -> list[Any]:
    """(name, attribute chain) of every name loaded in some trees, in a stable order."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for root in roots:
        for sub in ast.walk(root):
            if isinstance(sub, ast.Attribute):
                chain: list[str] = []
                current: ast.AST = sub
                while isinstance(current, ast.Attribute):
                    chain.append(current.attr)
                    current = current.value
                if isinstance(current, ast.Name):
                    found[(current.id, tuple(reversed(chain)))] = None
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                found.setdefault((sub.id, ()), None)
    return [[name, list(attrs)] for name, attrs in found]


def _describe(obj: Any) -> str:
    kind = "class" if isinstance(obj, type) else "function"
    return f"{kind} {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)!s}"
