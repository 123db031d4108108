"""The reference schema of `gitcache.toml`: pydantic models, and their errors as one line.

Imported only when workflow.py's fast check meets a file it does not take as it is
(an unknown key, a value of another type, one pydantic would convert, a bad step
name): what such a file means, and every error message, are pydantic's, as they were
when these models were workflow.py's own. The models are converted to workflow.py's
dataclasses, which the rest of gitcache uses.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from gitcache import workflow
from gitcache.errors import ConfigError
from gitcache.stepnames import check_step_name

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

StepName = Annotated[str, AfterValidator(check_step_name)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepSpec(_Model):
    run: str
    inputs: list[str] = []
    outputs: list[str] = []
    env: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []
    shell: Literal["sh", "bash"] = "sh"
    # A sweep (docs/sweeps.md): axis -> values, or paths / directories / globs.
    matrix: dict[str, Any] | None = None
    foreach: str | list[str] | None = None


class HooksSpec(_Model):
    rewrite: Literal["protect", "block", "allow"] = "protect"


class RestoreSpec(_Model):
    """Caps on what restoring one record may write (a fetched record is untrusted)."""

    max_files: int = Field(default=100_000, ge=1)
    max_bytes: int = Field(default=10 * 2**30, ge=1)


class WorkflowFile(_Model):
    params: dict[str, Any] = {}
    steps: dict[StepName, StepSpec] = Field(default_factory=dict)
    require_clean: bool = False
    dirty_ok: list[str] = []
    remote: str | None = None
    push_on_record: bool = False
    hooks: HooksSpec = HooksSpec()
    restore: RestoreSpec = RestoreSpec()


def validate(raw: Any, label: str) -> workflow.WorkflowFile:
    """`raw` (tomllib's dict) validated by the schema; ConfigError naming the key at fault."""
    try:
        model = WorkflowFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe(exc)}") from None
    return converted(model)


def converted(model: WorkflowFile) -> workflow.WorkflowFile:
    """The model as workflow.py's dataclasses (values as pydantic made them)."""
    hooks = model.hooks
    return workflow.WorkflowFile(
        params=model.params,
        steps={
            name: workflow.StepSpec(
                run=s.run,
                inputs=s.inputs,
                outputs=s.outputs,
                env=s.env,
                shell=s.shell,
                matrix=s.matrix,
                foreach=s.foreach,
            )
            for name, s in model.steps.items()
        },
        require_clean=model.require_clean,
        dirty_ok=model.dirty_ok,
        remote=model.remote,
        push_on_record=model.push_on_record,
        hooks=workflow.HooksSpec(hooks.rewrite, rewrite_given="rewrite" in hooks.model_fields_set),
        restore=workflow.RestoreSpec(model.restore.max_files, model.restore.max_bytes),
    )


def describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    # A bad dict key (a step name) is located as steps.<name>.[key]: the name says it.
    loc = ".".join(_key(p) for p in first["loc"] if p != "[key]") or "(top level)"
    if first["type"] == "extra_forbidden":
        text = f"{loc}: unknown key"
    elif first["type"] == "missing":
        text = f"{loc}: required key is missing"
    elif first["type"] == "value_error":  # our own validators: the message names the value
        text = f"{loc}: {first['ctx']['error']}"
    else:
        text = f"{loc}: {first['msg']} (got {first.get('input')!r})"
    more = len(errors) - 1
    return text + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def _key(part: str | int) -> str:
    """A key path component as TOML writes it: quoted unless it is a bare key."""
    text = str(part)
    return text if _BARE_KEY.match(text) else json.dumps(text, ensure_ascii=False)
