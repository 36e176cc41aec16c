"""The training loop's optimizers: Adam (the default), fastText's linearly decaying SGD and AdamW under
warm-up and decay (fine-tuning), over a model whose large embedding tables take sparse gradients.

A dense Adam step reads and writes every row of every table: for the bag model's million-row bigram
table that is most of a step on a CPU, while SparseAdam ("lazy" Adam) touches only the rows a batch
used. Dense parameters keep plain Adam. On GPU the tables stay dense: NCCL has no sparse all-reduce,
and a dense step there costs little.

The sparse tables are kept out of DDP and their gradients all-gathered here: DDP's sparse path on
gloo corrupts memory when one rank's gradient is empty (pytorch#87497), which happens whenever a
batch of one-token rows leaves the bigram table untouched.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from textclf.runtime.compat import ddp_ignore_parameters


class SparseTables:
    """The model's `sparse_tables()`, switched to sparse gradients on CPU."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        tables = getattr(model, "sparse_tables", lambda: [])() if device.type == "cpu" else []
        ids = {id(t) for t in tables}
        names = [f"{name}.weight" for name, module in model.named_modules() if id(module) in ids]
        # DDP reads this at construction: the tables' gradients are reduced by all_reduce_grads
        if tables and not ddp_ignore_parameters(model, names):
            tables, names = [], []
        for table in tables:
            table.sparse = True
        self.names = names
        self.params = [t.weight for t in tables]

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
            param.grad = torch.sparse_coo_tensor(
                torch.cat(all_rows).unsqueeze(0), torch.cat(all_values) / world, param.shape, check_invariants=False
            )


class Adam:
    """torch.optim.Adam for the dense parameters and torch.optim.SparseAdam ("lazy" Adam: only the rows a
    batch used move) for the sparse tables, behind one optimizer-like interface. Its state_dict has
    torch's {"state", "param_groups"} shape with the parameters numbered in order across both groups,
    as the checkpoints of earlier textclf versions have it, so those load too."""

    def __init__(
        self,
        model: nn.Module,
        tables: SparseTables,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.tables = tables
        sparse = [p for p in tables.params if p.requires_grad]
        dense = [p for p in model.parameters() if p.requires_grad and all(p is not s for s in sparse)]
        # SparseAdam has no weight decay (it would touch every row): decay applies to dense parameters
        self.optimizers = [torch.optim.Adam(dense, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)]
        if sparse:
            self.optimizers.append(torch.optim.SparseAdam(sparse, lr=lr, betas=betas, eps=eps))

    @property
    def param_groups(self) -> list[dict]:
        return [
            {**group, "sparse": isinstance(optimizer, torch.optim.SparseAdam)}
            for optimizer in self.optimizers
            for group in optimizer.param_groups
        ]

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for optimizer in self.optimizers for group in optimizer.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for optimizer in self.optimizers:
            sd = optimizer.state_dict()
            state.update({offset + index: entries for index, entries in sd["state"].items()})
            for group in sd["param_groups"]:
                groups.append(
                    {
                        **group,
                        "params": [offset + index for index in group["params"]],
                        "sparse": isinstance(optimizer, torch.optim.SparseAdam),
                    }
                )
            offset += sum(len(group["params"]) for group in optimizer.param_groups)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        groups = sd["param_groups"]
        if len(groups) != len(self.optimizers):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, expected {len(self.optimizers)}")
        for optimizer, group in zip(self.optimizers, groups):
            if len(group["params"]) != len(optimizer.param_groups[0]["params"]):
                raise ValueError("optimizer state does not match the model's parameters")
            offset = min(group["params"], default=0)
            # copies: torch keeps the given tensors, which may be another optimizer's live state
            state = {
                index - offset: {k: v.clone() if torch.is_tensor(v) else v for k, v in sd["state"][index].items()}
                for index in group["params"]
                if index in sd["state"]
            }
            if isinstance(optimizer, torch.optim.SparseAdam):  # SparseAdam counts steps in a Python int
                for entries in state.values():
                    entries["step"] = int(float(entries["step"]))
            else:  # Adam in a float tensor
                for entries in state.values():
                    entries["step"] = torch.as_tensor(float(entries["step"]), dtype=torch.float32)
            saved = {k: v for k, v in group.items() if k not in ("sparse",)}
            optimizer.load_state_dict(
                {"state": state, "param_groups": [{**saved, "params": list(range(len(group["params"])))}]}
            )


class _Scheduled:
    """A torch.optim optimizer under a LambdaLR schedule, behind the loop's optimizer interface. The
    scheduler's state travels in the state_dict, so a resumed run continues the schedule where it stopped."""

    def __init__(self, optimizer: torch.optim.Optimizer, tables: SparseTables, rate) -> None:
        self.tables = tables
        self.optimizer = optimizer
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)

    @property
    def param_groups(self) -> list[dict]:  # the optimizer's current list: load_state_dict replaces it
        return self.optimizer.param_groups

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizer.step()
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {**self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        self.optimizer.load_state_dict({k: v for k, v in sd.items() if k != "scheduler"})
        self.scheduler.load_state_dict(sd["scheduler"])


class ScheduledAdamW(_Scheduled):
    """torch.optim.AdamW, the usual recipe for fine-tuning a pretrained encoder: the rate rises linearly
    over the first WARMUP_SHARE of the steps, then falls linearly to zero at the last. Biases and
    normalisation weights (1-d tensors) are not decayed."""

    WARMUP_SHARE = 0.1

    def __init__(self, model: nn.Module, tables: SparseTables, lr: float, weight_decay: float, total_steps: int):
        trainable = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if p.dim() > 1], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.dim() <= 1], "weight_decay": 0.0},
        ]
        warmup = max(1, round(total_steps * self.WARMUP_SHARE))
        total = max(total_steps, warmup + 1)

        def rate(step: int) -> float:
            return (step + 1) / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))

        super().__init__(torch.optim.AdamW(groups, lr=lr), tables, rate)


class LinearDecaySGD(_Scheduled):
    """fastText's recipe: plain SGD whose rate falls linearly to zero at the last step. Every row of a
    table moves by the same rate, where lazy Adam's per-row steps let rare words and bigrams memorise
    their few texts' labels: on multi-label data that overfits (docs/performance.md). No momentum, which
    torch's SGD has no sparse path for; weight decay applies to the dense parameters only."""

    def __init__(self, model: nn.Module, tables: SparseTables, lr: float, weight_decay: float, total_steps: int):
        sparse = [p for p in tables.params if p.requires_grad]
        dense = [p for p in model.parameters() if p.requires_grad and all(p is not s for s in sparse)]
        groups = [{"params": dense, "weight_decay": weight_decay}]
        if sparse:
            groups.append({"params": sparse, "weight_decay": 0.0})
        total = max(1, total_steps)
        super().__init__(torch.optim.SGD(groups, lr=lr), tables, lambda step: max(0.0, 1 - step / total))


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
