"""Adam over a model whose large embedding tables take sparse gradients.

A dense Adam step reads and writes every row of every table: for the bag model's million-row bigram
table that is about 1 s per step on a CPU, against about 10 ms when only the rows a batch used are
touched (SparseAdam, "lazy" Adam). Dense parameters keep plain Adam. On GPU the tables stay dense:
NCCL has no sparse all-reduce, and a dense step there costs little.

The sparse tables are kept out of DDP and their gradients all-gathered here: DDP's sparse path on
gloo corrupts memory when one rank's gradient is empty (pytorch#87497), which happens whenever a
batch of one-token rows leaves the bigram table untouched.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


class SparseTables:
    """The model's `sparse_tables()`, switched to sparse gradients on CPU."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        tables = getattr(model, "sparse_tables", lambda: [])() if device.type == "cpu" else []
        for table in tables:
            table.sparse = True
        ids = {id(t) for t in tables}
        self.names = [f"{name}.weight" for name, module in model.named_modules() if id(module) in ids]
        self.params = [t.weight for t in tables]
        # DDP reads this at construction: the tables' gradients are reduced by all_reduce_grads
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, self.names)

    def broadcast(self) -> None:
        """Rank 0's tables to every rank (DDP does this for the parameters it manages)."""
        for param in self.params:
            dist.broadcast(param.data, src=0)

    def all_reduce_grads(self, world: int) -> None:
        """Average the tables' sparse gradients across ranks, as DDP averages dense ones."""
        for param in self.params:
            grad = param.grad.coalesce() if param.grad is not None else None
            rows = grad.indices()[0] if grad is not None else torch.zeros(0, dtype=torch.int64)
            values = grad.values() if grad is not None else param.new_zeros((0, param.size(1)))
            counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
            dist.all_gather(counts, torch.tensor([len(rows)]))
            longest = int(max(c.item() for c in counts))
            # all_gather needs equal shapes: pad with zero gradients for row 0 (padding, stays zero)
            padded_rows = torch.zeros(longest, dtype=torch.int64)
            padded_rows[: len(rows)] = rows
            padded_values = values.new_zeros((longest, values.size(1)))
            padded_values[: len(rows)] = values
            all_rows = [torch.empty_like(padded_rows) for _ in range(world)]
            all_values = [torch.empty_like(padded_values) for _ in range(world)]
            dist.all_gather(all_rows, padded_rows)
            dist.all_gather(all_values, padded_values)
            param.grad = torch.sparse_coo_tensor(torch.cat(all_rows).unsqueeze(0), torch.cat(all_values) / world,
                                                 param.shape, check_invariants=False)


class Adam:
    """Adam for dense parameters and lazy Adam for the sparse tables (the updates of torch.optim.Adam
    and SparseAdam, checked step for step in the tests), behind one optimizer-like interface whose
    state_dict has torch's {"state", "param_groups"} shape. Written with plain tensor ops because
    torch.optim imports torch._dynamo on first use: 2.5 s of every training worker's start here."""

    def __init__(self, model: nn.Module, tables: SparseTables, lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.tables = tables
        sparse = [p for p in tables.params if p.requires_grad]
        dense = [p for p in model.parameters() if p.requires_grad and all(p is not s for s in sparse)]
        options = dict(lr=lr, betas=tuple(betas), eps=eps)
        # Lazy Adam has no weight decay: it would touch every row. Decay applies to dense parameters.
        self.param_groups = [dict(options, weight_decay=weight_decay, params=dense, sparse=False)]
        if sparse:
            self.param_groups.append(dict(options, weight_decay=0.0, params=sparse, sparse=True))
        self.state: dict[torch.Tensor, dict] = {}

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    (_lazy_adam if group["sparse"] else _adam)(p, self._state(p, group["sparse"]), group)

    def _state(self, p: torch.Tensor, sparse: bool) -> dict:
        if p not in self.state:  # torch keeps a dense step count as a float32 CPU tensor, a sparse one as an int
            self.state[p] = {"step": 0 if sparse else torch.tensor(0.0),
                             "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return self.state[p]

    def state_dict(self) -> dict:
        """Parameters numbered in order across the groups, as torch numbers them."""
        numbers = {id(p): i for i, p in enumerate(self.parameters)}
        state = {numbers[id(p)]: dict(entries) for p, entries in self.state.items()}
        groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": [numbers[id(p)] for p in group["params"]]}
                  for group in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        """Also reads the state of the torch.optim optimizers textclf used before (same shape and keys)."""
        groups = sd["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, expected {len(self.param_groups)}")
        self.state = {}
        for group, saved in zip(self.param_groups, groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("optimizer state does not match the model's parameters")
            group.update(lr=saved["lr"], betas=tuple(saved["betas"]), eps=saved["eps"],
                         weight_decay=saved.get("weight_decay", 0.0))
            for p, index in zip(group["params"], saved["params"]):
                if index in sd["state"]:
                    entries = sd["state"][index]
                    step = float(entries["step"])
                    self.state[p] = {"step": int(step) if group["sparse"] else torch.tensor(step),
                                     **{k: entries[k].to(p.device, p.dtype, copy=True) for k in ("exp_avg", "exp_avg_sq")}}


def _adam(p: torch.Tensor, state: dict, group: dict) -> None:
    """torch.optim.Adam's single-tensor update (L2 weight decay, no amsgrad)."""
    beta1, beta2 = group["betas"]
    state["step"] += 1
    step = state["step"].item()
    grad = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
    state["exp_avg"].lerp_(grad, 1 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
    p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / (1 - beta1**step))


def _lazy_adam(p: torch.Tensor, state: dict, group: dict) -> None:
    """torch.optim.SparseAdam's update: only the rows in the gradient move, and their moments."""
    beta1, beta2 = group["betas"]
    state["step"] += 1
    step = state["step"]
    grad = p.grad.coalesce()  # duplicate rows summed: the update is not linear
    rows, values = grad.indices()[0], grad.values()
    if values.numel() == 0:
        return
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    old_avg, old_sq = exp_avg.index_select(0, rows), exp_avg_sq.index_select(0, rows)
    avg_update = (values - old_avg).mul_(1 - beta1)
    sq_update = values.pow(2).sub_(old_sq).mul_(1 - beta2)
    exp_avg.index_add_(0, rows, avg_update)
    exp_avg_sq.index_add_(0, rows, sq_update)
    numer, denom = avg_update.add_(old_avg), sq_update.add_(old_sq).sqrt_().add_(group["eps"])
    step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
    p.index_add_(0, rows, -step_size * numer.div_(denom))


def clip_grad_norm(parameters: list[torch.Tensor], max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ that also takes sparse gradients (it does not)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not any(g.is_sparse for g in grads):  # torch's own: no host sync on GPU
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    norms = [(g.coalesce().values() if g.is_sparse else g).detach().float().norm() for g in grads]
    total = torch.stack([n.to(norms[0].device) for n in norms]).norm()
    scale = max_norm / (float(total) + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return float(total)
