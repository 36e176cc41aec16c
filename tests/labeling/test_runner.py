"""`--runner auto`: which inputs are labeled in-process and which go to Ray."""

import sys

import pyarrow as pa
import pytest

from textclf.errors import DataError
from textclf.labeling.config import LabelConfig
from textclf.labeling.pipeline import _runs_in_process, joined_up_to


@pytest.fixture
def no_ray(monkeypatch):
    """A fresh command: no Ray imported in this process, no cluster in the environment."""
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.parametrize(
    ("cores", "arch", "rows", "in_process"),
    [
        (2, "bow", 3_000_000, True),  # on 2 cores Ray's pool is no faster than one process
        (2, "transformer", 1_000_000, True),
        (4, "bow", 30_000, True),  # 3 cores' worth of actors: Ray pays back over 120,000 rows
        (4, "bow", 300_000, False),
        (4, "bilstm", 1_000, True),
        (4, "bilstm", 30_000, False),
        (16, "bow", 90_000, False),  # more cores: Ray pays back sooner
        (1, "bilstm", 10_000_000, True),
    ],
)
def test_auto_weighs_the_rows_against_ray_start_up(monkeypatch, no_ray, cores, arch, rows, in_process):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    assert _runs_in_process(LabelConfig(), arch, rows, address=None) is in_process


@pytest.mark.parametrize(
    ("config", "address", "env"),
    [
        (LabelConfig(), "127.0.0.1:6379", {}),
        (LabelConfig(), None, {"RAY_ADDRESS": "127.0.0.1:6379"}),
        (LabelConfig(concurrency=2), None, {}),
        (LabelConfig(use_gpu=True), None, {}),
        (LabelConfig(runner="ray"), None, {}),
    ],
)
def test_a_cluster_gpus_actors_or_runner_ray_mean_ray(monkeypatch, no_ray, config, address, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert not _runs_in_process(config, "bow", 10, address)


def test_runner_in_process_is_kept_whatever_the_size(no_ray):
    assert _runs_in_process(LabelConfig(runner="in-process"), "transformer", 10_000_000, None)


def test_an_unknown_runner_is_refused():
    with pytest.raises(DataError, match="--runner must be one of auto, ray, in-process"):
        LabelConfig(runner="spark")


def _chunk(file: int, rows: int, text_type: pa.DataType | None = None) -> pa.Table:
    texts = pa.array(["x"] * rows, text_type or pa.string())
    return pa.table({"_file": pa.array([file] * rows, pa.int64()), "_text": texts})


def test_in_process_chunks_of_small_files_are_joined_in_order_up_to_the_call_size():
    chunks = [_chunk(0, 3), _chunk(1, 2), _chunk(2, 4), _chunk(3, 6), _chunk(4, 1)]
    joined = list(joined_up_to(iter(chunks), 5))
    assert [t.num_rows for t in joined] == [5, 4 + 6, 1]
    assert pa.concat_tables(joined)["_file"].to_pylist() == pa.concat_tables(chunks)["_file"].to_pylist()


def test_in_process_chunks_of_different_schemas_stay_apart():
    chunks = [_chunk(0, 2), _chunk(1, 2, pa.large_string()), _chunk(2, 2, pa.large_string())]
    joined = list(joined_up_to(iter(chunks), 100))
    assert [(t.num_rows, t.schema.field("_text").type) for t in joined] == [(2, pa.string()), (4, pa.large_string())]
