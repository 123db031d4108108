"""From a call of a Python step to its signature: validate, fingerprint, hash.

`Signer` belongs to one step. It resolves the function's type hints (once), builds
one pydantic validator per parameter and for the return value, and keeps the
code document while the globals and closure cells it was built from still hold
the same objects (a notebook that redefines a helper gets a new document).
"""

from __future__ import annotations

import inspect
import os
import platform
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import blake3

from gitcache.canonical import canonical_json
from gitcache.python.code import CodeDocument, CodeError, CodeWalker, FormCache
from gitcache.python.codecs import Fingerprinter, class_path
from gitcache.python.errors import ArgumentError, ResultError, StepDefinitionError
from gitcache.record import Components, check_relative_path, is_plain
from gitcache.signature import SIGNATURE_FORMAT, signature_of


@dataclass(frozen=True)
class StepOptions:
    name: str
    version: str | None = None
    ignore: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    store: bool = True
    allow_pickle: bool = False


@dataclass(frozen=True)
class Code:
    """A step's code component: its own hash and the hash of everything it uses."""

    digest: str
    references: dict[str, str]
    # None with version="..." (nothing was read); not part of what the code *is*
    document: CodeDocument | None = field(compare=False)


@dataclass
class Call:
    """One call of a step, validated and signed."""

    arguments: dict[str, Any]  # validated values by parameter name (tasks kept as tasks)
    # The components as signed: what `Components(...).document()` gives.
    document: dict[str, Any]
    signature: str
    code: Code
    files: dict[str, str] = field(default_factory=dict)  # argument -> path of each File
    _components: Components | None = field(default=None, repr=False, compare=False)

    @property
    def outputs(self) -> list[str]:
        outputs: list[str] = self.document["outputs"]
        return outputs

    @property
    def components(self) -> Components:
        """The components (built when first asked for: a hit does not need them)."""
        if self._components is None:
            self._components = Components(**self.document)
        return self._components


def components_signature(components: Components) -> str:
    """`signature_of(components)` (a plain document made by hand: Components.document)."""
    return signature_of(components)


class Validator:
    """A pydantic validator for one type hint, or an isinstance check if pydantic has none."""

    def __init__(self, hint: Any, where: str) -> None:
        self.hint = hint
        self._adapter: Any = None
        simple = _SIMPLE_SCHEMAS.get(hint) if isinstance(hint, type) else None
        if simple is not None:
            # pydantic's own validator for the type, without building a TypeAdapter
            # (which costs ~0.3 ms per hint: much of a first call in a new process).
            from pydantic_core import SchemaValidator, core_schema

            self._adapter = SchemaValidator(getattr(core_schema, simple)())
            return
        if isinstance(hint, type):
            validator = getattr(hint, "__pydantic_validator__", None)
            if validator is not None and hasattr(hint, "model_fields"):
                self._adapter = validator  # a pydantic model's own validator
                return
            if hint.__module__.split(".")[0] in ("numpy", "pandas"):
                from pydantic_core import SchemaValidator, core_schema

                # what TypeAdapter makes of an arbitrary type: an isinstance check
                self._adapter = SchemaValidator(core_schema.is_instance_schema(hint))
                return
        # Imported here: the type_adapter module alone costs ~0.5 ms to import.
        from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter
        from pydantic.errors import PydanticUserError

        try:
            try:
                self._adapter = TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
            except PydanticUserError:  # models carry their own config
                self._adapter = TypeAdapter(hint)
        except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
            origin = typing.get_origin(hint) or hint
            if not isinstance(origin, type):
                raise StepDefinitionError(
                    f"{where}: cannot validate type {hint!r}: {exc}"
                ) from None
            self._type = origin

    def __call__(self, value: Any) -> Any:
        if self._adapter is not None:
            return self._adapter.validate_python(value)
        if not isinstance(value, self._type):
            raise ValueError(f"expected {self._type.__name__}, got {type(value).__name__}")
        return value


# Hints whose pydantic core schema is one plain schema (the same lax rules pydantic
# applies through a TypeAdapter).
_SIMPLE_SCHEMAS: dict[Any, str] = {
    int: "int_schema",
    float: "float_schema",
    str: "str_schema",
    bool: "bool_schema",
    bytes: "bytes_schema",
}


# Values of exactly these types, for a hint of exactly the same type, are what pydantic
# would make of them (themselves): a call with such arguments builds no validator.
_EXACT: Final = frozenset({int, float, str, bool})


def hash_json(value: Any) -> str:
    return blake3.blake3(canonical_json(value)).hexdigest()


class Signer:
    def __init__(self, func: types.FunctionType, options: StepOptions) -> None:
        self.func = func
        self.options = options
        self._signature = inspect.signature(func)
        self.parameters = self._signature.parameters
        # All the parameters, when each may be given positionally (else: inspect binds).
        simple = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        every = list(self.parameters.values())
        self._positional: list[str] | None = (
            [p.name for p in every] if all(p.kind in simple for p in every) else None
        )
        self._hint_map: dict[str, Any] | None = None
        self._validators: dict[str, Validator] = {}  # built when first needed
        self._returns: Validator | None = None
        self._code: Code | None = None
        self._plain: dict[str, tuple[type, ...]] | None = None
        self._class_keys: dict[Path, Callable[[type], str]] = {}
        # Code of the repository's classes of argument values, by root and class.
        self._argument_codes: dict[tuple[Path, type], tuple[CodeDocument, dict[str, str]]] = {}

    # -- type hints ------------------------------------------------------------------------

    def hints(self) -> dict[str, Any]:
        """The resolved type hints (the return value's validator is built with them, so
        a return type that cannot be validated is an error before the function runs)."""
        if self._hint_map is None:
            where = f"step {self.options.name}"
            annotations = self.func.__annotations__
            if all(type(a) is type for a in annotations.values()):
                hints = dict(annotations)  # what get_type_hints gives for plain classes
            else:
                try:
                    hints = typing.get_type_hints(self.func, include_extras=True)
                except (NameError, TypeError) as exc:
                    raise StepDefinitionError(
                        f"{where}: cannot resolve its type hints: {exc}"
                    ) from None
            self._returns = Validator(hints["return"], f"{where}: return type")
            self._hint_map = hints
        return self._hint_map

    @property
    def returns(self) -> Validator:
        if self._returns is None:
            self.hints()
        assert self._returns is not None
        return self._returns

    def validator(self, name: str) -> Validator:
        found = self._validators.get(name)
        if found is None:
            hint = self.hints()[name]
            found = Validator(hint, f"step {self.options.name}: parameter {name}")
            self._validators[name] = found
        return found

    def validators(self) -> dict[str, Validator]:
        return {name: self.validator(name) for name in self.parameters}

    def check_result(self, value: Any) -> Any:
        """The return value validated against the return hint (ResultError if it is not)."""
        from pydantic_core import ValidationError

        try:
            return self.returns(value)
        except (ValidationError, ValueError) as exc:
            raise ResultError(
                f"step {self.options.name} returned a {type(value).__name__}, which does not "
                f"match its return type {_hint_name(self.returns.hint)}: {_first_error(exc)}"
            ) from None

    def plain_kinds(self) -> dict[str, tuple[type, ...]]:
        """Per parameter, the kinds of value that the memo's fast key may take as they are:
        int, float, str, bool (and None) for a parameter hinted as exactly such a type
        (or an `X | None` of them), File for a File parameter."""
        if self._plain is None:
            from gitcache.python.files import File

            plain: dict[str, tuple[type, ...]] = {}
            hints = self.hints()
            for name in self.parameters:
                hint = hints[name]
                members = typing.get_args(hint) if _is_union(hint) else (hint,)
                kinds = tuple(type(None) if m is None else m for m in members)
                if all(k in (int, float, str, bool, type(None)) for k in kinds):
                    plain[name] = kinds
                elif hint is File:
                    plain[name] = (File,)
            self._plain = plain
        return self._plain

    # -- arguments -------------------------------------------------------------------------

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied, each validated by its hint."""
        from pydantic_core import ValidationError

        hints = self.hints()
        arguments: dict[str, Any] = {}
        for name, value in self._bound(args, kwargs).items():
            kind = type(value)
            if kind is hints[name] and kind in _EXACT:
                arguments[name] = value  # what pydantic's validator returns for it
                continue
            if getattr(value, "__gitcache_signature__", None) is not None:
                arguments[name] = value  # a task: validated when it runs
                continue
            try:
                arguments[name] = self.validator(name)(value)
            except (ValidationError, ValueError) as exc:
                raise ArgumentError(
                    f"step {self.options.name}: argument {name}: {_first_error(exc)}"
                ) from None
        return arguments

    def _bound(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied (inspect's bind; by hand for the
        common call that gives every parameter positionally or by its default)."""
        params = self._positional
        if params is not None and not kwargs and len(args) <= len(params):
            found = dict(zip(params, args, strict=False))
            for name in params[len(args) :]:
                default = self.parameters[name].default
                if default is inspect.Parameter.empty:
                    break  # missing: inspect says so
                found[name] = default
            else:
                return found
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    # -- the signature -----------------------------------------------------------------------

    def code(self, root: Path, forms: FormCache | None = None) -> Code:
        """The code component, rebuilt only when a binding it was built from changed."""
        known = self._code
        if known is not None and (known.document is None or known.document.still_valid()):
            return known
        if self.options.version is not None:
            self._code = Code(hash_json(["version", self.options.version]), {}, None)
            return self._code
        constants = Fingerprinter(blob_of=_no_files, class_key=self.class_key(root))
        try:
            walker = CodeWalker(root, _constant_encoder(constants), forms, hash_json)
            document = walker.document(self.func)
            known_hashes = document.digests  # those that came with their cached forms
            hashes = {k: known_hashes.get(k) or hash_json(v) for k, v in document.entries.items()}
        except (CodeError, UnicodeEncodeError) as exc:
            if forms is not None:
                forms.save()
            why = (
                f"its code holds a string that is not valid Unicode ({exc.reason})"
                if isinstance(exc, UnicodeEncodeError)
                else str(exc)
            )
            raise StepDefinitionError(
                f"step {self.options.name}: {why}",
                hint='give the step a version="..." to take responsibility for its code',
            ) from None
        if forms is not None:
            # Written now, not at exit: a process pool's worker ends without running
            # atexit handlers (os._exit), and would leave every form to parse again.
            forms.save()
        main = hashes.pop(document.main)
        self._code = Code(main, hashes, document)
        return self._code

    def class_key(self, root: Path) -> Callable[[type], str]:
        """Where a class lives (as code keys say), or its import path if not in the repo."""
        known = self._class_keys.get(root)
        if known is not None:
            return known
        walker = CodeWalker(root)

        def key(cls: type) -> str:
            try:
                return walker.key_of(cls)
            except CodeError:
                return class_path(cls)

        self._class_keys[root] = key
        return key

    def sign(
        self,
        arguments: dict[str, Any],
        root: Path,
        blob_of: Callable[[Path], str],
        forms: FormCache | None = None,
    ) -> Call:
        options = self.options
        code = self.code(root, forms)
        classes: list[type] = []  # of the models, dataclasses, enums... among the arguments
        class_key = self.class_key(root)

        def key(cls: type) -> str:
            classes.append(cls)
            return class_key(cls)

        fingerprint = Fingerprinter(blob_of, key, options.allow_pickle)
        params = {
            name: fingerprint(value, name)
            for name, value in arguments.items()
            if name not in options.ignore
        }
        classes += fingerprint.pickled
        references = code.references
        if classes and code.document is not None:  # not under version="...": the user's call
            extra = self.argument_code(classes, root, forms, references)
            if extra:
                references = {**references, **extra}
        document: dict[str, Any] = {
            "format": SIGNATURE_FORMAT,
            "kind": "python",
            "code": code.digest,
            "params": params,
            "inputs": {},
            "outputs": self.outputs(arguments, root),  # each checked by check_relative_path
            "env": {name: os.environ.get(name) for name in sorted(options.env)},
            "references": references,
        }
        if options.versions:
            document["versions"] = {n: version_of(n) for n in sorted(options.versions)}
        components = None
        if is_plain(params):  # the document is what Components.document would give
            signature = hash_json(document)
        else:
            components = Components(**document)
            document = components.document()
            signature = signature_of(components)
        return Call(arguments, document, signature, code, dict(fingerprint.files), components)

    def argument_code(
        self,
        classes: list[type],
        root: Path,
        forms: FormCache | None,
        references: Mapping[str, str],
    ) -> dict[str, str]:
        """Hashes of the code of the repository's classes of argument values that the
        step's code does not reference itself (a subclass of the hinted class, a model in
        a `list[Any]`): their methods decide the result as the step's helpers do. Nothing
        when the code references them already, so such signatures are as they were."""
        found: dict[str, str] = {}
        for cls in dict.fromkeys(classes):
            known = self._argument_codes.get((root, cls))
            if known is None or not known[0].still_valid():
                constants = Fingerprinter(blob_of=_no_files, class_key=self.class_key(root))
                walker = CodeWalker(root, _constant_encoder(constants), forms, hash_json)
                try:
                    document = walker.class_document(cls)
                except (CodeError, UnicodeEncodeError) as exc:
                    raise StepDefinitionError(
                        f"step {self.options.name}: argument of class {cls.__qualname__}: {exc}",
                        hint='give the step a version="..." to take responsibility for its code',
                    ) from None
                finally:
                    if forms is not None:
                        forms.save()
                if document is None:
                    continue  # from outside the repository: not followed, as in the code
                digests = document.digests
                hashes = {k: digests.get(k) or hash_json(v) for k, v in document.entries.items()}
                known = self._argument_codes[(root, cls)] = (document, hashes)
            for name, digest in known[1].items():
                if name not in references:
                    found[name] = digest
        return found

    def outputs(self, arguments: Mapping[str, Any], root: Path) -> list[str]:
        """The declared outputs with `{argument}` filled in, relative to the root."""
        found: list[str] = []
        for template in self.options.outputs:
            try:
                path = template.format(**arguments)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ArgumentError(
                    f"step {self.options.name}: output {template!r}: cannot fill it in: {exc!r}"
                ) from None
            full = os.path.normpath(os.path.join(root, path))
            rel = Path(os.path.relpath(full, root)).as_posix()
            try:
                check_relative_path(rel)
            except ValueError:
                raise ArgumentError(
                    f"step {self.options.name}: output {path!r} is outside the repository "
                    "or inside .git"
                ) from None
            found.append(rel)
        return found


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _constant_encoder(constants: Fingerprinter) -> Callable[[Any], Any]:
    """A module-level value's fingerprint; TypeError for a value the codecs do not know
    (a logger, a lock, a client: the code walker then counts its type), never the
    ArgumentError that would make every call of the step fail."""

    def encode(value: Any) -> Any:
        try:
            return constants(value, "constant")
        except ArgumentError as exc:
            raise TypeError(exc.message) from None

    return encode


def _no_files(path: Path) -> str:
    raise TypeError(f"a gitcache.File ({path}) cannot be a constant of the code")


@cache
def version_of(name: str) -> str | None:
    """The installed version of a distribution or top-level module; `python`: Python's."""
    if name == "python":
        return platform.python_version()
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    for dist in metadata.packages_distributions().get(name, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return f"{loc + ': ' if loc else ''}{first['msg']} (got {first.get('input')!r:.80})"
    return str(exc)
