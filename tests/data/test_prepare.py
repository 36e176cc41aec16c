"""prepare(): loading local sources through `datasets`, cleaning, stratified splits, ids, atomic output."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textclf.data import prepare as tds
from textclf.data.prepare import DataConfig, class_label_names, parse_split, prepare, stratified_split
from textclf.errors import ConfigError, DataError
from textclf.hub import hub_reachable

LABELS = ("neg", "pos", "neu")


def rows(n=300, labels=LABELS):
    """n rows, labels 50% / 30% / 20% so stratification is visible."""
    weights = np.array([5, 3, 2][: len(labels)])
    label_of = np.repeat(np.arange(len(labels)), np.rint(n * weights / weights.sum()).astype(int))[:n]
    return [{"uid": 1000 + i, "text": f"review number {i}", "label": labels[label_of[i]]} for i in range(n)]


def write_csv(path, records, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(records)
    return path


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_splits(out):
    return {s: pq.read_table(out / s / "part-00000.parquet") for s in ("train", "validation", "test")}


def siblings(path):
    """What sits next to OUT: temporary folders must never be left behind."""
    return sorted(p.name for p in path.parent.iterdir())


# --- config ------------------------------------------------------------------------------------------


def test_config_defaults_and_split_coercion():
    config = DataConfig(split=[1, 0, 0])
    assert config.split == (1.0, 0.0, 0.0)
    assert DataConfig().split == (0.8, 0.1, 0.1)


@pytest.mark.parametrize(
    "split, fix",
    [
        ((0.5, 0.2, 0.2), "sum to 1"),
        ((0.9, -0.1, 0.2), "non-negative"),
        ((0.0, 0.5, 0.5), "train fraction"),
        ((0.8, 0.2), "non-negative fractions"),
        (("a", 0.5, 0.5), "three numbers"),
    ],
)
def test_config_rejects_bad_split(split, fix):
    with pytest.raises(ConfigError, match=fix):
        DataConfig(split=split)


def test_config_rejects_bad_columns_and_seed():
    with pytest.raises(ConfigError, match="text_column"):
        DataConfig(text_column="")
    with pytest.raises(ConfigError, match="seed"):
        DataConfig(seed=-1)


def test_parse_split():
    assert parse_split("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    for bad in ("0.5,0.5", "a,b,c"):
        with pytest.raises(ConfigError, match="--split"):
            parse_split(bad)


# --- splitting ---------------------------------------------------------------------------------------


def test_stratified_split_proportions_per_label():
    labels = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200, dtype=object)
    parts = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))  # a partition of the rows
    for label, total in (("a", 500), ("b", 300), ("c", 200)):
        assert [int((labels[p] == label).sum()) for p in parts] == [total * 8 // 10, total // 10, total // 10]


def test_stratified_split_is_seeded():
    labels = np.array(["a", "b"] * 50, dtype=object)
    first, again = stratified_split(labels, (0.8, 0.1, 0.1), 7), stratified_split(labels, (0.8, 0.1, 0.1), 7)
    other = stratified_split(labels, (0.8, 0.1, 0.1), 8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


# --- prepare on local files --------------------------------------------------------------------------


def test_prepare_csv_writes_stratified_splits(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", rows())
    summary = prepare(str(src), tmp_path / "out", DataConfig())
    assert summary["rows"] == {"train": 240, "validation": 30, "test": 30}
    assert summary["labels"] == {"neg": 150, "neu": 60, "pos": 90}
    assert summary["kind"] == "local" and summary["dropped"] == 0
    splits = read_splits(tmp_path / "out")
    for name, table in splits.items():
        assert table.schema == pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.string())])
        counts = dict(zip(*np.unique(table["label"].to_numpy(zero_copy_only=False), return_counts=True)))
        share = 0.8 if name == "train" else 0.1
        assert counts == {"neg": 150 * share, "neu": 60 * share, "pos": 90 * share}
    ids = pa.chunked_array([t["id"] for t in splits.values()]).to_pylist()
    assert len(set(ids)) == 300
    assert siblings(tmp_path / "out") == ["out", "reviews.csv"]


def test_rerun_gives_same_splits_and_ids(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", rows())
    prepare(str(src), tmp_path / "a", DataConfig(seed=3))
    prepare(str(src), tmp_path / "b", DataConfig(seed=3))
    prepare(str(src), tmp_path / "c", DataConfig(seed=4))
    a, b, c = read_splits(tmp_path / "a"), read_splits(tmp_path / "b"), read_splits(tmp_path / "c")
    assert all(a[s].equals(b[s]) for s in a)
    assert not a["train"].equals(c["train"])
    # Ids follow the source row, whatever split the row lands in.
    id_to_text = lambda splits: {r["id"]: r["text"] for t in splits.values() for r in t.to_pylist()}  # noqa: E731
    assert id_to_text(a) == id_to_text(c)


def test_id_column_is_used_as_string(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", rows(30))
    summary = prepare(str(src), tmp_path / "out", DataConfig(id_column="uid"))
    ids = {r["id"]: r["text"] for t in read_splits(tmp_path / "out").values() for r in t.to_pylist()}
    assert ids["1007"] == "review number 7" and len(ids) == 30
    assert summary["ids"] == "column 'uid'"


def test_duplicate_ids_are_refused(tmp_path):
    records = rows(30)
    records[5]["uid"] = records[9]["uid"]
    src = write_csv(tmp_path / "reviews.csv", records)
    with pytest.raises(DataError, match=r"id column 'uid' .* duplicate values \(1, e\.g\. '1009'\)"):
        prepare(str(src), tmp_path / "out", DataConfig(id_column="uid"))
    assert siblings(tmp_path / "out") == ["reviews.csv"]


def test_null_and_blank_rows_are_dropped_and_counted(tmp_path):
    records = rows(40)
    records[0]["text"] = ""
    records[1]["text"] = "   "
    records[2]["label"] = ""
    write_csv(tmp_path / "reviews.csv", records)
    summary = prepare(str(tmp_path / "reviews.csv"), tmp_path / "out", DataConfig())
    assert summary["dropped"] == 3 and sum(summary["rows"].values()) == 37


def test_integer_labels_with_gaps_stay_integers(tmp_path):
    # A CSV integer column with an empty cell is read as float; labels must still be "0" / "1".
    records = [{"text": f"t{i}", "label": "" if i == 0 else i % 2} for i in range(20)]
    summary = prepare(str(write_csv(tmp_path / "d.csv", records)), tmp_path / "out", DataConfig())
    assert summary["labels"] == {"0": 9, "1": 10} and summary["dropped"] == 1


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "json", "parquet", "txt", "folder", "glob"])
def test_other_formats(tmp_path, fmt):
    records = rows(100)
    data = tmp_path / "data"
    data.mkdir()
    if fmt == "tsv":
        source = write_csv(data / "d.tsv", records, delimiter="\t")
    elif fmt == "jsonl":
        source = write_jsonl(data / "d.jsonl", records)
    elif fmt == "json":
        source = data / "d.json"
        source.write_text(json.dumps(records))
    elif fmt == "parquet":
        source = data / "d.parquet"
        pq.write_table(pa.Table.from_pylist(records), source)
    elif fmt == "txt":  # fastText lines
        source = data / "d.txt"
        source.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in records))
    else:
        write_jsonl(data / "a.jsonl", records[:60])
        write_jsonl(data / "b.jsonl", records[60:])
        source = data if fmt == "folder" else data / "*.jsonl"
    summary = prepare(str(source), tmp_path / "out", DataConfig())
    assert summary["rows"] == {"train": 80, "validation": 10, "test": 10}
    assert summary["labels"] == {"neg": 50, "neu": 20, "pos": 30}


# --- ClassLabel and sources with their own splits ----------------------------------------------------


def test_class_label_names():
    codes = pa.chunked_array([[0, 1, -1], [2, 1]])
    assert class_label_names(codes, ["neg", "pos"]).to_pylist() == ["neg", "pos", None, None, "pos"]


def test_classlabel_parquet_gives_label_names(tmp_path):
    hf = pytest.importorskip("datasets")
    features = hf.Features({"text": hf.Value("string"), "label": hf.ClassLabel(names=["neg", "pos"])})
    ds = hf.Dataset.from_dict(
        {"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]}, features=features
    )
    ds.to_parquet(str(tmp_path / "d.parquet"))  # keeps the ClassLabel feature in the schema metadata
    summary = prepare(str(tmp_path / "d.parquet"), tmp_path / "out", DataConfig())
    assert summary["labels"] == {"neg": 10, "pos": 10}


def _saved_dataset_dict(tmp_path, splits):
    hf = pytest.importorskip("datasets")
    features = hf.Features({"text": hf.Value("string"), "label": hf.ClassLabel(names=["neg", "pos"])})
    dd = hf.DatasetDict(
        {
            name: hf.Dataset.from_dict(
                {"text": [f"{name} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=features
            )
            for name, n in splits.items()
        }
    )
    dd.save_to_disk(str(tmp_path / "saved"))
    return str(tmp_path / "saved")


def test_own_splits_are_kept_and_validation_carved_from_train(tmp_path):
    source = _saved_dataset_dict(tmp_path, {"train": 90, "test": 40})
    summary = prepare(source, tmp_path / "out", DataConfig())
    assert summary["rows"] == {"train": 80, "validation": 10, "test": 40}  # 1/9 of train, as 0.1 / (0.8 + 0.1)
    splits = read_splits(tmp_path / "out")
    assert sorted(splits["test"]["id"].to_pylist()) == sorted(f"test-{i}" for i in range(40))
    assert set(splits["validation"]["label"].to_pylist()) == {"neg", "pos"}
    assert all(i.startswith("train-") for i in splits["validation"]["id"].to_pylist())


def test_a_single_own_split_is_split_three_ways(tmp_path):
    source = _saved_dataset_dict(tmp_path, {"train": 100})
    assert prepare(source, tmp_path / "out", DataConfig())["rows"] == {"train": 80, "validation": 10, "test": 10}
    assert read_splits(tmp_path / "out")["test"]["id"][0].as_py().startswith("train-")


def test_other_own_splits_are_left_out(tmp_path):
    source = _saved_dataset_dict(tmp_path, {"train": 90, "test": 40, "unsupervised": 30})
    summary = prepare(source, tmp_path / "out", DataConfig())
    assert summary["rows"] == {"train": 80, "validation": 10, "test": 40} and summary["dropped"] == 0


def test_all_three_own_splits_are_kept(tmp_path):
    source = _saved_dataset_dict(tmp_path, {"train": 20, "validation": 6, "test": 8})
    assert prepare(source, tmp_path / "out", DataConfig())["rows"] == {"train": 20, "validation": 6, "test": 8}


# --- errors ------------------------------------------------------------------------------------------


def test_missing_column_names_it_and_lists_available(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", rows(20))
    with pytest.raises(DataError, match=r"no column 'body' \(available: uid, text, label\); .*--text-column"):
        prepare(str(src), tmp_path / "out", DataConfig(text_column="body"))
    assert siblings(tmp_path / "out") == ["reviews.csv"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("text,label\n", "has no rows"),
        ("text,label\n,pos\n ,neg\n", "no rows with both text and a label"),
        ("text,label\na,pos\nb,pos\n", "1 label value"),
    ],
)
def test_empty_or_single_label_sources(tmp_path, content, message):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        prepare(str(tmp_path / "d.csv"), tmp_path / "out", DataConfig())
    assert siblings(tmp_path / "out") == ["d.csv"]


def test_unreadable_and_missing_paths(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read"):
        prepare(str(tmp_path / "bad.parquet"), tmp_path / "out", DataConfig())
    with pytest.raises(DataError, match="path does not exist"):
        prepare(str(tmp_path / "missing.csv"), tmp_path / "out", DataConfig())
    with pytest.raises(DataError, match="no files match"):
        prepare(str(tmp_path / "*.jsonl"), tmp_path / "out", DataConfig())
    assert siblings(tmp_path / "out") == ["bad.parquet"]


def test_mixed_formats_are_refused(tmp_path):
    write_csv(tmp_path / "a.csv", rows(10))
    write_jsonl(tmp_path / "b.jsonl", rows(10))
    with pytest.raises(DataError, match="mixes file formats"):
        prepare(str(tmp_path), tmp_path / "out", DataConfig())


def test_existing_output_needs_overwrite(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", rows(30))
    (tmp_path / "out").mkdir()
    prepare(str(src), tmp_path / "out", DataConfig())  # an empty folder is fine
    (tmp_path / "out" / "stale.txt").write_text("old")
    with pytest.raises(DataError, match="not empty; pass --overwrite"):
        prepare(str(src), tmp_path / "out", DataConfig())
    prepare(str(src), tmp_path / "out", DataConfig(), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test", "train", "validation"]
    assert siblings(tmp_path / "out") == ["out", "reviews.csv"]


def test_unreachable_hub_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tds, "hub_reachable", lambda endpoint: False)  # the same on machines with a network
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        prepare("imdb", tmp_path / "out", DataConfig())
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot load Hugging Face dataset 'imdb': the hub is unreachable")
    assert not (tmp_path / "out").exists()


def test_reachable_probe(tmp_path):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
        closed = server.getsockname()[1]
    assert not hub_reachable(f"http://127.0.0.1:{closed}")


# --- multi-label -------------------------------------------------------------------------------------


def _prepared(source, tmp_path, **options):
    summary = prepare(str(source), tmp_path / "out", DataConfig(**options))
    rows = pa.concat_tables(pq.read_table(tmp_path / "out" / s) for s in ("train", "validation", "test"))
    return summary, dict(zip(rows["id"].to_pylist(), rows["label"].to_pylist()))


def test_fasttext_lines_with_several_tags_become_multi_label(tmp_path):
    source = tmp_path / "tags.txt"
    source.write_text("".join(f"__label__x __label__y two tags {i}\n__label__z one tag {i}\n" for i in range(30)))
    summary, labels = _prepared(source, tmp_path)
    assert summary["multi_label"] and summary["labels"] == {"x": 30, "y": 30, "z": 30}
    assert labels["row-0"] == ["x", "y"] and labels["row-1"] == ["z"]


def test_a_label_separator_splits_labels_and_an_empty_value_is_no_label(tmp_path):
    source = tmp_path / "tags.csv"
    source.write_text("text,tags\n" + "".join(f"doc {i},{'a| b' if i % 3 else ' '}\n" for i in range(60)))
    summary, labels = _prepared(source, tmp_path, label_column="tags", label_separator="|")
    assert summary["multi_label"] and summary["dropped"] == 0
    assert labels["row-1"] == ["a", "b"] and labels["row-0"] == []


def test_a_list_valued_label_column_is_multi_label_and_the_split_spreads_a_rare_label(tmp_path):
    source = tmp_path / "rows.jsonl"
    rows = [{"text": f"text {i}", "label": ["common"] + (["rare"] if i % 10 == 0 else [])} for i in range(100)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary, _ = _prepared(source, tmp_path)
    assert summary["multi_label"] and summary["labels"] == {"common": 100, "rare": 10}
    split_labels = {s: pq.read_table(tmp_path / "out" / s)["label"].to_pylist() for s in summary["rows"]}
    rare = {s: sum("rare" in r for r in labels) for s, labels in split_labels.items()}
    assert rare == {"train": 8, "validation": 1, "test": 1}
