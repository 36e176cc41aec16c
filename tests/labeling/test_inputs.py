import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textclf.errors import DataError
from textclf.labeling.inputs import discover_inputs


@pytest.fixture
def tree(tmp_path):
    table = pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"]})
    (tmp_path / "in" / "deep").mkdir(parents=True)
    pq.write_table(table, tmp_path / "in" / "one.parquet")
    pq.write_table(table.slice(0, 2), tmp_path / "in" / "deep" / "two.parquet")
    (tmp_path / "in" / "_SUCCESS").write_text("")
    (tmp_path / "in" / ".three.parquet.tmp").write_text("")
    (tmp_path / "in" / "notes.txt").write_text("not data")
    return tmp_path / "in"


def test_folders_are_searched_recursively_and_rows_come_from_footers(tree):
    _, files = discover_inputs(str(tree))
    assert [(f.path.rsplit("/", 2)[-2:], f.rows, f.error) for f in files] == [
        (["deep", "two.parquet"], 2, None),
        (["in", "one.parquet"], 3, None),
    ]


def test_a_single_file_and_a_glob(tree):
    assert [f.rows for f in discover_inputs(str(tree / "one.parquet"))[1]] == [3]
    assert [f.rows for f in discover_inputs(str(tree / "**" / "*.parquet"))[1]] == [2, 3]


def test_a_uri_goes_through_pyarrow_filesystems(tree):
    assert [f.rows for f in discover_inputs(f"file://{tree}")[1]] == [2, 3]


def test_unreadable_files_are_kept_with_their_error(tree):
    (tree / "zero.parquet").write_bytes(b"")
    (tree / "fake.parquet").write_text("this is not parquet")
    data = (tree / "one.parquet").read_bytes()
    (tree / "truncated.parquet").write_bytes(data[: len(data) // 2])
    files = {f.path.rsplit("/", 1)[-1]: f for f in discover_inputs(str(tree))[1]}
    for name in ("zero.parquet", "fake.parquet", "truncated.parquet"):
        assert files[name].rows is None and files[name].error.startswith("unreadable Parquet")
    assert files["one.parquet"].error is None


def test_no_parquet_files_or_no_input_is_a_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Parquet files"):
        discover_inputs(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="does not exist"):
        discover_inputs(str(tmp_path / "missing"))
