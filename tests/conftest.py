"""Shared fixtures: tiny generated corpora and one local Ray instance for the whole session."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

POSITIVE = "good great excellent wonderful superb lovely charming moving".split()
NEGATIVE = "bad awful terrible boring dull poor tedious clumsy".split()
NEUTRAL = "plot film actors scene story movie director script the a of and".split()


def synthetic_rows(n: int, seed: int = 0, classes: int = 2) -> list[dict]:
    """Texts whose label is signalled by a few cue words among filler of varied length."""
    rng = random.Random(seed)
    cues = [POSITIVE, NEGATIVE, ["meh", "okay", "average", "middling"]][:classes]
    names = ["pos", "neg", "mid"][:classes]
    rows = []
    for i in range(n):
        k = rng.randrange(classes)
        words = [rng.choice(cues[k]) for _ in range(2)] + [rng.choice(NEUTRAL) for _ in range(rng.randint(1, 30))]
        rng.shuffle(words)
        rows.append({"id": f"r{i}", "text": " ".join(words).capitalize() + ".", "label": names[k]})
    return rows


def write_split(directory: Path, rows: list[dict], files: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    per = -(-len(rows) // files)
    for f in range(files):
        chunk = rows[f * per:(f + 1) * per]
        pq.write_table(pa.Table.from_pylist(chunk), directory / f"part-{f:05d}.parquet")
    return directory


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """train (2 files, uneven) / validation / test folders of a 2-class synthetic corpus."""
    root = tmp_path_factory.mktemp("corpus")
    write_split(root / "train", synthetic_rows(1200, seed=1), files=3)
    write_split(root / "validation", synthetic_rows(201, seed=2))  # odd: an uneven split across 2 ranks
    write_split(root / "test", synthetic_rows(200, seed=3))
    return root


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (loopback only) shared by every Ray test."""
    import ray

    from textclf.raysession import ray_session

    with ray_session(num_cpus=3):
        yield ray


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
