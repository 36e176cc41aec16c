"""Which Ray a command joins (address checks that need no cluster), and what a local session stops."""

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


def test_no_textclf_module_reaches_into_private_apis_outside_compat():
    import re
    from pathlib import Path

    import textclf

    private = re.compile(r"ray\._private|ray\._raylet|\._internal\b|DistributedDataParallel\._|_TorchBackend")
    root = Path(textclf.__file__).parent
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py") if p.name != "compat.py" and private.search(p.read_text())
    ]
    assert offenders == []
