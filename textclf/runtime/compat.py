"""Every use of Ray's and torch's private internals (and of torch's deprecated int8 quantization), in
one place, each with a public fallback.

textclf pins Ray 2.60 and torch 2.13. Where a later release moves one of these, the fallback keeps
textclf working as it would through public APIs alone; only what the internal bought is lost (noted
at each). Nothing else in textclf imports `ray._private`, `ray._raylet`, `*._internal` or a private
torch method.
"""

from __future__ import annotations

import logging
import warnings


def set_ray_cluster_flag(value: bool) -> bool | None:
    """Set Ray's ENABLE_RAY_CLUSTER constant (read from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when Ray is
    imported, so an environment change after import needs this too); returns the previous value.
    Fallback: None, and only processes Ray starts later see the environment variable."""
    try:
        from ray._private import ray_constants
    except ImportError:
        return None
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = value
    return previous


def reload_ray_config() -> None:
    """Make Ray's config cache re-read the environment (it caches RAY_AUTH_MODE at import).
    Fallback: nothing; ray.init then warns that it sets token auth itself."""
    try:
        from ray._raylet import Config
    except ImportError:
        return
    Config.initialize("")


def ray_data_stats_actor() -> tuple[str, str]:
    """(name, namespace) of the stats actor Ray Data starts; the fallback is 2.60's own."""
    try:
        from ray.data._internal.stats import STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE
    except ImportError:
        return "datasets_stats_actor", "_dataset_stats_actor"
    return STATS_ACTOR_NAME, STATS_ACTOR_NAMESPACE


def checkpoint_snapshot_filename() -> str:
    """The file in which Ray Train records its reported checkpoints (2.60's name as the fallback)."""
    try:
        from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME
    except ImportError:
        return "checkpoint_manager_snapshot.json"
    return CHECKPOINT_MANAGER_SNAPSHOT_FILENAME


def quiet_ray_train_report_log() -> None:
    """Ray Train logs every report at INFO on each worker, through a logger named after its file rather
    than under `ray.train`. Fallback: the reports stay in the worker logs."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def unused_trainer_callbacks(local_session: bool) -> tuple[type, ...]:
    """Ray Train's default callbacks textclf leaves out: the dataset manager (textclf's workers read
    their blocks themselves) and, for a local session, the placement-group cleaner (ray.shutdown removes
    the groups). Fallback: none left out, one idle helper process more each."""
    try:
        from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
        from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    except ImportError:
        return ()
    return (DatasetsCallback, PlacementGroupCleanerCallback) if local_session else (DatasetsCallback,)


def controller_callback():
    """The base class of a callback that runs in Ray Train's controller; None where it moved, and
    textclf.training.backend uses Ray's public TorchConfig, whose backend imports torch in the controller
    (seconds of its start) and starts a process group for one worker too. (A function: importing
    ray.train here would import Ray in every command that merely loads this module.)"""
    try:
        from ray.train.v2._internal.execution.callback import ControllerCallback
    except ImportError:
        return None
    return ControllerCallback


# The pieces of Ray's torch backend that textclf.training.backend runs: imported where they run, since
# `ray.train.torch.config` imports torch, which Ray Train's controller should not.
def torch_training_framework():
    from ray.train.v2._internal.util import TrainingFramework

    return TrainingFramework.TORCH


def ray_torch_backend():
    from ray.train.torch.config import _TorchBackend

    return _TorchBackend()


def set_torch_distributed_env_vars() -> None:
    from ray.train.torch.config import _set_torch_distributed_env_vars

    _set_torch_distributed_env_vars()


def shutdown_torch() -> None:
    from ray.train.torch.config import _shutdown_torch

    _shutdown_torch(destroy_process_group=False)


def ddp_ignore_parameters(model, names: list[str]) -> bool:
    """Keep these parameters out of DistributedDataParallel's gradient reduction (textclf reduces the
    sparse tables' gradients itself: DDP's sparse path on gloo corrupts memory, pytorch#87497); False
    where torch no longer offers it, and the caller trains the tables dense, inside DDP."""
    from torch.nn.parallel import DistributedDataParallel

    ignore = getattr(DistributedDataParallel, "_set_params_and_buffers_to_ignore_for_model", None)
    if ignore is None:
        return False
    ignore(model, names)
    return True


def quantize_dynamic_int8(model, layer_types: tuple[type, ...]):
    """`model` with the weights of its `layer_types` layers in int8 (torch.ao.quantization's dynamic
    quantization: deprecated for torchao, whose int8 covers linear layers only, not the LSTM).
    Fallback: a ConfigError saying that this torch cannot score in int8."""
    import torch

    from textclf.errors import ConfigError

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise ConfigError(
            "precision int8 needs torch's dynamic int8 quantization, gone from this torch; use fp32"
        ) from None
    with warnings.catch_warnings():
        # torch's own quantized LSTM builds its weights with quantize_per_tensor, which torch deprecates
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
        return quantize_dynamic(model, set(layer_types), dtype=torch.qint8, inplace=True)
