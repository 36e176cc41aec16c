"""`prepare`: turn a data source into Parquet splits `OUT/{train,validation,test}/part-00000.parquet`.

Every split has the columns `id` (string, unique across splits, stable across reruns), `text` (string)
and `label`: a string label name, or for multi-label data a list of them (from a list-valued label column,
from `--label-separator`, or from fastText lines with several `__label__` tags; an empty list is a text
none of the labels applies to). Sources are read with Hugging Face `datasets`:

- a built-in offline corpus (`rotten-tomatoes`, `fortunes`, `20newsgroups`; see `textclf.data.corpus`);
- local files: a CSV / TSV / JSON / JSONL / Parquet / TXT file (TXT in fastText form, one
  `__label__NAME text` per line), a folder of them, a glob, or a folder written by `save_to_disk`;
- anything else: a Hugging Face hub dataset name.

Sources without splits get a seeded split stratified by label; hub datasets keep their own splits.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textclf.errors import ConfigError, DataError, one_line
from textclf.hub import hub_reachable

SPLITS = ("train", "validation", "test")
VALIDATION_ALIASES = ("validation", "valid", "dev")
# suffix -> (datasets builder, builder options)
FORMATS = {
    ".csv": ("csv", ()),
    ".tsv": ("csv", (("delimiter", "\t"),)),
    ".json": ("json", ()),
    ".jsonl": ("json", ()),
    ".parquet": ("parquet", ()),
    ".txt": ("text", ()),
}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
_FLAGS = {"text_column": "--text-column", "label_column": "--label-column", "id_column": "--id-column"}


@dataclass(frozen=True)
class DataConfig:
    """How to read a source: which columns hold text, label and id, and how to split it."""

    text_column: str = "text"
    label_column: str = "label"
    id_column: str | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, validation, test fractions
    seed: int = 0
    label_separator: str | None = None  # multi-label: split each label value on it ("news|sport")

    def __post_init__(self) -> None:
        for name in ("text_column", "label_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name} must be a non-empty column name, got {getattr(self, name)!r}")
        if self.id_column is not None and (not isinstance(self.id_column, str) or not self.id_column):
            raise ConfigError(f"id_column must be a column name or None, got {self.id_column!r}")
        if self.label_separator is not None and (not isinstance(self.label_separator, str) or not self.label_separator):
            raise ConfigError(f"label_separator must be a non-empty string, got {self.label_separator!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        try:
            split = tuple(float(f) for f in self.split)
        except (TypeError, ValueError):
            raise ConfigError(f"split must be three numbers (train, validation, test), got {self.split!r}") from None
        if len(split) != 3 or any(not np.isfinite(f) or f < 0 for f in split):
            raise ConfigError(
                f"split must be three non-negative fractions (train, validation, test), got {self.split!r}"
            )
        if split[0] <= 0:
            raise ConfigError(f"split: the train fraction must be above 0, got {self.split!r}")
        if abs(sum(split) - 1) > 1e-6:
            raise ConfigError(
                f"split fractions must sum to 1, got {self.split!r} (sum {sum(split):g}); e.g. 0.8,0.1,0.1"
            )
        object.__setattr__(self, "split", split)


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); DataConfig checks the values."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--split must be three comma-separated fractions like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--split must be three comma-separated fractions like 0.8,0.1,0.1, got {text!r}")
    return parts


def prepare(source: str, out: str | Path, config: DataConfig, overwrite: bool = False) -> dict:
    """Read `source`, clean and split it, write the three Parquet splits under `out`; return a summary.

    Rows with null or blank text or label are dropped and counted. `out` appears complete or not at all.
    """
    out = Path(out)
    _check_out(out, overwrite)  # before loading: a refusal should not cost a download
    kind, loaded = _load(source)
    own = _own_splits(loaded, source) if isinstance(loaded, dict) else {}
    if len(own) > 1:
        cleaned = {name: _clean(table, config, source, prefix=name) for name, table in own.items()}
        dropped = sum(n for _, n in cleaned.values())
        splits = _keep_splits({name: t for name, (t, _) in cleaned.items()}, config)
    else:  # no splits, or just one: split it ourselves
        prefix, table = next(iter(own.items())) if own else ("row", loaded)
        table, dropped = _clean(table, config, source, prefix=prefix)
        if table.num_rows == 0:
            raise DataError(f"{source} has no rows with both text and a label")
        parts = stratified_split(_labels(table), config.split, config.seed)
        splits = dict(zip(SPLITS, (table.take(idx) for idx in parts)))
    _check_labels_and_ids(splits, config, source)
    _write(out, splits, overwrite)
    labels = pc.value_counts(_flat_labels(splits.values())).to_pylist()
    return {
        "source": source,
        "kind": kind,
        "out": str(out),
        "rows": {name: t.num_rows for name, t in splits.items()},
        "dropped": dropped,
        "labels": {d["values"]: d["counts"] for d in sorted(labels, key=lambda d: d["values"])},
        "multi_label": _multi_label(splits["train"]),
        "ids": f"column {config.id_column!r}" if config.id_column else "derived from source row",
    }


def stratified_split(labels: np.ndarray, fractions, seed: int) -> list[np.ndarray]:
    """Row indices for each fraction, each label split in the same proportions; same seed, same split."""
    rng = np.random.default_rng(seed)
    values, codes = np.unique(labels, return_inverse=True)  # sorted labels: order does not depend on rows
    groups = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes, minlength=len(values)))[:-1])
    bounds = np.cumsum(fractions)[:-1]
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for group in groups:
        group = rng.permutation(group)
        for part, chunk in zip(parts, np.split(group, np.rint(bounds * len(group)).astype(int))):
            part.append(chunk)
    # Shuffle across labels so any prefix of a split is a fair sample.
    return [rng.permutation(np.concatenate(p or [np.empty(0, np.int64)])).astype(np.int64) for p in parts]


def class_label_names(codes: pa.Array | pa.ChunkedArray, names: list[str]) -> pa.Array | pa.ChunkedArray:
    """Integer `ClassLabel` codes -> label names; -1 (unlabeled) and out-of-range codes become null."""
    valid = pc.and_(pc.greater_equal(codes, 0), pc.less(codes, len(names)))
    return pa.array(names, pa.string()).take(pc.if_else(valid, codes, pa.scalar(None, codes.type)))


# --- loading -----------------------------------------------------------------------------------------


def _load(source: str) -> tuple[str, pa.Table | dict[str, pa.Table]]:
    """(kind, one table or {split name: table}); ClassLabel columns already hold label names."""
    from textclf.data.corpus import BUILTINS, corpus_path

    if source in BUILTINS:
        table = pq.read_table(corpus_path(source))
        if "split" not in table.column_names:
            return "builtin", table
        splits = table["split"].to_numpy(zero_copy_only=False)
        return "builtin", {name: table.filter(splits == name).drop_columns(["split"]) for name in dict.fromkeys(splits)}
    files = _local_files(source)
    if files is None:
        return "hub", _load_hub(source)
    if isinstance(files, Path):
        import datasets as hf

        try:
            return "local", _tables(hf.load_from_disk(str(files)))
        except Exception as e:
            raise DataError(f"cannot read {source}: {one_line(e)}") from None
    return "local", _load_files(files, source)


def _local_files(source: str) -> list[Path] | Path | None:
    """Files named by `source`, a `save_to_disk` folder (a Path), or None when it names no local path."""
    path = Path(source).expanduser()
    if glob.has_magic(source):
        files = [Path(p) for p in sorted(glob.glob(os.path.expanduser(source), recursive=True)) if Path(p).is_file()]
        if not files:
            raise DataError(f"no files match {source}")
    elif path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return path
        files = sorted(p for p in path.rglob("*") if p.is_file() and _format(p) and not p.name.startswith("."))
        if not files:
            raise DataError(f"folder {source} holds no {'/'.join(s[1:] for s in FORMATS)} files")
    elif path.is_file():
        files = [path]
    elif _format(path) or source.startswith(("/", "./", "../", "~")):
        raise DataError(f"path does not exist: {source}")
    else:
        return None
    return files


def _format(path: Path) -> tuple | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:  # datasets decompresses these itself
        suffixes.pop()
    return FORMATS.get(suffixes[-1]) if suffixes else None


def _load_files(files: list[Path], source: str) -> pa.Table:
    import datasets as hf  # slow import: only when preparing

    formats = {_format(f) for f in files}
    if None in formats:
        bad = next(f for f in files if _format(f) is None)
        raise DataError(f"cannot read {bad}: unknown format; use one of {', '.join(FORMATS)}")
    if len(formats) > 1:
        raise DataError(f"{source} mixes file formats ({', '.join(sorted({f.suffix for f in files}))}); use one format")
    for f in files:
        if f.stat().st_size == 0:
            raise DataError(f"{f} is empty")
    builder, options = formats.pop()
    # A throwaway cache: datasets would otherwise keep an Arrow copy of every local file it ever read.
    with tempfile.TemporaryDirectory(prefix="textclf-hf-") as cache:
        try:
            loaded = hf.load_dataset(
                builder, data_files=[str(f) for f in files], cache_dir=cache, keep_in_memory=True, **dict(options)
            )
        except Exception as e:
            if "corresponds to no data" in str(e):  # datasets' way of saying "header only"
                raise DataError(f"{source} has no rows") from None
            raise DataError(f"cannot read {source}: {one_line(e)}") from None
        table = _tables(loaded)["train"]  # data_files without split names all land in "train"
    return _parse_fasttext(table) if builder == "text" else table


def _parse_fasttext(table: pa.Table) -> pa.Table:
    """`__label__NAME text` lines -> columns label, text; other lines become null rows (dropped later).
    Lines with several tags (`__label__a __label__b text`) make the label column lists (multi-label)."""
    if not pc.any(pc.starts_with(table["text"], "__label__")).as_py():
        return table  # plain lines: the missing label column is reported later
    parts = pc.extract_regex(table["text"].combine_chunks(), r"^(?P<tags>(?:__label__\S+\s+)+)(?P<text>.*)$")
    tags = pc.split_pattern_regex(pc.utf8_trim_whitespace(pc.struct_field(parts, "tags")), r"\s+")
    names = pc.utf8_replace_slice(pc.list_flatten(tags), 0, len("__label__"), "")
    labels = pa.ListArray.from_arrays(tags.offsets, names, mask=tags.is_null())
    if pc.max(pc.list_value_length(labels)).as_py() == 1:
        labels = pc.list_element(labels, 0)  # one tag a line: single-label
    return pa.table({"text": pc.struct_field(parts, "text"), "label": labels})


def _load_hub(name: str) -> dict[str, pa.Table]:
    import datasets as hf
    import huggingface_hub.constants as hub

    # Without a network the libraries retry for ~25 s; probe once and then read only the local cache.
    reason = "HF_HUB_OFFLINE is set" if hub.HF_HUB_OFFLINE else None
    if reason is None and not hub_reachable(hub.ENDPOINT):
        reason = "the hub is unreachable (no network?)"
    try:
        with _offline(reason is not None):
            loaded = hf.load_dataset(name)
    except Exception as e:
        detail = f"{reason} and it is not in the local cache" if reason else one_line(e)
        raise DataError(f"cannot load Hugging Face dataset {name!r}: {detail}; pass a local file instead") from None
    return _tables(loaded)


@contextlib.contextmanager
def _offline(offline: bool):
    """Offline mode for one call; both libraries read it from module globals set at import time."""
    import datasets as hf
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE, hf.config.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = hf.config.HF_HUB_OFFLINE = offline or saved[0]
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE, hf.config.HF_HUB_OFFLINE = saved


def _tables(loaded) -> pa.Table | dict[str, pa.Table]:
    """datasets Dataset / DatasetDict -> Arrow table(s) with ClassLabel codes turned into names."""
    from datasets import ClassLabel

    if isinstance(loaded, dict):
        return {name: _tables(ds) for name, ds in loaded.items()}
    table = loaded.with_format("arrow")[:]
    for name, feature in loaded.features.items():
        if isinstance(feature, ClassLabel):
            table = table.set_column(
                table.schema.get_field_index(name), name, class_label_names(table[name], feature.names)
            )
    return table


# --- cleaning and splitting --------------------------------------------------------------------------


def _clean(table: pa.Table, config: DataConfig, source: str, prefix: str) -> tuple[pa.Table, int]:
    """-> (table with id, text, label; number of rows dropped for null or blank text or label)."""
    for key in ("text_column", "label_column", "id_column"):
        column = getattr(config, key)
        if column is not None and column not in table.column_names:
            raise DataError(
                f"{source} has no column {column!r} (available: {', '.join(table.column_names)}); "
                f"choose one with {_FLAGS[key]}"
            )
    text = _as_strings(table[config.text_column], config.text_column, source)
    label = _label_values(table[config.label_column], config, source)
    if config.id_column:
        ids = _as_strings(table[config.id_column], config.id_column, source)
        if ids.null_count:
            raise DataError(f"id column {config.id_column!r} of {source} has {ids.null_count} empty values")
    else:
        # The row's place in its source split: the same id on every rerun, whatever gets dropped.
        ids = pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(table.num_rows)), pa.string()), "-")
    has_label = pc.is_valid(label) if pa.types.is_list(label.type) else _present(label)
    keep = pc.and_(_present(text), has_label)
    kept = pa.table({"id": ids, "text": text, "label": label}).filter(keep)
    return kept, table.num_rows - kept.num_rows


def _present(values) -> pa.Array:
    return pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(values), ""), False)


def _label_values(values, config: DataConfig, source: str):
    """Label names as strings, or, for multi-label data, lists of names with blank ones left out."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if config.label_separator is not None and not pa.types.is_list(values.type):
        strings = _as_strings(values, config.label_column, source)
        values = pc.split_pattern(strings, config.label_separator)
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        return _as_strings(_integral_floats_as_ints(values), config.label_column, source)
    names = pc.utf8_trim_whitespace(_as_strings(pc.list_flatten(values), config.label_column, source))
    rows = pc.list_parent_indices(values)
    kept = pc.fill_null(pc.not_equal(names, ""), False)
    names, rows = names.filter(kept), rows.filter(kept)
    counts = np.bincount(rows.to_numpy(zero_copy_only=False), minlength=len(values))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, names, mask=values.is_null())


def _multi_label(table: pa.Table) -> bool:
    return pa.types.is_list(table.schema.field("label").type)


def _flat_labels(tables) -> pa.ChunkedArray:
    """Every label of every row: a multi-label split's lists are flattened."""
    return pa.chunked_array(
        [pc.list_flatten(t["label"]) if _multi_label(t) else t["label"] for t in tables], pa.string()
    )


def _as_strings(values, column: str, source: str):
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"column {column!r} of {source} holds {values.type}, not text or labels") from None


def _integral_floats_as_ints(values):
    """1.0 -> 1: CSV readers turn integer columns with gaps into floats, and labels should stay '1'."""
    if pa.types.is_floating(values.type) and pc.all(pc.equal(values, pc.floor(values))).as_py() is not False:
        return pc.cast(values, pa.int64())
    return values


def _labels(table: pa.Table) -> np.ndarray:
    """The label each row is stratified by: its label, or for multi-label its rarest one ("" for none),
    so rare labels are spread over the splits too."""
    if not _multi_label(table):
        return table["label"].to_numpy(zero_copy_only=False)
    counts = {d["values"]: d["counts"] for d in pc.value_counts(_flat_labels([table])).to_pylist()}
    return np.array([min(row, key=lambda n: (counts[n], n)) if row else "" for row in table["label"].to_pylist()])


def _own_splits(loaded: dict[str, pa.Table], source: str) -> dict[str, pa.Table]:
    """The source's own train, validation and test splits; others (e.g. unlabeled ones) are left out."""
    if len(loaded) == 1:
        return loaded
    if "train" not in loaded:
        raise DataError(f"{source} has splits {', '.join(loaded)} but no 'train' split")
    validation = next((n for n in VALIDATION_ALIASES if n in loaded), None)
    return {n: loaded[n] for n in ("train", validation, "test") if n in loaded}


def _keep_splits(tables: dict[str, pa.Table], config: DataConfig) -> dict[str, pa.Table]:
    """Train / validation / test as given; a missing validation or test is carved out of train."""
    validation = next((tables[n] for n in VALIDATION_ALIASES if n in tables), None)
    train, test = tables["train"], tables.get("test")
    p_train, p_val, p_test = config.split
    if validation is None or test is None:
        share = p_val if validation is None else p_test
        keep, carved = stratified_split(
            _labels(train), (p_train / (p_train + share), share / (p_train + share)), config.seed
        )
        train, carved = train.take(keep), train.take(carved)
        validation, test = (carved, test) if validation is None else (validation, carved)
    return {"train": train, "validation": validation, "test": test}


def _check_labels_and_ids(splits: dict[str, pa.Table], config: DataConfig, source: str) -> None:
    if splits["train"].num_rows == 0:
        raise DataError(f"{source} has no training rows with both text and a label")
    labels = _flat_labels(splits.values()).unique()
    if len(labels) < 2:
        raise DataError(
            f"{source} has {len(labels)} label value(s) in column {config.label_column!r}; "
            "a classifier needs at least 2"
        )
    if config.id_column:  # derived ids are unique by construction
        counts = pc.value_counts(pa.chunked_array([t["id"] for t in splits.values()]))
        dup = counts.filter(pc.greater(counts.field("counts"), 1))
        if len(dup):
            raise DataError(
                f"id column {config.id_column!r} of {source} has duplicate values "
                f"({len(dup)}, e.g. {dup[0]['values'].as_py()!r})"
            )


# --- writing -----------------------------------------------------------------------------------------


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")


def _write(out: Path, splits: dict[str, pa.Table], overwrite: bool) -> None:
    """Write into a hidden sibling folder, then rename it into place: OUT is never half-written."""
    label_type = pa.list_(pa.string()) if _multi_label(splits["train"]) else pa.string()
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", label_type)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, table in splits.items():
            (tmp / name).mkdir()
            pq.write_table(table.select(schema.names).cast(schema), tmp / name / "part-00000.parquet")
        _check_out(out, overwrite)  # again: another run may have written OUT meanwhile
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
