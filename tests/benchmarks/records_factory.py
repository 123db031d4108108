"""Make many records quickly, straight through the store API (for benchmarks)."""

from __future__ import annotations

import socket
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3

from gitcache import __version__
from gitcache.gitrepo import MODE_FILE, GitRepo
from gitcache.record import Components, OutputFile, Record
from gitcache.store import NewRecord, RecordStore


def make_records(root: Path, count: int, steps: int = 10) -> None:
    """`count` records spread over `steps` steps, one minute apart, with distinct params."""
    repo = GitRepo.discover(root)
    store = RecordStore(repo)
    head = repo.head_commit()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as scratch:
        logs = {s: Path(scratch) / s for s in ("stdout", "stderr")}
        for path in logs.values():
            path.write_bytes(b"log\n")
        for i in range(count):
            step = f"step{i % steps}"
            data = f"output {i}\n".encode()
            blob = repo.write_blob(data)
            components = Components(
                format=1,
                kind="shell",
                code=f"make-output {step}",
                shell="sh",
                params={"n": i},
                inputs={},
                outputs=[f"out/{step}.txt"],
                env={},
            )
            record = Record(
                step=step,
                signature=blake3.blake3(f"sig {i}".encode()).hexdigest(),
                components=components,
                command=f"make-output {step} {i}",
                outputs=[
                    OutputFile(path=f"out/{step}.txt", blob=blob, mode=MODE_FILE, size=len(data))
                ],
                source_commit=head,
                dirty=False,
                started_at=(start + timedelta(minutes=i)).isoformat(),
                duration=0.5,
                exit_status=0,
                host=socket.gethostname(),
                gitcache_version=__version__,
            )
            new = NewRecord(record, logs)
            store.write(new, head)
    store.flush_index()  # as Project.save does after a run
