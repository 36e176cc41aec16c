"""The Ray job entrypoints accept the same options as the CLI commands they wrap."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_job_parses_the_train_options():
    result = subprocess.run([sys.executable, "jobs/train.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--train", "--out", "--workers", "--use-gpu", "--address", "--storage", "--resume"):
        assert option in result.stdout


def test_train_job_reports_bad_input_with_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "jobs/train.py", "--train", str(tmp_path / "none"), "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_label_job_parses_the_label_options():
    result = subprocess.run([sys.executable, "jobs/label.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--format", "--concurrency", "--use-gpu", "--overwrite", "--address", "--probabilities"):
        assert option in result.stdout
