"""A Python step's big result and big output file are stored in chunks and read back."""

from __future__ import annotations

import subprocess

from tests.python.conftest import PyRepo

STEPS = """\
import numpy as np
import gitcache


@gitcache.step(outputs=["big.bin"])
def big(n: int) -> np.ndarray:
    with open("calls.txt", "a") as log:
        log.write("big\\n")
    with open("big.bin", "wb") as out:
        out.write(np.arange(n, dtype="<u4").tobytes())
    return np.arange(n, dtype=np.float64) * 0.5
"""

CALL = "import steps; r = steps.big(5_000_000); print(r.shape, r.dtype, float(r.sum()))"


def test_a_big_array_result_and_output_file_round_trip_in_chunks(pyrepo: PyRepo) -> None:
    pyrepo.write("steps.py", STEPS)
    first = pyrepo.python(CALL).stdout
    commit = pyrepo.refs()["refs/gitcache/step/big"]
    tree = pyrepo.git("ls-tree", "-r", "--name-only", commit).split()
    assert "result/value.npy" not in tree and "chunks/result/value.npy/00000000" in tree
    assert "outputs/big.bin" not in tree and "chunks/outputs/big.bin/00000000" in tree
    blob = pyrepo.blob("big.bin")
    (pyrepo.root / "big.bin").unlink()
    second = pyrepo.python(CALL).stdout  # a new process: read from the record
    assert second == first == "(5000000,) float64 6249998750000.0\n"
    assert pyrepo.read("calls.txt") == "big\n"
    assert pyrepo.blob("big.bin") == blob  # restored from its chunks
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=pyrepo.root, capture_output=True)
    assert fsck.returncode == 0, fsck.stderr
