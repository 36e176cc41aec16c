"""CLI contracts: output formats and exit code 2 with one line for bad input (no Ray needed)."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from conftest import make_label_bundle

from textclf.bundle import save_bundle
from textclf.cli import cli
from textclf.models import create_model
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "film"])
    model = create_model("bow", vocab_size=len(vocab), num_classes=2).eval()
    return save_bundle(tmp_path_factory.mktemp("b") / "m", model, "bow", vocab, ["neg", "pos"], TokenizerConfig(), 32)


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_every_command_has_help_with_an_example():
    result = run("--help")
    for command in ("prepare", "train", "evaluate", "predict"):
        assert command in result.output
        assert "Example" in run(command, "--help").output


def test_train_help_shows_the_configuration_defaults():
    from textclf.training.config import TrainConfig

    text = " ".join(run("train", "--help").output.split())
    assert "Architecture: bilstm, bow, cnn, mlp, transformer. (default bow)" in text
    assert "(default 20; transformer: 4)" in text.split("--epochs", 1)[1].split(" --", 1)[0]
    defaults = TrainConfig()
    for flag, value in (
        ("--epochs", defaults.epochs),
        ("--arch", defaults.arch),
        ("--min-epochs", defaults.min_epochs),
        ("--batch-tokens", defaults.batch_tokens),
    ):
        assert f"(default {value}" in text.split(flag, 1)[1].split(" --", 1)[0], flag
    assert "(default 3; sgd: 0," in text.split("--patience", 1)[1].split(" --", 1)[0]


def test_predict_prints_label_tab_confidence_tab_text(bundle_dir):
    result = run("predict", bundle_dir, "a good film", "bad")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 2
    label, confidence, text = lines[0].split("\t")
    assert label in ("neg", "pos") and 0.5 <= float(confidence) <= 1 and text == "a good film"


def test_predict_reads_stdin_and_prints_json(bundle_dir):
    result = run("predict", bundle_dir, "--json", input="good film\nbad film\n")
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["text"] for r in records] == ["good film", "bad film"]
    assert all(set(r["probs"]) == {"neg", "pos"} and r["label"] in r["probs"] for r in records)


def test_predict_top_k_and_threshold_print_the_chosen_labels_most_probable_first(tmp_path):
    bundle_dir = make_label_bundle(tmp_path / "m", seed=0)  # random weights: no tie between the labels
    result = run("predict", bundle_dir, "--top-k", "2", "good film")
    assert result.exit_code == 0, result.output
    names, confidences, text = result.output.rstrip("\n").split("\t")
    scores = [float(c) for c in confidences.split(",")]
    assert sorted(names.split(",")) == ["neg", "pos"] and scores == sorted(scores, reverse=True) and text == "good film"
    record = json.loads(run("predict", bundle_dir, "--json", "--top-k", "2", "--threshold", "0.5", "good film").output)
    expected = sorted(((p, n) for n, p in record["probs"].items() if p >= 0.5), reverse=True)
    assert record["probs"]["neg"] != record["probs"]["pos"]
    assert record["labels"] == [n for _, n in expected] and record["confidences"] == [p for p, _ in expected]
    assert record["labels"][0] == record["label"]
    assert run("predict", bundle_dir, "--threshold", "1", "good film").output == "\t\tgood film\n"  # none passes
    assert_one_line_error(run("predict", bundle_dir, "--top-k", "0", "x"), "--top-k")


def test_console_script_flushes_its_output_and_keeps_exit_codes(bundle_dir, tmp_path):
    """The console script: piped output arrives whole and the exit codes are those of the command."""

    def console(*args):
        return subprocess.run([sys.executable, "-m", "textclf.cli", *map(str, args)], capture_output=True, text=True)

    texts = [f"good film number {i}" for i in range(500)]  # more than one pipe buffer of output
    done = console("predict", bundle_dir, "--json", *texts)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["text"] for line in done.stdout.splitlines()] == texts
    bad = console("evaluate", tmp_path, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("Error:") and len(bad.stderr.strip().splitlines()) == 1
    assert console("predict").returncode == 2  # click's usage error


def test_predict_gives_an_empty_text_no_label_as_label_does(bundle_dir):
    result = run("predict", bundle_dir, "good film", "", "   ")
    assert result.exit_code == 0, result.output
    lines = result.output.split("\n")[:3]
    assert lines[0].split("\t")[0] in ("neg", "pos") and lines[1:] == ["\t\t", "\t\t   "]
    as_json = [json.loads(line) for line in run("predict", bundle_dir, "--json", "", "good").output.splitlines()]
    assert as_json[0] == {"text": "", "label": None, "confidence": None, "error": "empty text"}
    assert as_json[1]["label"] in ("neg", "pos")


def test_evaluate_json_has_the_contract_keys(bundle_dir, tiny_corpus):
    # the tiny bundle knows labels neg/pos like the corpus
    result = run("evaluate", bundle_dir, tiny_corpus / "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert {"accuracy", "macro_f1", "per_class", "confusion"} <= set(metrics)
    assert sum(map(sum, metrics["confusion"])) == 200


def test_a_folder_that_is_not_a_bundle(tmp_path, tiny_corpus):
    assert_one_line_error(run("predict", tmp_path, "text"), "not a model bundle")
    assert_one_line_error(run("evaluate", tmp_path, tiny_corpus / "test"), "not a model bundle")


def test_train_rejects_unknown_arch_before_starting_ray(tiny_corpus, tmp_path):
    assert_one_line_error(
        run("train", "--train", tiny_corpus / "train", "--out", tmp_path / "m", "--arch", "gpt"),
        "unknown architecture 'gpt'",
    )


def test_train_rejects_missing_columns_and_paths(tiny_corpus, tmp_path):
    assert_one_line_error(
        run("train", "--train", tiny_corpus / "train", "--out", tmp_path / "m", "--text-column", "body"),
        "no column 'body'",
    )
    assert_one_line_error(run("train", "--train", tmp_path / "nothing", "--out", tmp_path / "m"), "does not exist")
    assert not (tmp_path / "m").exists()


def test_train_rejects_bad_yaml_config(tiny_corpus, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 3\nlearning_rate: 0.1\n")
    assert_one_line_error(
        run("train", "--train", tiny_corpus / "train", "--out", tmp_path / "m", "--config", config), "learning_rate"
    )
    config.write_text("epochs: -1\n")
    assert_one_line_error(
        run("train", "--train", tiny_corpus / "train", "--out", tmp_path / "m", "--config", config), "epochs"
    )


def test_evaluate_rejects_labels_the_model_does_not_know(bundle_dir, tmp_path):
    from conftest import synthetic_rows, write_split

    write_split(tmp_path / "d", synthetic_rows(20, classes=3))
    assert_one_line_error(run("evaluate", bundle_dir, tmp_path / "d"), "does not know")


def test_train_rejects_an_empty_parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "empty").mkdir()
    pq.write_table(
        pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}),
        tmp_path / "empty" / "part-0.parquet",
    )
    assert_one_line_error(run("train", "--train", tmp_path / "empty", "--out", tmp_path / "m"), "has no rows")
    (tmp_path / "garbage.parquet").write_text("not parquet at all")
    assert_one_line_error(run("train", "--train", tmp_path / "garbage.parquet", "--out", tmp_path / "m"), "cannot read")
