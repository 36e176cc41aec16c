"""The OUTPUT protocol without Ray: rows stream into a hidden file, the commit renames it into place."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textclf import __version__
from textclf.errors import DataError
from textclf.labeling.config import LabelConfig
from textclf.labeling.inputs import InputFile
from textclf.labeling.output import (
    FileState,
    RunStats,
    append_rows,
    file_metadata,
    locked,
    prepare_output,
    write_manifest,
)
from textclf.storage import Folder

RUN = {"model_sha256": "abc", "input": "in", "inputs": ["in/a.parquet"], "config": LabelConfig().output_options()}


def _rows(rows: list[int]) -> pa.Table:
    return pa.table(
        {
            "_file": pa.array([0] * len(rows), pa.int32()),
            "_row": pa.array(rows, pa.int64()),
            "id": [f"r{r}" for r in rows],
            "label": ["a"] * len(rows),
            "confidence": pa.array([0.9] * len(rows), pa.float32()),
            "error": pa.array([None] * len(rows), pa.string()),
        }
    )


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path) -> Folder:
    """OUTPUT on the local disk, or on the local S3 server (moto's, started by the tests)."""
    if request.param == "local":
        return Folder(tmp_path / "out")
    return Folder(request.getfixturevalue("s3_bucket") + "/labeled/out")


def test_an_output_appears_only_when_all_its_rows_are_in_and_each_row_once(out):
    with locked(out):
        assert prepare_output(out, json.loads(json.dumps(RUN)), overwrite=False) is False
        state = FileState(0, InputFile("in/a.parquet", 3), "part-00000-a.parquet", np.zeros(3, bool))
        append_rows(state, _rows([0, 1]), out, LabelConfig(), file_metadata("abc"))
        assert [n for n in out.names() if not n.startswith(".")] == ["_run.json"]  # the part is not visible yet
        assert os.path.basename(state.tmp).startswith(".tmp-")
        append_rows(state, _rows([1]), out, LabelConfig())  # a retried batch: row 1 again
        append_rows(state, _rows([2]), out, LabelConfig(), file_metadata("abc"))
        assert state.output in out.names() and not [n for n in out.names() if n.startswith(".tmp-")]
        manifest = write_manifest(out, RUN, [state], 3, RunStats(), elapsed=1.0)
    assert manifest["rows_labeled"] == 3 and "_SUCCESS" in out.names()
    assert json.loads(out.read_text("_manifest.json")) == manifest
    with out.open_input(state.output) as f:
        table = pq.read_table(f)
    assert table["id"].to_pylist() == ["r0", "r1", "r2"]
    # what made them, in the manifest and in each file (a file copied elsewhere still says so)
    assert manifest["textclf_version"] == __version__ and manifest["created"].endswith("+00:00")
    metadata = table.schema.metadata
    assert metadata[b"textclf.version"] == __version__.encode() and metadata[b"textclf.model_sha256"] == b"abc"
    assert metadata[b"textclf.created"].decode()[:4].isdigit()
    # the same run again: finished, nothing to do; a stray temporary (a killed run's) is removed
    with out.open_output(out.temporary("part-00001-b.parquet")) as f:
        f.write(b"half a file")
    assert prepare_output(out, json.loads(json.dumps(RUN)), overwrite=False) is True
    assert not [n for n in out.names() if n.startswith(".tmp-")]


def test_the_same_output_with_other_options_is_refused_naming_them(tmp_path):
    out = Folder(tmp_path / "out")
    out.mkdir()
    prepare_output(out, json.loads(json.dumps(RUN)), overwrite=False)
    other = {**RUN, "config": LabelConfig(format="arrow").output_options()}
    with pytest.raises(DataError, match=r"different --format \(was 'parquet'\)"):
        prepare_output(out, json.loads(json.dumps(other)), overwrite=False)
