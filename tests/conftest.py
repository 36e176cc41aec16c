"""Shared fixtures: tiny generated corpora and one local Ray instance for the whole session."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
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


def multiclass_rows(n: int, classes: int = 12, seed: int = 0) -> list[dict]:
    """A many-class corpus of a few hundred short rows per class at most, imbalanced (the largest class
    about 4x the smallest): each class has four cue words, a row holds one or two of its own and, one
    time in three, one of another class's, among filler words."""
    rng = random.Random(seed)
    cues = [
        [f"{topic}{i}" for i in range(4)]
        for topic in (
            "alpha",
            "bravo",
            "charlie",
            "delta",
            "echo",
            "foxtrot",
            "golf",
            "hotel",
            "india",
            "juliet",
            "kilo",
            "lima",
            "mike",
            "november",
        )[:classes]
    ]
    weights = [4 ** (-k / (classes - 1)) for k in range(classes)]
    rows = []
    for i in range(n):
        k = rng.choices(range(classes), weights)[0]
        words = [rng.choice(cues[k]) for _ in range(rng.randint(1, 2))]
        if rng.random() < 1 / 3:
            words.append(rng.choice(cues[rng.randrange(classes)]))
        words += [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 20))]
        rng.shuffle(words)
        rows.append({"id": f"m{i}", "text": " ".join(words) + ".", "label": f"class-{k:02d}"})
    return rows


def write_split(directory: Path, rows: list[dict], files: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    per = -(-len(rows) // files)
    for f in range(files):
        chunk = rows[f * per : (f + 1) * per]
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
def multiclass_corpus(tmp_path_factory) -> Path:
    """train / validation / test folders of a 12-class, imbalanced synthetic corpus."""
    root = tmp_path_factory.mktemp("multiclass")
    write_split(root / "train", multiclass_rows(2400, seed=1))
    write_split(root / "validation", multiclass_rows(400, seed=2))
    write_split(root / "test", multiclass_rows(400, seed=3))
    return root


def make_label_bundle(path: Path, seed: int) -> str:
    """A small random `bow` bundle: labeling tests need a model, not a trained one."""
    import torch

    from textclf.bundle import save_bundle
    from textclf.models import create_model
    from textclf.text.tokenizer import TokenizerConfig
    from textclf.text.vocab import Vocab

    torch.manual_seed(seed)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "film", "plot", "great", "dull"])
    model = create_model("bow", vocab_size=len(vocab), num_classes=2, num_buckets=50).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return str(save_bundle(path, model, "bow", vocab, ["neg", "pos"], TokenizerConfig(), 32))


def make_tiny_encoder(folder: Path, texts: list[str]) -> Path:
    """A pretrained encoder in Hugging Face layout, small enough to train in seconds: a 2-layer BERT of
    hidden size 32 (random weights) and a word-piece vocabulary that `tokenizers` learns from `texts`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0, as textclf pads
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    import torch

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))  # config.json, model.safetensors
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    texts = [row["text"] for row in synthetic_rows(400, seed=9) + multiclass_rows(400, seed=9)]
    return make_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny-bert", texts)


@pytest.fixture(scope="session")
def small_bow_config(tmp_path_factory) -> Path:
    """Training options for tests about where and how training runs, not what it learns: the default
    bow's million bigram buckets make every checkpoint about a gigabyte (weights, best weights, Adam)."""
    path = tmp_path_factory.mktemp("config") / "small-bow.yaml"
    path.write_text("arch: bow\nmodel:\n  num_buckets: 1000\n")
    return path


@pytest.fixture(scope="session")
def label_bundles(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("bundles")
    return make_label_bundle(root / "a", 0), make_label_bundle(root / "b", 1)


def random_texts(n: int, seed: int = 0) -> list[str]:
    words = np.array(["good", "bad", "film", "plot", "great", "dull", "the"])
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(n)]


def read_labeled(out: Path) -> pa.Table:
    """Every output file under a labeling OUTPUT, Parquet or Arrow, as one table."""
    tables = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            tables.append(pq.read_table(out / name))
        elif name.endswith(".arrow"):
            with pa.OSFile(str(out / name)) as f:
                tables.append(pa.ipc.open_file(f).read_all())
    return pa.concat_tables(tables)


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def kill_session(proc: subprocess.Popen) -> float:
    """SIGKILL the session that `proc` leads (start_new_session=True): its process group, then any
    Ray process that moved to a group of its own. Returns the seconds until none was left."""
    started = time.monotonic()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the command is gone, but its Ray may not be
        pass
    proc.wait(timeout=60)
    deadline = started + 30
    while (left := session_members(proc.pid)) and time.monotonic() < deadline:
        if time.monotonic() > started + 10:  # what the group kill did not take down
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.2)
    assert not session_members(proc.pid), "processes left behind"
    return time.monotonic() - started


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (loopback only) shared by every Ray test."""
    import ray

    from textclf.runtime.ray_session import ray_session

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


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto's, from PyPI) on 127.0.0.1, for the object-storage tests."""
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start (exit {proc.poll()})") from None
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """`s3://<a new bucket>` on the local S3 server; this process's S3 clients (pyarrow's, boto3's) reach
    it through the environment, and so do the processes it starts."""
    import uuid

    import boto3

    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    bucket = f"textclf-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}"
