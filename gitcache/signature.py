"""A step's signature: BLAKE3 of the canonical JSON of its components (docs/format.md).

Bump SIGNATURE_FORMAT whenever what goes into the document changes.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any, Final

import blake3

from gitcache.canonical import canonical_json
from gitcache.errors import ConfigError, is_utf8
from gitcache.record import Components

# Not typing.TYPE_CHECKING (see gitcache/__init__.py). The shell's modules are imported
# by shell_components itself: a Python step, which needs only signature_of, never
# loads the workflow file's parser, interpolation and shell normalization.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from gitcache.workflow import Step

SIGNATURE_FORMAT: Final = 2


def shell_components(
    step: Step,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    environ: Mapping[str, str],
    executable: Collection[str] = (),
) -> Components:
    """Components of a shell step: only the parameters its command references count;
    `executable`: those of `inputs` whose mode is executable."""
    from gitcache import interpolate
    from gitcache.params import encode
    from gitcache.shellcode import normalize_command
    from gitcache.sweeps import format_values

    for name in step.spec.env:
        value = environ.get(name)
        if value is not None and not is_utf8(value):
            raise ConfigError(
                f"step {step.name!r}: environment variable {name} is not valid UTF-8, "
                "so its value cannot enter the signature"
            )
    # An item of a sweep: its axis values (or foreach path) are parameters it uses.
    values, item = format_values(step, params)
    listed = sorted(p for p in inputs if p not in step.implied)  # what `{inputs}` gives
    try:
        rendered = interpolate.render(step.run, values, listed, step.outputs, item)
    except interpolate.FIELD_ERRORS:
        why = interpolate.problem(step.run, values, listed, step.outputs, item)
        raise ConfigError(f"step {step.key!r}: cannot fill in its command: {why}") from None
    return Components(
        format=SIGNATURE_FORMAT,
        kind="shell",
        code=_normalized(step.run),
        shell=step.spec.shell,
        command=normalize_command(rendered),
        params={name: encode(values[name]) for name in step.params_used},
        inputs=dict(sorted(inputs.items())),
        executable=sorted(executable) or None,
        outputs=list(step.outputs),
        env={name: environ.get(name) for name in sorted(step.spec.env)},
    )


@functools.lru_cache(maxsize=256)
def _normalized(template: str) -> str:
    """The normalized template: the same for every item of a sweep, so computed once."""
    from gitcache.shellcode import normalize_command

    return normalize_command(template)


def signature_of(components: Components) -> str:
    return blake3.blake3(canonical_json(components.document())).hexdigest()
