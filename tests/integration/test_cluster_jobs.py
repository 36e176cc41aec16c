"""End to end on a real local Ray head (cluster/local.sh: loopback only, token auth, free ports):
`ray job submit` of jobs/train.py then jobs/label.py, as cluster/README.md shows, then `down`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group(pgid: int) -> list[int]:
    """pids in process group `pgid` (the head's `ray start --block` leads its own group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


@pytest.fixture
def local_head():
    state = Path(tempfile.mkdtemp(prefix="tc-e2e-", dir="/tmp"))
    token = state / "token"
    token.write_text(uuid.uuid4().hex)  # this head's own token, not the user's ~/.ray/auth_token
    ports = {
        name: str(_free_port()) for name in ("RAY_PORT", "DASHBOARD_PORT", "RAY_CLIENT_PORT", "DASHBOARD_AGENT_PORT")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(ports, TEXTCLF_CLUSTER_DIR=str(state), RAY_AUTH_TOKEN_PATH=str(token))
    started = time.monotonic()
    up = subprocess.run(["cluster/local.sh", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    pid = int((state / "pid").read_text()) if (state / "pid").exists() else None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        address = f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
        assert f"export RAY_AUTH_MODE=token RAY_ADDRESS={address}" in up.stdout
        env.update(RAY_AUTH_MODE="token", RAY_ADDRESS=address)
        yield env, pid, time.monotonic() - started
    finally:
        down = subprocess.run(
            ["cluster/local.sh", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        left = _group(pid) if pid else []
        subprocess.run(["rm", "-rf", str(state)])
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"head processes still running: {left}"


def _listeners(pids: list[int]) -> set[str]:
    import psutil

    addresses = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        addresses |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return addresses


def _submit(env: dict, *entrypoint: str) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [
            RAY,
            "job",
            "submit",
            "--runtime-env",
            "cluster/runtime_env.yaml",
            "--working-dir",
            str(ROOT),
            "--",
            "python",
            *entrypoint,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0 and re.search(r"Job '\w+' succeeded", log), log[-6000:]
    return log, time.monotonic() - started


@pytest.mark.slow
def test_submit_train_then_label_to_a_local_head(local_head, tiny_corpus, small_bow_config, tmp_path):
    from textclf.inference.predictor import Predictor

    env, pid, up_s = local_head
    listening = _listeners(_group(pid))
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    wrong = subprocess.run(
        [RAY, "job", "list"],
        env={**env, "RAY_AUTH_TOKEN": "not-the-token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode != 0  # the job server refuses a request without the right token

    bundle = tmp_path / "models" / "rt-job"  # absolute: the job runs in an uploaded copy of the repo
    log, train_s = _submit(
        env,
        "jobs/train.py",
        "--train",
        str(tiny_corpus / "train"),
        "--validation",
        str(tiny_corpus / "validation"),
        "--out",
        str(bundle),
        "--workers",
        "2",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--config",
        str(small_bow_config),
    )
    assert '{"event": "epoch"' in log  # one-line JSON progress in the job log
    assert (bundle / "model.safetensors").exists() and (bundle / "model.json").exists()
    assert (tmp_path / "models" / "rt-job.checkpoints" / "train").is_dir()

    labeled = tmp_path / "labeled" / "rt-job"
    log, label_s = _submit(
        env, "jobs/label.py", str(bundle), str(tiny_corpus / "test"), str(labeled), "--probabilities"
    )
    assert (labeled / "_SUCCESS").exists()
    out = pq.read_table(labeled)
    source = pq.read_table(tiny_corpus / "test")
    assert sorted(out.column("id").to_pylist()) == sorted(source.column("id").to_pylist())  # each id once

    # the same as the local command path: the bundle's own predictions, row by row
    predictor = Predictor(str(bundle))
    by_id = dict(zip(out.column("id").to_pylist(), out.column("label").to_pylist()))
    expected = [predictor.labels[i] for i in predictor.predict_proba(source.column("text").to_pylist()).argmax(1)]
    assert [by_id[i] for i in source.column("id").to_pylist()] == expected
    accuracy = sum(e == t for e, t in zip(expected, source.column("label").to_pylist())) / source.num_rows
    assert accuracy > 0.8  # a model that learned the cue words, so the comparison means something
    print(
        f"\nlocal head up {up_s:.1f} s; train job {train_s:.1f} s; label job {label_s:.1f} s; "
        f"test accuracy {accuracy:.3f}"
    )
