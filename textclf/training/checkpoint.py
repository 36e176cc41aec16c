"""Training state in a checkpoint folder, without pickle: tensors in safetensors, the rest in JSON.

Files: `model.safetensors` (current weights), `best.safetensors` (best epoch's weights),
`optimizer.safetensors` + `state.json` (optimizer scalars, epoch, history, early-stopping counters,
the tensor files' sha256). state.json is written last, so a checkpoint cut short has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from textclf.bundle import check_safetensors, readable_like_other_files, refuse_pickle_files, sha256_file
from textclf.errors import BundleError, one_line

STATE = "state.json"
TENSOR_FILES = ("model.safetensors", "best.safetensors", "optimizer.safetensors")


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_training_state(
    directory: Path, model_state: dict, best_state: dict, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    from safetensors.torch import save_file

    save_file(_cpu(model_state), str(directory / "model.safetensors"))
    save_file(_cpu(best_state), str(directory / "best.safetensors"))
    tensors, scalars = _split_optimizer_state(optimizer.state_dict())
    save_file(_cpu(tensors), str(directory / "optimizer.safetensors"))
    for name in TENSOR_FILES:
        readable_like_other_files(directory / name)
    hashes = {name: sha256_file(directory / name) for name in TENSOR_FILES}
    (directory / STATE).write_text(json.dumps({**state, "optimizer": scalars, "sha256": hashes}))


def load_training_state(directory: Path) -> tuple[dict, dict, dict, dict[str, Any]]:
    """(model_state, best_state, optimizer_state_dict, state) from a checkpoint folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state = check_training_state(directory)
    try:
        model_state, best_state, tensors = (load_file(str(directory / name)) for name in TENSOR_FILES)
    except (OSError, SafetensorError) as e:
        raise BundleError(f"checkpoint {directory} is unreadable: {one_line(e)}") from None
    state.pop("sha256", None)
    optimizer_state = _join_optimizer_state(tensors, state.pop("optimizer"))
    return model_state, best_state, optimizer_state, state


def check_training_state(directory: Path) -> dict[str, Any]:
    """state.json of an intact checkpoint: no pickle files, every tensor file present, hashed as
    recorded (checkpoints from before hashes were recorded skip that) and parseable. Loads no tensor."""
    try:
        refuse_pickle_files(directory, "checkpoint")
        state = json.loads((directory / STATE).read_text())
        hashes = state.get("sha256") or {}
        for name in TENSOR_FILES:
            check_safetensors(directory / name, hashes.get(name), str(directory / STATE))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise BundleError(f"checkpoint {directory} is unreadable: {one_line(e)}") from None
    return state


def _split_optimizer_state(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors apart from scalars. Moments of a sparse table are zero on every row training has not
    touched (most of a hashed bigram table), so such tensors keep only their non-zero rows."""
    tensors, per_param, compact = {}, {}, {}
    for index, entries in sd["state"].items():
        for name, value in entries.items():
            key = f"{index}.{name}"
            if not torch.is_tensor(value):
                per_param.setdefault(str(index), {})[name] = value
                continue
            rows = value.any(dim=1).nonzero().squeeze(1) if value.dim() == 2 else None
            if rows is not None and len(rows) < value.size(0) // 2:
                tensors[f"{key}.rows"], tensors[f"{key}.values"] = rows, value[rows]
                compact[key] = list(value.shape)
            else:
                tensors[key] = value
    scalars = {"param_groups": sd["param_groups"], "per_param": per_param, "compact": compact}
    if "scheduler" in sd:  # a learning-rate schedule's position (numbers only)
        scalars["scheduler"] = sd["scheduler"]
    return tensors, scalars


def _join_optimizer_state(tensors: dict[str, torch.Tensor], scalars: dict) -> dict:
    for key, shape in scalars.get("compact", {}).items():
        rows, values = tensors.pop(f"{key}.rows"), tensors.pop(f"{key}.values")
        tensors[key] = values.new_zeros(shape).index_copy_(0, rows, values)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in scalars["per_param"].items():
        state.setdefault(int(index), {}).update(entries)
    joined = {"state": state, "param_groups": scalars["param_groups"]}
    if "scheduler" in scalars:
        joined["scheduler"] = scalars["scheduler"]
    return joined
