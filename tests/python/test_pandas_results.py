"""pandas results: stored as typed .npy blobs and JSON, read back equal, never pickled."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_index_equal, assert_series_equal

from gitcache.python import results
from gitcache.python.errors import ResultError
from tests.python.conftest import PyRepo

STEPS = """
import numpy as np
import pandas as pd
import gitcache


def count(name):
    with open("calls.txt", "a") as f:
        f.write(name + "\\n")


@gitcache.step
def table(n: int) -> pd.DataFrame:
    count("table")
    return pd.DataFrame(
        {
            "x": np.arange(n, dtype=np.int64),
            "y": np.linspace(0, 1, n),
            "flag": np.arange(n) % 2 == 0,
            "name": [f"row {i}" if i != 1 else None for i in range(n)],
            "when": pd.date_range("2024-01-01", periods=n, freq="D"),
        },
        index=pd.Index([f"r{i}" for i in range(n)], name="row"),
    )


@gitcache.step
def series(n: int) -> pd.Series:
    count("series")
    return pd.Series(np.arange(n, dtype=np.float32) / 2, name="half")


@gitcache.step
def both(n: int) -> dict[str, pd.DataFrame]:
    count("both")
    frame = pd.DataFrame(
        {"v": np.arange(n * 2, dtype=np.int16)},
        index=pd.MultiIndex.from_arrays([["a", "b"] * n, list(range(n * 2))], names=["k", 2]),
    )
    return {"multi": frame, "empty": pd.DataFrame({"a": []}, dtype="float64")}


@gitcache.step
def objects(n: int) -> pd.DataFrame:
    count("objects")
    return pd.DataFrame({"o": [object() for _ in range(n)]})


@gitcache.step
def wrong(n: int) -> pd.DataFrame:
    count("wrong")
    return pd.Series([1, 2])
"""


@pytest.fixture
def steps(pyrepo: PyRepo):  # type: ignore[no-untyped-def]
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\n")
    module = pyrepo.module("frames_steps.py", STEPS)
    pyrepo.commit("steps")
    return module


def calls(pyrepo: PyRepo) -> list[str]:
    path = pyrepo.root / "calls.txt"
    return path.read_text().split() if path.exists() else []


def test_a_dataframe_result_is_stored_without_pickle_and_read_back_equal(
    pyrepo: PyRepo, steps
) -> None:
    frame = steps.table(4)
    commit = pyrepo.refs()["refs/gitcache/step/table"]
    tree = set(pyrepo.git("ls-tree", "-r", "--name-only", commit).split())
    assert "result.pickle" not in tree
    assert {"result/value/c0.npy", "result/value/c1.npy", "result/value/c4.npy"} <= tree
    document = json.loads(pyrepo.git("show", f"{commit}:result.json"))
    described = document["$pandas"]
    assert described["kind"] == "DataFrame"
    assert described["columns"]["values"]["strings"] == ["x", "y", "flag", "name", "when"]
    assert described["data"][3] == {"dtype": "str", "strings": ["row 0", None, "row 2", "row 3"]}
    assert described["index"]["name"] == "row"
    # A new process loads it from git: equal, dtypes and index included.
    steps.table._memo.clear()
    steps.table._fast.clear()
    loaded = steps.table(4)
    assert_frame_equal(loaded, frame)
    done = pyrepo.python(
        "import frames_steps as s; f = s.table(4); "
        "print(f.dtypes.astype(str).tolist(), f.index.name, f['name'].isna().tolist())"
    )
    dtypes = frame.dtypes.astype(str).tolist()
    assert dtypes[:3] == ["int64", "float64", "bool"] and dtypes[4].startswith("datetime64")
    assert done.stdout.strip() == f"{dtypes} row [False, True, False, False]"
    assert calls(pyrepo) == ["table"]


def test_series_multiindex_and_empty_frames_round_trip(pyrepo: PyRepo, steps) -> None:
    series = steps.series(5)
    found = steps.both(2)
    for step in (steps.series, steps.both):
        step._memo.clear()
        step._fast.clear()
    assert_series_equal(steps.series(5), series)
    again = steps.both(2)
    assert_frame_equal(again["multi"], found["multi"])
    assert_frame_equal(again["empty"], found["empty"])
    assert again["multi"].index.names == ["k", 2]
    assert calls(pyrepo) == ["series", "both"]


def test_a_frame_of_python_objects_needs_pickle(pyrepo: PyRepo, steps) -> None:
    with pytest.raises(ResultError, match=r"cannot be stored as JSON or \.npy.*dtype object"):
        steps.objects(2)
    assert "refs/gitcache/step/objects" not in pyrepo.refs()


def test_a_frame_is_validated_against_the_return_type(pyrepo: PyRepo, steps) -> None:
    with pytest.raises(ResultError, match="returned a Series, which does not match"):
        steps.wrong(1)
    assert "refs/gitcache/step/wrong" not in pyrepo.refs()


def test_equal_frames_give_equal_signatures(pyrepo: PyRepo) -> None:
    source = """
import pandas as pd
import gitcache

@gitcache.step
def total(frame: pd.DataFrame) -> float:
    return float(frame.to_numpy().sum())
"""
    module = pyrepo.module("frame_arg.py", source)
    pyrepo.commit("frame arg")
    a = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    b = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    fortran = pd.DataFrame(np.asfortranarray([[1.0, 3.0], [2.0, 4.0]]), columns=["x", "y"])
    c = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 5.0]})
    signatures = [module.total.task(f).signature for f in (a, b, fortran, c)]
    assert signatures[0] == signatures[1] == signatures[2] != signatures[3]


class _Repo:
    """Arrays of a forged record, by name (what results.load reads from git)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def read_commit_file(self, commit: str, path: str) -> bytes | None:
        import io

        name = path.removeprefix("result/").removesuffix(".npy")
        if name not in self.arrays:
            return None
        buffer = io.BytesIO()
        np.save(buffer, self.arrays[name], allow_pickle=False)
        return buffer.getvalue()

    def read(self, path: str) -> bytes | None:
        """The reader results.load takes: a file of the record by its path."""
        return self.read_commit_file("c" * 40, path)


@pytest.mark.parametrize(
    ("document", "arrays", "message"),
    [
        # a column whose array is not the dtype result.json says
        (
            {
                "kind": "Series",
                "name": None,
                "index": {"range": [0, 2, 1], "name": None},
                "values": {"dtype": "<f8", "array": {"$npy": "v"}},
            },
            {"v": np.array([1, 2], dtype=np.int64)},
            "not the 1-dimensional <f8",
        ),
        # a column longer than its index
        (
            {
                "kind": "Series",
                "name": None,
                "index": {"range": [0, 1, 1], "name": None},
                "values": {"dtype": "<i8", "array": {"$npy": "v"}},
            },
            {"v": np.array([1, 2], dtype=np.int64)},
            "a column of 2 values for an index of 1",
        ),
        # strings that are not strings
        (
            {
                "kind": "Index",
                "index": {"name": None, "values": {"dtype": "str", "strings": [1]}},
            },
            {},
            "holds something else than strings",
        ),
        # an unknown kind
        ({"kind": "Panel"}, {}, "unknown pandas kind"),
        # a label that is not a JSON scalar
        (
            {"kind": "Series", "name": [1], "index": {}, "values": {}},
            {},
            "malformed pandas result",
        ),
    ],
)
def test_a_malformed_pandas_result_is_refused(
    document: dict[str, object], arrays: dict[str, np.ndarray], message: str
) -> None:
    data = json.dumps({"$pandas": document})

    class Repo(_Repo):
        def read_commit_file(self, commit: str, path: str) -> bytes | None:
            if path == "result.json":
                return data.encode()
            return super().read_commit_file(commit, path)

    with pytest.raises(ResultError, match=message):
        results.load(Repo(arrays).read, "json", False, "record x")


def test_an_index_result_and_a_frame_inside_a_dict_round_trip() -> None:
    value = {
        "idx": pd.Index([3, 1, 2], name="n"),
        "$frame": pd.DataFrame({"s": pd.Series(["a", "b"], dtype="string")}),
    }
    encoded = results.encode(value, allow_pickle=False)
    assert encoded.kind == "json"

    class Repo(_Repo):
        def read_commit_file(self, commit: str, path: str) -> bytes | None:
            if path == "result.json":
                return encoded.data
            return super().read_commit_file(commit, path)

    loaded, pickled = results.load(Repo(encoded.arrays).read, "json", False, "record x")
    assert not pickled
    assert_index_equal(loaded["idx"], value["idx"])
    assert_frame_equal(loaded["$frame"], value["$frame"])
