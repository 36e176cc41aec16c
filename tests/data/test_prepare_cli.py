"""`textclf prepare`: summary on success; exit code 2 and one `Error:` line, and no OUT, on bad input."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from textclf.cli import cli
from textclf.data import prepare as tds


def run(*args):
    return CliRunner().invoke(cli, ["prepare", *map(str, args)])


@pytest.fixture
def reviews(tmp_path):
    lines = ["text,label"] + [f"review {i},{'pos' if i % 2 else 'neg'}" for i in range(50)] + [",pos"]
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["prepare", "--help"])
    assert result.exit_code == 0
    assert "textclf prepare rotten-tomatoes" in result.output


def test_prepare_prints_summary(reviews, tmp_path):
    result = run(reviews, tmp_path / "out", "--split", "0.6,0.2,0.2", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'out'}: train 30, validation 10, test 10 rows" in result.output
    assert "labels: neg 25, pos 25" in result.output
    assert "dropped 1 rows" in result.output
    assert (tmp_path / "out" / "validation" / "part-00000.parquet").exists()


def test_missing_column(reviews, tmp_path):
    result = run(reviews, tmp_path / "out", "--label-column", "stars")
    assert_one_line_error(result, "no column 'stars'", "available: text, label")
    assert not (tmp_path / "out").exists()


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert_one_line_error(run(tmp_path / "empty.csv", tmp_path / "out"), "is empty")
    assert not (tmp_path / "out").exists()


def test_nonexistent_path(tmp_path):
    assert_one_line_error(run(tmp_path / "nope.jsonl", tmp_path / "out"), "path does not exist")
    assert not (tmp_path / "out").exists()


def test_hub_name_without_network_is_quick(tmp_path, monkeypatch):
    monkeypatch.setattr(tds, "hub_reachable", lambda endpoint: False)
    start = time.monotonic()
    result = run("imdb", tmp_path / "out")
    assert time.monotonic() - start < 10
    assert_one_line_error(result, "cannot load Hugging Face dataset 'imdb'", "pass a local file instead")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(reviews, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert_one_line_error(run(reviews, tmp_path / "out"), "--overwrite")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    assert run(reviews, tmp_path / "out", "--overwrite").exit_code == 0
    assert not (tmp_path / "out" / "keep.txt").exists()


def test_bad_split(reviews, tmp_path):
    assert_one_line_error(run(reviews, tmp_path / "out", "--split", "0.5,0.3,0.3"), "sum to 1")
    assert not (tmp_path / "out").exists()
