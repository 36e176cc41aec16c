"""Which Ray a command joins: the address checks that need no cluster."""

import pytest

from textclf.errors import UsageError
from textclf.raysession import ray_session


def test_a_job_server_url_is_refused_with_the_address_to_use(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(UsageError, match="job-server URL.*GCS address"):
        with ray_session():
            pass
