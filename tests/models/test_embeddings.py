import gzip

import pytest
import torch

from textclf.errors import DataError
from textclf.models.embeddings import load_vectors, vectors_dim

ITOS = ["<pad>", "<unk>", "the", "Good", "movie", "absent"]
VECTORS = {
    "the": [0.1, 0.2, 0.3],
    "good": [1.0, 2.0, 3.0],
    "Movie": [-1.0, -2.0, -3.0],
    "Good": [7.0, 8.0, 9.0],
    "other": [0.5, 0.5, 0.5],
}


def vector_text(header=False):
    lines = [f"{len(VECTORS)} 3"] if header else []
    lines += [f"{word} {' '.join(map(str, values))}" for word, values in VECTORS.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["glove", "word2vec", "gzip"])
def vector_file(request, tmp_path):
    if request.param == "gzip":
        path = tmp_path / "vectors.txt.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(vector_text())
    else:
        path = tmp_path / "vectors.txt"
        path.write_text(vector_text(header=request.param == "word2vec"), encoding="utf-8")
    return path


def test_loads_every_format(vector_file):
    matrix, coverage, dim = load_vectors(vector_file, ITOS)
    assert dim == 3 and vectors_dim(vector_file) == 3
    assert matrix.shape == (len(ITOS), 3) and matrix.dtype == torch.float32
    assert torch.equal(matrix[0], torch.zeros(3))
    assert matrix[2].tolist() == pytest.approx(VECTORS["the"])
    assert matrix[3].tolist() == VECTORS["Good"]  # exact spelling wins over "good"
    assert matrix[4].tolist() == VECTORS["Movie"]  # another casing when nothing closer exists
    assert coverage == pytest.approx(3 / 4)


def test_lowercase_form_preferred_to_other_casings(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("GOOD 1 1\ngood 2 2\n", encoding="utf-8")
    matrix, coverage, _ = load_vectors(path, ["<pad>", "<unk>", "Good"])
    assert matrix[2].tolist() == [2.0, 2.0] and coverage == 1.0


def test_missing_words_get_seeded_random_rows(vector_file):
    first, _, _ = load_vectors(vector_file, ITOS, seed=3)
    again, _, _ = load_vectors(vector_file, ITOS, seed=3)
    other, _, _ = load_vectors(vector_file, ITOS, seed=4)
    assert torch.equal(first, again)
    assert not torch.equal(first[5], other[5])
    assert first[1].abs().sum() > 0 and first[5].abs().sum() > 0


def test_glove_words_with_spaces(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 2\nat name@x.com 3 4\nmovie 5 6\n", encoding="utf-8")
    matrix, _, _ = load_vectors(path, ["<pad>", "<unk>", "movie", "at name@x.com"])
    assert matrix[2].tolist() == [5.0, 6.0] and matrix[3].tolist() == [3.0, 4.0]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="vector file not found"):
        load_vectors(tmp_path / "nope.txt", ITOS)
    with pytest.raises(DataError, match="vector file not found"):
        vectors_dim(tmp_path / "nope.txt")


@pytest.mark.parametrize("text", ["", "\n\n", "3 300\n"])
def test_no_vectors(tmp_path, text):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="no word vectors found"):
        load_vectors(path, ITOS)


@pytest.mark.parametrize(
    "text, line",
    [
        ("the 1 2 3\ngood 1 2\n", 2),
        ("2 3\nthe 1 2 3\nmovie 1 2 3 4\n", 3),
        ("the 1 2 3\nabsent 1 2 3\ngood 1\n", 3),
    ],
)
def test_inconsistent_dimensions_name_the_line(tmp_path, text, line):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=f"line {line}: .*inconsistent vector dimensions"):
        load_vectors(path, ITOS)


def test_non_numeric_value(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 x 3\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: a vector value is not a number"):
        load_vectors(path, ITOS)


def test_zero_overlap(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("zebra 1 2\nyak 3 4\n", encoding="utf-8")
    with pytest.raises(DataError, match="none of the 4 vocabulary words"):
        load_vectors(path, ITOS)


def test_broken_gzip(tmp_path):
    path = tmp_path / "v.txt.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read vector file"):
        load_vectors(path, ITOS)
