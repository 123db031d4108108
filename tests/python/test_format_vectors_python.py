"""docs/format.md's Python test vectors: module + call -> canonical document -> signature."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gitcache.canonical import canonical_json
from gitcache.python.session import session_for
from tests.python.conftest import PyRepo

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"
VECTOR = re.compile(
    r"### Python vector \d+:.*?```python\n(?P<source>.*?)```.*?"
    r"Files: `(?P<files>[^`]*)`\. Call: `(?P<step>\w+)\(\*\*(?P<args>[^`]*)\)`\. "
    r"Environment: `(?P<env>[^`]*)`\..*?"
    r"```json\n(?P<doc>.*?)\n```.*?Signature: `(?P<sig>[0-9a-f]{64})`",
    re.S,
)


def vectors() -> list[dict[str, str]]:
    found = [m.groupdict() for m in VECTOR.finditer(DOC.read_text())]
    assert len(found) >= 3
    return found


@pytest.mark.parametrize("vector", vectors(), ids=lambda v: v["step"])
def test_python_vector(
    vector: dict[str, str], pyrepo: PyRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path, text in json.loads(vector["files"]).items():
        pyrepo.write(path, text)
    for name, value in json.loads(vector["env"]).items():
        monkeypatch.setenv(name, value)
    module = pyrepo.module("steps.py", vector["source"])
    step = getattr(module, vector["step"])
    call = step.sign(session_for(pyrepo.root), (), json.loads(vector["args"]))
    document = canonical_json(call.components.document())
    assert document.decode() == vector["doc"]
    assert call.signature == vector["sig"]


def test_python_only_fields_are_absent_from_shell_documents() -> None:
    """Shell signatures and record.json do not change because Python steps exist."""
    from gitcache.record import Components, Record, parse_record

    shell = Components(
        format=1,
        kind="shell",
        code="true",
        shell="sh",
        params={},
        inputs={},
        outputs=[],
        env={},
    )
    assert set(shell.document()) == {
        "format",
        "kind",
        "code",
        "shell",
        "params",
        "inputs",
        "outputs",
        "env",
    }
    record = Record(
        step="s",
        signature="0" * 64,
        components=shell,
        command="true",
        outputs=[],
        source_commit=None,
        dirty=False,
        started_at="2026-01-01T00:00:00+00:00",
        duration=0.0,
        exit_status=0,
        host="h",
        gitcache_version="0",
    )
    document = json.loads(record.to_json())
    assert "python" not in document and "references" not in document["components"]
    assert parse_record(record.to_json(), "r", list) == record
