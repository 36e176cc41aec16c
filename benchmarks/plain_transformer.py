"""The plain way to label with a fine-tuned transformer, the reference `textclf label` is measured
against: one process, texts in file order, batches of 64 word-piece sequences padded to their longest
(the tokenizer's own padding), the same bundle's model and tokenizer.json.

    python benchmarks/plain_transformer.py BUNDLE INPUT_DIR OUTPUT_DIR [--threads N]

Prints one JSON line: docs, seconds, docs_per_s, padding_efficiency.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

BATCH_ROWS = 64


def label(bundle_dir: str, input_dir: str, output_dir: str) -> dict:
    from tokenizers import Tokenizer

    from textclf.bundle import load_bundle

    started = time.monotonic()
    bundle = load_bundle(bundle_dir)
    tokenizer = Tokenizer.from_str(bundle.tokenizer.definition)
    tokenizer.enable_truncation(bundle.max_tokens)
    tokenizer.enable_padding()  # to the longest of each batch
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = real = padded = 0
    for path in sorted(Path(input_dir).glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        texts = table.column("text").to_pylist()
        predicted, confidence = [], []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_ROWS):
                encodings = tokenizer.encode_batch(texts[start : start + BATCH_ROWS])
                ids = torch.tensor([e.ids for e in encodings])
                lengths = torch.tensor([sum(e.attention_mask) for e in encodings])
                probs = torch.softmax(bundle.model(ids, lengths), dim=-1).max(dim=-1)
                predicted += [bundle.labels[i] for i in probs.indices.tolist()]
                confidence += probs.values.tolist()
                real += int(lengths.sum())
                padded += ids.numel()
        columns = {
            "id": table.column("id"),
            "label": pa.array(predicted, pa.string()),
            "confidence": pa.array(confidence, pa.float32()),
        }
        pq.write_table(pa.table(columns), out / path.name)
        docs += table.num_rows
    elapsed = time.monotonic() - started
    seconds = round(elapsed, 3)
    return {"docs": docs, "seconds": seconds, "docs_per_s": docs / elapsed, "padding_efficiency": real / padded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("input_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(label(args.bundle, args.input_dir, args.output_dir)))


if __name__ == "__main__":
    main()
