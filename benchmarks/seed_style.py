"""Seed-style baselines: text classification the way the seed PyTorch tutorial does it, to measure
textclf against. One process, plain torch (default threads), no Ray.

- tokens: `re.findall(r"\\w+|[^\\w\\s]", text.lower())`;
- vocabulary from the train split: min_freq 2, at most 25,000 entries, <pad>=0, <unk>=1; texts
  cut to 256 tokens like textclf's default, so both read the same tokens;
- batches: 64 rows in file order, padded with `pad_sequence` to the batch's longest row;
- models at textclf's default sizes (read from textclf's config classes) but run the seed's way on
  the padded tensor: the BiLSTM is not packed (padding reaches the LSTM), the CNN pools over every
  position, the bag of embeddings averages over the padded length.

    python benchmarks/seed_style.py train --arch bilstm --train runs/bench/data/train [--epochs 1] [--out CKPT]
    python benchmarks/seed_style.py label CKPT INPUT_DIR OUTPUT_DIR

Both print one JSON line per epoch / per run (tokens/s, docs/s, padding efficiency).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

TOKEN = re.compile(r"\w+|[^\w\s]")
BATCH_ROWS = 64
MIN_FREQ, MAX_VOCAB = 2, 25_000
MAX_TOKENS = 256  # textclf's default cut: both sides then read the same tokens of long documents
ARCHS = ("bilstm", "cnn", "bow")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class SeedVocab:
    def __init__(self, itos: Sequence[str]) -> None:
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> SeedVocab:
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = [t for t, c in counts.most_common(MAX_VOCAB - 2) if c >= MIN_FREQ]
        return cls(["<pad>", "<unk>", *kept])

    def encode(self, tokens: Sequence[str]) -> torch.Tensor:
        # an empty text still needs one position, or pad_sequence and the LSTM have nothing to read
        return torch.tensor([self.stoi.get(t, 1) for t in tokens[:MAX_TOKENS]] or [1], dtype=torch.long)


class SeedBiLSTM(nn.Module):
    """The tutorial's BiLSTM: final hidden states of both directions, concatenated, then linear.
    Without packing, the final states are read after the padding, as the unpacked seed did."""

    def __init__(self, vocab_size: int, num_classes: int) -> None:
        from textclf.models.bilstm import BiLSTMConfig

        size = BiLSTMConfig(vocab_size=vocab_size, num_classes=num_classes)
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, size.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            size.embedding_dim,
            size.hidden_dim,
            num_layers=size.num_layers,
            bidirectional=True,
            dropout=size.dropout,
            batch_first=True,
        )
        self.dropout = nn.Dropout(size.dropout)
        self.fc = nn.Linear(2 * size.hidden_dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(self.dropout(self.embedding(ids)))
        return self.fc(self.dropout(torch.cat([hidden[-2], hidden[-1]], dim=1)))


class SeedCNN(nn.Module):
    """Kim's TextCNN the tutorial's way: max over every position, padding included."""

    def __init__(self, vocab_size: int, num_classes: int) -> None:
        from textclf.models.cnn import CNNConfig

        size = CNNConfig(vocab_size=vocab_size, num_classes=num_classes)
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, size.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(size.embedding_dim, size.num_filters, k) for k in size.filter_sizes)
        self.min_length = max(size.filter_sizes)
        self.dropout = nn.Dropout(size.dropout)
        self.fc = nn.Linear(size.num_filters * len(size.filter_sizes), num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = F.pad(ids, (0, max(0, self.min_length - ids.size(1))))  # the tutorial pads to the widest filter
        embedded = self.embedding(ids).transpose(1, 2)
        pooled = [F.relu(conv(embedded)).amax(dim=2) for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


class SeedBoW(nn.Module):
    """fastText-style mean of word and hashed-bigram vectors at textclf's bow size, averaged over
    the padded length like the tutorial's avg_pool2d."""

    def __init__(self, vocab_size: int, num_classes: int) -> None:
        from textclf.models.bow import BoWConfig

        size = BoWConfig(vocab_size=vocab_size, num_classes=num_classes)
        super().__init__()
        self.buckets = size.num_buckets
        self.embedding = nn.Embedding(vocab_size, size.embedding_dim, padding_idx=0)
        self.bigram_embedding = nn.Embedding(size.num_buckets, size.embedding_dim)
        self.dropout = nn.Dropout(size.dropout)
        self.fc = nn.Linear(size.embedding_dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        bigrams = (ids[:, :-1] * 116_049_371 + ids[:, 1:]) % self.buckets
        vectors = torch.cat([self.embedding(ids), self.bigram_embedding(bigrams)], dim=1)
        return self.fc(self.dropout(vectors.mean(dim=1)))


MODELS = {"bilstm": SeedBiLSTM, "cnn": SeedCNN, "bow": SeedBoW}


def batches(sequences: Sequence[torch.Tensor], rows: int = BATCH_ROWS) -> Iterator[tuple[slice, torch.Tensor]]:
    """Fixed-size batches in file order, each padded to its own longest row."""
    for start in range(0, len(sequences), rows):
        part = slice(start, min(start + rows, len(sequences)))
        yield part, pad_sequence(sequences[part], batch_first=True, padding_value=0)


def read_split(path: str | Path, rows: int | None = None) -> tuple[list[str], list[str]]:
    table = pq.read_table(path, columns=["text", "label"])
    if rows is not None:
        table = table.slice(0, rows)
    return table.column("text").to_pylist(), table.column("label").to_pylist()


def train(
    arch: str, train_path: str | Path, epochs: int = 1, rows: int | None = None, lr: float = 1e-3, seed: int = 0
) -> tuple[nn.Module, SeedVocab, list[str], list[dict]]:
    """Tokenize and numericalize once (as the tutorial's preprocessing does), then train with Adam
    and cross entropy; each epoch's record counts real (unpadded) tokens per second of the loop."""
    torch.manual_seed(seed)
    texts, label_names = read_split(train_path, rows)
    tokens = [tokenize(t) for t in texts]
    vocab = SeedVocab.build(tokens)
    labels = sorted(set(label_names))
    sequences = [vocab.encode(t) for t in tokens]
    targets = torch.tensor([labels.index(x) for x in label_names])
    model = MODELS[arch](len(vocab.itos), len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        real = padded = steps = 0
        started = time.monotonic()
        for part, ids in batches(sequences):
            optimizer.zero_grad()
            loss = loss_fn(model(ids), targets[part])
            loss.backward()
            optimizer.step()
            real += sum(len(s) for s in sequences[part])
            padded += ids.numel()
            steps += 1
        elapsed = time.monotonic() - started
        history.append(
            {
                "event": "epoch",
                "epoch": epoch,
                "real_tokens": real,
                "train_time_s": round(elapsed, 3),
                "steps": steps,
                "step_ms": round(1000 * elapsed / steps, 2),
                "tokens_per_s": real / elapsed,
                "padding_efficiency": real / padded,
                "loss": loss.item(),
            }
        )
    return model, vocab, labels, history


def save(model: nn.Module, arch: str, vocab: SeedVocab, labels: list[str], out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    (out / "meta.json").write_text(json.dumps({"arch": arch, "itos": vocab.itos, "labels": labels}))


def load(checkpoint: str | Path) -> tuple[nn.Module, SeedVocab, list[str]]:
    checkpoint = Path(checkpoint)
    meta = json.loads((checkpoint / "meta.json").read_text())
    model = MODELS[meta["arch"]](len(meta["itos"]), len(meta["labels"]))
    model.load_state_dict(torch.load(checkpoint / "model.pt", weights_only=True))
    return model.eval(), SeedVocab(meta["itos"]), meta["labels"]


def label(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path) -> dict:
    """The tutorial's inference loop over a folder of Parquet files: read, tokenize, 64-row batches
    in file order, pad_sequence, forward under no_grad, softmax, write id/label/confidence."""
    started = time.monotonic()
    model, vocab, labels = load(checkpoint)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    docs = real = padded = 0
    for path in sorted(Path(input_dir).glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        sequences = [vocab.encode(tokenize(t)) for t in table.column("text").to_pylist()]
        predicted, confidence = [], []
        with torch.no_grad():
            for part, ids in batches(sequences):
                probs = torch.softmax(model(ids), dim=-1)
                best = probs.max(dim=-1)
                predicted += [labels[i] for i in best.indices.tolist()]
                confidence += best.values.tolist()
                real += sum(len(s) for s in sequences[part])
                padded += ids.numel()
        pq.write_table(
            pa.table(
                {
                    "id": table.column("id"),
                    "label": pa.array(predicted, pa.string()),
                    "confidence": pa.array(confidence, pa.float32()),
                }
            ),
            output_dir / path.name,
        )
        docs += table.num_rows
    elapsed = time.monotonic() - started
    return {
        "event": "label",
        "docs": docs,
        "seconds": round(elapsed, 3),
        "docs_per_s": docs / elapsed,
        "real_tokens": real,
        "padding_efficiency": real / padded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train and print one JSON line per epoch")
    fit.add_argument("--arch", choices=ARCHS, default="bilstm")
    fit.add_argument("--train", required=True, help="train split (Parquet file or folder; columns text, label)")
    fit.add_argument("--epochs", type=int, default=1, help="0 keeps the random weights (a checkpoint to label with)")
    fit.add_argument("--rows", type=int, help="use only the first ROWS rows")
    fit.add_argument("--out", help="save a checkpoint here")
    run = commands.add_parser("label", help="label a folder of Parquet files and print one JSON line")
    run.add_argument("checkpoint")
    run.add_argument("input_dir")
    run.add_argument("output_dir")
    for command in (fit, run):
        # torch's default is one thread per core; its threads spin-wait for each other, so on a busy
        # machine 2 threads on 2 cores can run many times slower than 1
        command.add_argument("--threads", type=int, help="torch threads (default: torch's own default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "train":
        model, vocab, labels, history = train(args.arch, args.train, args.epochs, args.rows)
        for record in history:
            print(json.dumps(record), flush=True)
        if args.out:
            save(model, args.arch, vocab, labels, args.out)
    else:
        print(json.dumps(label(args.checkpoint, args.input_dir, args.output_dir)), flush=True)


if __name__ == "__main__":
    main()
