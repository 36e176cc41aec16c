"""Connect to a Ray cluster, or start a local one that listens on loopback only."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator

from textclf.errors import UsageError
from textclf.runtime.compat import ray_data_stats_actor, reload_ray_config, set_ray_cluster_flag

# A local session serves one command on one machine: nothing scrapes its metrics and no node of it can be
# preempted, so the processes doing that only take CPU from the workers (steps ran ~10% slower on 2 cores).
# Ray's log monitor globs the log folder for new files every 0.1 s while it holds under 1,000 of them;
# with the threshold at 0 it looks every 0.5 s (a new worker's first lines wait that long at most).
# Ray Train's controller learns that training ended at its next poll of the workers, every 2 s by
# default: polling every 0.5 s ends a local run 1-3 s sooner for a remote call to each worker twice a second.
LOCAL_QUIET_ENV = {
    "RAY_enable_metrics_collection": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}


@contextlib.contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None, dashboard: bool = True, keep_idle_workers: bool = True
) -> Iterator[bool]:
    """`address` (or RAY_ADDRESS) joins an existing cluster; otherwise local Ray runs in-process
    for the duration of the block. A session someone else started is reused and left running.
    Yields True when the block started Ray itself (a local session that ends with it).

    Two options spare a local session processes it does not need. Every Ray Python process wakes
    100 times a second (its task loop checks for signals every 10 ms), and on a small machine each
    wakeup preempts a compute thread. dashboard=False drops the dashboard and its dozen processes;
    keep_idle_workers=False lets Ray end a worker process after a
    second idle instead of keeping one per free CPU: right for a long run of a few busy actors
    (training), wrong where tasks come and go (labeling would restart worker processes)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address.startswith(("http://", "https://")):
        # the job server's address (what `ray job submit` takes), not one a driver can join
        raise UsageError(
            f"Ray address {address} is a job-server URL; give the cluster's GCS address "
            "(e.g. 127.0.0.1:6380) with --address, or submit the command as a Ray job"
        )
    if ray.is_initialized():
        yield False
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry leaves the machine
    # textclf reports its own progress; Ray Data's per-dataset lines (and its warning, repeated in
    # every actor, that its bars are off) would drown it. Set RAY_DATA_LOG_LEVEL to see them.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=True)
    with contextlib.ExitStack() as local:
        if address is None:
            port = local.enter_context(_loopback_only({} if keep_idle_workers else {"RAY_num_workers_soft_limit": "0"}))
            kwargs.update(
                num_cpus=num_cpus,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                dashboard_port=port,
                _node_ip_address="127.0.0.1",
            )
        elif _is_loopback(address):  # a head on this machine (cluster/local.sh): join it as 127.0.0.1
            local.enter_context(_keep_loopback_ip())
        ray.init(address=address, **kwargs)
        _quiet_ray_data()
        try:
            yield address is None
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _loopback_only(extra_env: dict[str, str]) -> Iterator[int]:
    """Make a local Ray 2.60 bind only to 127.0.0.1; yields the dashboard port to use.

    ray.init rewrites _node_ip_address="127.0.0.1" to the machine's external IP unless
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; with that IP the GCS, raylet, object manager and core
    workers listen on *, the agents on 0.0.0.0 and the external IP. With 127.0.0.1 kept, every
    server binds loopback. Ray reads the flag at import, so the (possibly already imported)
    constant is set too. RAY_AUTH_MODE=token is Ray's local default, made explicit to drop its
    warning; RayConfig caches it at import, hence Config.initialize. RAY_API_SERVER_ADDRESS
    points state-API calls (Ray Train's PlacementGroupCleaner) at this dashboard even when
    other Ray instances run on the machine; LOCAL_QUIET_ENV turns off metrics and preemption
    watching and sets two poll intervals; `extra_env` adds Ray settings for this session. All but
    RAY_AUTH_MODE is restored on exit (values the user set are kept).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # ray.init would set it too, with a warning
    with _keep_loopback_ip({"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}", **LOCAL_QUIET_ENV, **extra_env}):
        reload_ray_config()
        yield port


def stop_data_stats_actor() -> None:
    """End the stats actor Ray Data leaves behind (detached, idle, waking 100 times a second); Ray Data
    starts it again if it runs later. Only for a local session: on a cluster other jobs use it. (Its
    autoscaling coordinator stays: Ray Train registers its workers' resources there.)"""
    import ray

    name, namespace = ray_data_stats_actor()
    try:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    except ValueError:  # never started
        pass


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host == "localhost" or host.startswith("127.")


@contextlib.contextmanager
def _keep_loopback_ip(extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """Keep 127.0.0.1 as this process's node IP (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, see above),
    for starting local Ray and for joining a head on this machine: without it a driver looks for the
    head at the machine's external IP and times out. Environment and flag are restored on exit."""
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(extra_env or {})}
    saved_env = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        os.environ.setdefault(k, v)
    saved_flag = set_ray_cluster_flag(os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"].lower() not in ("0", "false"))
    try:
        yield
    finally:
        if saved_flag is not None:
            set_ray_cluster_flag(saved_flag)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quiet_ray_data() -> None:
    """textclf reports its own progress; Ray Data's bars would interleave with it."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
