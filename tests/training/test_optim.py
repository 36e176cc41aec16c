import pytest
import torch

from textclf.models import create_model
from textclf.training.checkpoint import load_training_state, save_training_state
from textclf.training.optim import Adam, LinearDecaySGD, ScheduledAdamW, SparseTables, clip_grad_norm

CPU = torch.device("cpu")


def _bow(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("bow", vocab_size=40, num_classes=3, embedding_dim=8, num_buckets=1000).eval()


def _step(model, optimizer, ids, lengths, clip: float = 0.0):
    optimizer.zero_grad()
    model(ids, lengths).sum().backward()
    if clip:
        clip_grad_norm(optimizer.parameters, clip)
    optimizer.step()


IDS, LENGTHS = torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])


def test_bow_tables_take_sparse_gradients_on_cpu_and_only_used_rows_move():
    model = _bow()
    tables = SparseTables(model, CPU)
    assert tables.names == ["embedding.weight", "bigram_embedding.weight"]
    before = model.embedding.weight.detach().clone()
    optimizer = Adam(model, tables, lr=0.1)
    assert [g["sparse"] for g in optimizer.param_groups] == [False, True]
    for _ in range(2):  # the output layer starts at zero: the tables' gradients are non-zero from step 2
        _step(model, optimizer, IDS, LENGTHS)
    assert model.embedding.weight.grad.is_sparse
    moved = (model.embedding.weight != before).any(dim=1).nonzero().squeeze(1).tolist()
    assert moved == [3, 4, 5, 6, 7]  # lazy Adam: untouched rows (and padding row 0) stay put


def test_tables_stay_dense_off_cpu_and_models_without_tables_get_plain_adam():
    model = _bow()
    assert SparseTables(model, torch.device("cuda")).params == [] and not model.embedding.sparse
    cnn = create_model("cnn", vocab_size=40, num_classes=2)
    optimizer = Adam(cnn, SparseTables(cnn, CPU), lr=0.1)
    assert [g["sparse"] for g in optimizer.param_groups] == [False]


BATCHES = [
    (IDS, LENGTHS),
    (torch.tensor([[4, 9, 3], [5, 5, 5]]), LENGTHS),
    (torch.tensor([[8, 2, 0], [3, 0, 0]]), torch.tensor([2, 1])),
]


def _torch_optimizers(model, lr, weight_decay):
    """torch.optim.Adam for dense parameters and SparseAdam for the tables, set up by hand."""
    tables = SparseTables(model, CPU)
    dense = [p for p in model.parameters() if all(p is not t for t in tables.params)]
    return [torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay), torch.optim.SparseAdam(tables.params, lr=lr)]


def _torch_step(model, optimizers, ids, lengths):
    for opt in optimizers:
        opt.zero_grad()
    model(ids, lengths).sum().backward()
    for opt in optimizers:
        opt.step()


def test_updates_are_torch_adam_and_sparse_adam_step_for_step():
    ours, theirs = _bow(), _bow()
    optimizer = Adam(ours, SparseTables(ours, CPU), lr=0.05, weight_decay=0.01)
    reference = _torch_optimizers(theirs, lr=0.05, weight_decay=0.01)
    for ids, lengths in BATCHES * 2:
        _step(ours, optimizer, ids, lengths)
        _torch_step(theirs, reference, ids, lengths)
        for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.equal(a, b), name


def test_optimizer_state_saved_by_the_torch_optimizers_loads_and_continues_the_same():
    """A checkpoint's optimizer state: {"state", "param_groups"} merged from torch's two optimizers,
    the tables' group flagged sparse (the shape every textclf version has written)."""
    theirs = _bow()
    reference = _torch_optimizers(theirs, lr=0.05, weight_decay=0.0)
    for ids, lengths in BATCHES[:2]:
        _torch_step(theirs, reference, ids, lengths)
    dense, sparse = (opt.state_dict() for opt in reference)
    offset = len(dense["param_groups"][0]["params"])
    merged = {
        "state": {**dense["state"], **{i + offset: v for i, v in sparse["state"].items()}},
        "param_groups": [
            {**dense["param_groups"][0], "sparse": False},
            {
                **sparse["param_groups"][0],
                "params": [i + offset for i in sparse["param_groups"][0]["params"]],
                "sparse": True,
            },
        ],
    }
    ours = _bow(seed=1)
    ours.load_state_dict(theirs.state_dict())
    optimizer = Adam(ours, SparseTables(ours, CPU), lr=0.5)  # the saved lr wins, as in torch
    optimizer.load_state_dict(merged)
    ids, lengths = BATCHES[2]
    _step(ours, optimizer, ids, lengths)
    _torch_step(theirs, reference, ids, lengths)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_clip_grad_norm_counts_sparse_gradients():
    model = _bow()
    optimizer = Adam(model, SparseTables(model, CPU), lr=0.1)
    _step(model, optimizer, IDS, LENGTHS)
    optimizer.zero_grad()
    model(IDS, LENGTHS).sum().mul(1000).backward()
    total = clip_grad_norm(optimizer.parameters, 1.0)
    assert total > 1.0
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in optimizer.parameters]
    assert torch.stack([g.norm() for g in grads]).norm().item() == pytest.approx(1.0, rel=1e-4)


def test_sparse_optimizer_state_round_trips_through_a_checkpoint(tmp_path):
    model = _bow()
    optimizer = Adam(model, SparseTables(model, CPU), lr=0.1)
    for _ in range(2):
        _step(model, optimizer, IDS, LENGTHS, clip=5.0)
    save_training_state(tmp_path, model.state_dict(), model.state_dict(), optimizer, {"epoch": 1})
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "optimizer.safetensors"))
    # the tables' moments are stored as their few non-zero rows, not 1,001 x 8 mostly zeros
    assert any(k.endswith(".rows") for k in stored) and max(v.numel() for v in stored.values()) < 1001 * 8

    model_state, _, optimizer_state, _ = load_training_state(tmp_path)
    fresh = _bow(seed=1)
    fresh.load_state_dict(model_state)
    fresh_opt = Adam(fresh, SparseTables(fresh, CPU), lr=0.1)
    fresh_opt.load_state_dict(optimizer_state)
    more = torch.tensor([[4, 9, 3], [5, 5, 5]])
    for m, opt in ((model, optimizer), (fresh, fresh_opt)):
        _step(m, opt, more, LENGTHS, clip=5.0)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


def test_adamw_schedule_warms_up_decays_to_zero_and_resumes_from_a_checkpoint(tmp_path):
    def mlp(seed):
        torch.manual_seed(seed)
        return create_model("mlp", vocab_size=40, num_classes=3, hidden_dim=8).eval()  # no dropout draws

    def adamw(model):
        return ScheduledAdamW(model, SparseTables(model, CPU), lr=0.1, weight_decay=0.01, total_steps=20)

    model = mlp(0)
    optimizer = adamw(model)
    rates = [optimizer.param_groups[0]["lr"]]  # the rate of each step, the first one's included
    for _ in range(12):
        _step(model, optimizer, IDS, LENGTHS, clip=1.0)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[:4] == pytest.approx([0.05, 0.1, 0.1, 0.1 * 17 / 18])  # 2 warm-up steps, then down to 0
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]  # matrices decay, biases do not
    save_training_state(tmp_path, model.state_dict(), model.state_dict(), optimizer, {"epoch": 1})

    model_state, _, optimizer_state, _ = load_training_state(tmp_path)
    resumed = mlp(1)
    resumed.load_state_dict(model_state)
    resumed_optimizer = adamw(resumed)
    resumed_optimizer.load_state_dict(optimizer_state)
    for m, opt in ((model, optimizer), (resumed, resumed_optimizer)):
        for _ in range(8):
            _step(m, opt, IDS, LENGTHS, clip=1.0)
    assert optimizer.param_groups[0]["lr"] == resumed_optimizer.param_groups[0]["lr"] == 0.0
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_linear_decay_sgd_moves_only_used_rows_by_plain_steps_and_resumes_its_schedule(tmp_path):
    def sgd(model):
        return LinearDecaySGD(model, SparseTables(model, CPU), lr=0.5, weight_decay=0.0, total_steps=10)

    model = _bow()
    optimizer = sgd(model)
    assert [len(g["params"]) for g in optimizer.param_groups] == [2, 2]  # fc; then the two sparse tables
    for _ in range(2):  # the output layer starts at zero: the tables' gradients are non-zero from step 2
        before = model.embedding.weight.detach().clone()
        rate = optimizer.param_groups[1]["lr"]
        _step(model, optimizer, IDS, LENGTHS, clip=5.0)
    grad = model.embedding.weight.grad.coalesce().to_dense()
    # plain SGD: each used row moves by exactly rate x gradient; padding and unused rows stay put
    assert torch.allclose(model.embedding.weight, before - rate * grad)
    assert (model.embedding.weight != before).any(dim=1).nonzero().squeeze(1).tolist() == [3, 4, 5, 6, 7]
    assert rate == pytest.approx(0.5 * 9 / 10) and optimizer.param_groups[0]["lr"] == pytest.approx(0.4)
    save_training_state(tmp_path, model.state_dict(), model.state_dict(), optimizer, {"epoch": 1})

    model_state, _, optimizer_state, _ = load_training_state(tmp_path)
    resumed = _bow(1)
    resumed.load_state_dict(model_state)
    resumed_optimizer = sgd(resumed)
    resumed_optimizer.load_state_dict(optimizer_state)
    for m, opt in ((model, optimizer), (resumed, resumed_optimizer)):
        for _ in range(8):
            _step(m, opt, IDS, LENGTHS)
    assert optimizer.param_groups[0]["lr"] == resumed_optimizer.param_groups[0]["lr"] == 0.0
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def _sync_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _bow()
    tables = SparseTables(model, CPU)
    # rank 1's rows are one token long: its bigram gradient is empty (what crashed DDP's sparse path)
    ids, lengths = (IDS, LENGTHS) if rank == 0 else (torch.tensor([[9], [8]]), torch.tensor([1, 1]))
    model.fc.weight.data.fill_(0.5)
    model(ids, lengths).sum().backward()
    tables.all_reduce_grads(world)
    torch.save({n: p.grad.to_dense() for n, p in zip(tables.names, tables.params)}, f"{out_dir}/{rank}.pt")
    dist.destroy_process_group()


def test_sparse_gradients_average_across_ranks_even_when_one_is_empty(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    synced = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    expected = {}
    for ids, lengths in ((IDS, LENGTHS), (torch.tensor([[9], [8]]), torch.tensor([1, 1]))):
        model = _bow()
        model.fc.weight.data.fill_(0.5)
        model(ids, lengths).sum().backward()
        for name in ("embedding.weight", "bigram_embedding.weight"):
            grad = dict(model.named_parameters())[name].grad
            expected[name] = expected.get(name, 0) + grad / 2
    for name, grad in expected.items():
        assert torch.allclose(synced[0][name], grad) and torch.equal(synced[0][name], synced[1][name])
