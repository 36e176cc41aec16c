"""Ray Train's torch backend, in a form its controller can load without importing torch.

Ray Train's controller unpickles the backend config, and `ray.train.torch.config` imports torch at
the top: seconds of the controller's start, spent before it asks for any worker. Here the
config and backend import nothing of torch; the workers run Ray's own torch set-up (they import
torch anyway), and the controller imports Ray's torch backend only to start a process group, which a
single worker does not get: it has no peer to reduce with (`prepare_model` wraps DDP only for more
than one), and gloo's store thread would wake about 110 times a second beside its steps.

The pieces of Ray this needs are private (textclf.runtime.compat); where they are gone, `backend_config`
gives Ray's public TorchConfig instead and ImportTorchBackendEarly is None.
"""

from __future__ import annotations

import threading

from ray.train.backend import Backend, BackendConfig

from textclf.runtime import compat

CONTROLLER_CALLBACK = compat.controller_callback()


def backend_config() -> BackendConfig:
    if CONTROLLER_CALLBACK is None:
        from ray.train.torch import TorchConfig

        return TorchConfig()
    return TorchBackendConfig()


class TorchBackendConfig(BackendConfig):
    """Ray's TorchConfig defaults (gloo on CPU, nccl on GPU, env:// rendezvous, 1,800 s timeout)."""

    @property
    def backend_cls(self):
        return TorchBackend

    @property
    def train_func_context(self):  # read on the driver, run on the workers
        from ray.train.torch.config import TorchConfigContextManager

        return TorchConfigContextManager

    @property
    def framework(self):
        return compat.torch_training_framework()


class TorchBackend(Backend):
    share_cuda_visible_devices = True

    def on_start(self, worker_group, backend_config) -> None:
        if len(worker_group) > 1:
            backend, config = _ray_torch_backend()
            backend.on_start(worker_group, config)
        else:
            worker_group.execute(_set_torch_distributed_env_vars)

    def on_shutdown(self, worker_group, backend_config) -> None:
        if len(worker_group) > 1:
            backend, config = _ray_torch_backend()
            backend.on_shutdown(worker_group, config)
        else:
            worker_group.execute(_shutdown_torch)


if CONTROLLER_CALLBACK is None:
    ImportTorchBackendEarly = None
else:

    class ImportTorchBackendEarly(CONTROLLER_CALLBACK):
        """For more than one worker: the controller imports Ray's torch backend while the workers start,
        not after, when their process group waits on it."""

        def __init__(self, workers: int) -> None:
            self.workers = workers

        def after_controller_start(self, train_run_context) -> None:
            if self.workers > 1:
                threading.Thread(target=_ray_torch_backend, name="import-torch-backend", daemon=True).start()


def _ray_torch_backend():
    from ray.train.torch.config import TorchConfig

    return compat.ray_torch_backend(), TorchConfig()


# Run on the workers, which import torch for training anyway.
def _set_torch_distributed_env_vars() -> None:
    compat.set_torch_distributed_env_vars()


def _shutdown_torch() -> None:
    compat.shutdown_torch()
