"""Which Ray a command joins (address checks that need no cluster), and what a local session stops."""

import json
import os
import subprocess
import sys

import pytest

from textclf.errors import UsageError
from textclf.runtime.ray_session import ray_session


def test_a_job_server_url_is_refused_with_the_address_to_use(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(UsageError, match="job-server URL.*GCS address"):
        with ray_session():
            pass


@pytest.mark.ray
def test_the_stats_actor_ray_data_leaves_behind_can_be_stopped_and_comes_back(ray_local):
    from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE

    from textclf.runtime.ray_session import stop_data_stats_actor

    assert ray_local.data.range(10).sum("id") == 45
    ray_local.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)  # Ray Data started it
    stop_data_stats_actor()
    with pytest.raises(ValueError):
        ray_local.get_actor(STATS_ACTOR_NAME, namespace=STATS_ACTOR_NAMESPACE)
    stop_data_stats_actor()  # none running: nothing to do
    assert ray_local.data.range(10).sum("id") == 45  # Ray Data starts it again


@pytest.mark.ray
def test_a_local_session_without_dashboard_starts_neither_dashboard_nor_autoscaler_monitor():
    script = """
import json, ray
from ray._private.node import Node
from textclf.runtime.ray_session import ray_session
with ray_session(num_cpus=1, dashboard=False):
    started = sorted(ray._private.worker._global_node.all_processes)
    total = ray.get(ray.remote(lambda n: sum(range(n))).remote(10))
print(json.dumps([started, total, Node.start_api_server.__name__, Node.start_monitor.__name__]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # not the session's Ray
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    started, total, *patched = json.loads(result.stdout.splitlines()[-1])
    assert {"gcs_server", "raylet"} <= set(started) and not {"dashboard", "monitor"} & set(started), started
    assert total == 45  # tasks run without them
    assert patched == ["start_api_server", "start_monitor"]  # Ray's own methods again after ray.init
