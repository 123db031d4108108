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


SHAPES = """\
import numpy as np
import gitcache


@gitcache.step
def shaped(order: str, dtype: str) -> np.ndarray:
    base = np.arange(6_000_000, dtype=dtype).reshape(1000, 6000) % 251
    return np.asfortranarray(base) if order == "F" else base
"""

CHECK = """\
import numpy as np, steps
a = steps.shaped({order!r}, {dtype!r})
b = np.arange(6_000_000, dtype={dtype!r}).reshape(1000, 6000) % 251
print(a.dtype == b.dtype, a.shape, bool((a == b).all()), a.flags.f_contiguous, a.flags.writeable)
"""


def test_big_arrays_of_any_order_and_dtype_read_back_from_chunks_as_numpy_loads_them(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write("steps.py", SHAPES)
    for order, dtype in [("C", "<f8"), ("F", ">i8"), ("F", "<f4")]:
        code = CHECK.format(order=order, dtype=dtype)
        first = pyrepo.python(code).stdout
        second = pyrepo.python(code).stdout  # a new process: read from the record's chunks
        fortran = order == "F"
        assert first == second == f"True (1000, 6000) True {fortran} True\n", (order, dtype)
    commit = pyrepo.refs()["refs/gitcache/step/shaped"]
    tree = pyrepo.git("ls-tree", "-r", "--name-only", commit).split()
    assert "chunks/result/value.npy/00000000" in tree


def test_a_corrupt_chunk_of_a_big_result_is_refused_and_the_step_runs_again(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write("steps.py", STEPS)
    pyrepo.python(CALL)
    commit = pyrepo.refs()["refs/gitcache/step/big"]
    chunk = pyrepo.git("rev-parse", f"{commit}:chunks/result/value.npy/00000001").strip()
    loose = pyrepo.root / ".git" / "objects" / chunk[:2] / chunk[2:]
    assert loose.exists()  # a big chunk is written loose
    import zlib

    raw = bytearray(zlib.decompress(loose.read_bytes()))
    raw[-1] ^= 0xFF  # one byte of the content, the header untouched
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(bytes(raw)))
    result = pyrepo.python(CALL)
    assert result.stdout == "(5000000,) float64 6249998750000.0\n"
    assert "corrupt" in result.stderr and "running it instead" in result.stderr
    assert pyrepo.read("calls.txt") == "big\nbig\n"


LISTS = """\
import gitcache


@gitcache.step
def numbers(n: int) -> list[int]:
    with open("calls.txt", "a") as log:
        log.write("numbers\\n")
    return list(range(n))
"""

LIST_CALL = "import steps; r = steps.numbers(3_000_000); print(len(r), r[-1])"


def test_a_corrupt_chunk_of_a_big_result_json_is_refused_and_the_step_runs_again(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write("steps.py", LISTS)
    assert pyrepo.python(LIST_CALL).stdout == "3000000 2999999\n"
    commit = pyrepo.refs()["refs/gitcache/step/numbers"]
    chunk = pyrepo.git("rev-parse", f"{commit}:chunks/result.json/00000001").strip()
    loose = pyrepo.root / ".git" / "objects" / chunk[:2] / chunk[2:]
    import zlib

    raw = bytearray(zlib.decompress(loose.read_bytes()))
    raw[-1] = ord("7") if raw[-1] != ord("7") else ord("8")  # still digits: still JSON
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(bytes(raw)))
    result = pyrepo.python(LIST_CALL)
    assert result.stdout == "3000000 2999999\n"
    assert "corrupt" in result.stderr and "running it instead" in result.stderr
    assert "Traceback" not in result.stderr
    assert pyrepo.read("calls.txt") == "numbers\nnumbers\n"
