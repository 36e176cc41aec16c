"""Connect to a Ray cluster, or start a local one that listens on loopback only."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """`address` (or RAY_ADDRESS) joins an existing cluster; otherwise local Ray runs in-process
    for the duration of the block. A session someone else started is reused and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry leaves the machine
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=True)
    if address is None:
        # The dashboard stays on because Ray Train's state queries need it; it binds to loopback.
        kwargs.update(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                      _node_ip_address="127.0.0.1")
    ray.init(address=address, **kwargs)
    _quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """textclf reports its own progress; Ray Data's bars would interleave with it."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
