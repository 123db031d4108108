"""docs/format.md's test vectors must hold: TOML step -> canonical document -> signature."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from gitcache.canonical import canonical_json
from gitcache.project import Project
from gitcache.signature import shell_components, signature_of
from gitcache.workflow import load_workflow

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
VECTOR = re.compile(
    r"### Vector \d+:.*?```toml\n(?P<toml>.*?)```.*?Step: `(?P<step>[^`]+)`\. "
    r"Inputs: `(?P<inputs>[^`]*)`\. (?:Executable: `(?P<executable>[^`]*)`\. )?"
    r"Environment: `(?P<env>[^`]*)`\..*?"
    r"```json\n(?P<doc>.*?)\n```.*?Signature: `(?P<sig>[0-9a-f]{64})`",
    re.S,
)


def vectors() -> list[dict[str, str]]:  # "executable" may be None
    found = [m.groupdict() for m in VECTOR.finditer(DOC.read_text())]
    assert len(found) >= 4
    return found


@pytest.mark.parametrize("vector", vectors(), ids=lambda v: v["step"])
def test_vector(vector: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "gitcache.toml").write_text(vector["toml"])
    workflow = load_workflow(tmp_path / "gitcache.toml", tmp_path)
    if vector["step"] in workflow.steps:
        step = workflow.steps[vector["step"]]
    else:  # an item of a sweep (`train[lr=0.1,seed=2]`)
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        project = Project.open(tmp_path)
        step = project.workflow.units(project.worktree).steps[vector["step"]]
    components = shell_components(
        step,
        workflow.params,
        json.loads(vector["inputs"]),
        json.loads(vector["env"]),
        json.loads(vector["executable"] or "[]"),
    )
    document = canonical_json(components.document())
    assert document.decode() == vector["doc"]
    assert signature_of(components) == vector["sig"]


CHUNK_ROW = re.compile(r"^\| (\d+) \| (\d+) \| `([0-9a-f]{40})` \|$", re.M)


def test_chunk_vector() -> None:
    """docs/format.md's chunk vector: fixed input -> chunk offsets, lengths, ids, whole id."""
    import hashlib

    from gitcache.objects.chunking import chunker
    from gitcache.objects.stream import store_buffer

    doc = DOC.read_text()
    section = doc[doc.index("### Chunk vector") : doc.index("## How gitcache writes objects")]
    whole = re.search(r"Whole-file blob id: `([0-9a-f]{40})`", section)
    rows = [(int(o), int(n), oid) for o, n, oid in CHUNK_ROW.findall(section)]
    assert whole is not None and len(rows) >= 2
    data = hashlib.shake_256(b"gitcache chunk vector").digest(20_000_000)
    put: list[tuple[str, int]] = []
    stored = store_buffer(data, lambda oid, content: put.append((oid, len(content))))
    assert stored.oid == whole[1]
    assert [(c.offset, c.length) for c in chunker().cut_buf(data)] == [(o, n) for o, n, _ in rows]
    assert stored.chunks == tuple(oid for _, _, oid in rows)
    # Each chunk written once, whole; two threads write them, in any order.
    assert sorted(put) == sorted((oid, n) for _, n, oid in rows)
