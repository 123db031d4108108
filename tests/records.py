"""Writing records straight through the store API (ages, chosen signatures)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gitcache.gitrepo import MODE_FILE, GitRepo
from gitcache.record import RECORD_FORMAT, Components, OutputFile, Record
from gitcache.store import NewRecord, RecordStore, StoredRecord


def new_record(
    repo: GitRepo,
    scratch: Path,
    step: str,
    signature: str,
    started_at: str = "2026-01-01T00:00:00+00:00",
    params: dict[str, Any] | None = None,
    content: bytes = b"data\n",
    path: str = "out.txt",
    format: int = RECORD_FORMAT,
) -> NewRecord:
    """A record of one output file, its blob written, its logs captured in `scratch`;
    `format`: the record format it is written in (2: record.json lists the output)."""
    blob = repo.write_blob(content)
    record = Record(
        format=format,
        step=step,
        signature=signature,
        components=Components(
            format=1,
            kind="shell",
            code="true",
            shell="sh",
            params=params or {},
            inputs={},
            outputs=[path],
            env={},
        ),
        command="true",
        outputs=[OutputFile(path=path, blob=blob, mode=MODE_FILE, size=len(content))],
        source_commit=repo.head_commit(),
        dirty=False,
        started_at=started_at,
        duration=1.0,
        exit_status=0,
        host="test",
        gitcache_version="0",
    )
    logs = {s: scratch / s for s in ("stdout", "stderr")}
    for name, log in logs.items():
        log.write_bytes(name.encode())
    return NewRecord(record, logs)


def write_record(
    root: Path,
    step: str,
    signature: str,
    started_at: str = "2026-01-01T00:00:00+00:00",
    params: dict[str, Any] | None = None,
    content: bytes = b"data\n",
    path: str = "out.txt",
    format: int = RECORD_FORMAT,
) -> StoredRecord:
    repo = GitRepo.discover(root)
    store = RecordStore(repo)
    with tempfile.TemporaryDirectory() as scratch:
        new = new_record(
            repo, Path(scratch), step, signature, started_at, params, content, path, format
        )
        stored = store.write(new, repo.head_commit())
    store.flush_index()
    return stored
