"""cluster/ configs: YAML lint, every job entrypoint parses with the job's own argument parser, the
security settings are there, and the upload excludes keep data, venv and secrets out."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest
import yaml

from textclf.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
JOB = re.compile(r"(?:^|\s)python3?\s+(\S*jobs/(train|label)\.py)((?:\s+\S+)*)")


def rayjobs() -> list[Path]:
    return [p for p in sorted(CLUSTER.glob("*.yaml")) if (yaml.safe_load(p.read_text()) or {}).get("kind") == "RayJob"]


def entrypoints(path: Path) -> list[str]:
    """`python jobs/X.py ...` commands: a RayJob's `spec.entrypoint`, or in Markdown every
    `ray job submit ... -- python jobs/X.py ...` line (backslash continuations joined)."""
    if path.suffix == ".yaml":
        doc = yaml.safe_load(path.read_text())
        return [doc["spec"]["entrypoint"]] if doc.get("kind") == "RayJob" else []
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [
        line.split(" -- ", 1)[1]
        for line in text.splitlines()
        if "ray job submit" in line and " -- " in line and "jobs/" in line
    ]


def parse_entrypoint(command: str) -> click.Context:
    """Parse like the job would: jobs/X.py calls `cli` with X prepended. Raises click errors."""
    match = JOB.search(command)
    if not match:
        raise click.UsageError(f"no `python jobs/train.py|label.py` in {command!r}")
    script, name = match.group(1), match.group(2)
    assert (ROOT / "jobs" / f"{name}.py").exists() and script.endswith(f"jobs/{name}.py")
    args = shlex.split(match.group(3))
    return cli.commands[name].make_context(f"jobs/{name}.py", args, resilient_parsing=False)


MANIFESTS = [*rayjobs(), CLUSTER / "README.md", ROOT / "README.md"]


def test_yaml_lint_passes():
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "cluster/"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_jobs_have_a_rayjob_and_readme_commands():
    jobs = {JOB.search(e).group(2) for p in MANIFESTS for e in entrypoints(p)}
    assert jobs == {"train", "label"}
    assert {p.name for p in rayjobs()} == {"rayjob-train.yaml", "rayjob-label.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_entrypoint_parses_with_the_jobs_parser(path):
    commands = entrypoints(path)
    assert commands, f"no job entrypoint found in {path.name}"
    for command in commands:
        ctx = parse_entrypoint(command)
        assert ctx.params  # parsed into the command's options


def test_a_bad_flag_or_value_fails_the_check(tmp_path):
    good = yaml.safe_load((CLUSTER / "rayjob-train.yaml").read_text())
    parse_entrypoint(good["spec"]["entrypoint"])
    for bad in (" --no-such-flag 1", " --workers two"):
        broken = dict(good, spec=dict(good["spec"], entrypoint=good["spec"]["entrypoint"] + bad))
        path = tmp_path / "rayjob-broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(click.UsageError):
            parse_entrypoint(entrypoints(path)[0])
    with pytest.raises(click.UsageError):  # label without its OUTPUT argument
        parse_entrypoint("python jobs/label.py /shared/models/rt s3://bucket/in/ --use-gpu")
    readme = tmp_path / "README.md"
    readme.write_text("```\nray job submit --working-dir . \\\n  -- python jobs/label.py m in out --gpus 2\n```\n")
    with pytest.raises(click.NoSuchOption):
        parse_entrypoint(entrypoints(readme)[0])


@pytest.mark.parametrize("path", rayjobs(), ids=lambda p: p.name)
def test_rayjobs_clean_up_authenticate_and_use_gpus(path):
    spec = yaml.safe_load(path.read_text())["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["rayVersion"] == "2.60.0"
    for group in cluster["workerGroupSpecs"]:
        for container in group["template"]["spec"]["containers"]:
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "--use-gpu" in spec["entrypoint"]
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"]


def test_cluster_launcher_keeps_the_dashboard_private_and_uses_tokens():
    config = yaml.safe_load((CLUSTER / "cluster-aws.yaml").read_text())
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    assert any("auth_token" in remote for remote in config["file_mounts"])
    assert any("torch==2.13.0" in c and "ray[default,data,train]==2.60.0" in c for c in config["setup_commands"])
    gpu_nodes = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert gpu_nodes and all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in gpu_nodes)


SECRET_OR_BULKY = [
    ".venv/bin/python",
    ".git/HEAD",
    "data/rt/train.parquet",
    "models/rt/model.safetensors",
    "models/rt.checkpoints/train/x",
    "labeled/out/_SUCCESS",
    ".env",
    "deploy.pem",
    ".cluster/pid",
    "textclf/__pycache__/x.pyc",
]
KEPT = ["jobs/train.py", "textclf/cli.py", "cluster/runtime_env.yaml", "pyproject.toml"]


def _package(tmp_path: Path, ignore_file: bool, excludes: list[str]) -> set[str]:
    """The zip Ray 2.60 builds for `--working-dir` (its own packaging code) of a fake project."""
    from ray._private.runtime_env.packaging import create_package

    project = tmp_path / "project"
    for name in SECRET_OR_BULKY + KEPT:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    if ignore_file:
        (project / ".rayignore").write_text((ROOT / ".rayignore").read_text())
    target = tmp_path / "pkg.zip"
    create_package(str(project), target, include_gitignore=True, excludes=excludes)
    with zipfile.ZipFile(target) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


@pytest.mark.parametrize("source", ["rayignore", "runtime_env excludes"])
def test_uploaded_working_dir_leaves_out_venv_git_data_and_secrets(tmp_path, source):
    excludes = [] if source == "rayignore" else yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())["excludes"]
    files = _package(tmp_path, ignore_file=source == "rayignore", excludes=excludes)
    assert set(KEPT) <= files
    assert not files & set(SECRET_OR_BULKY), files & set(SECRET_OR_BULKY)


def test_local_cluster_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(CLUSTER / "local.sh")]).returncode == 0
