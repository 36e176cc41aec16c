import torch

from textclf.models import create_model
from textclf.training.checkpoint import load_training_state, save_training_state


def test_training_state_round_trips_without_pickle(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn", vocab_size=50, num_classes=2).eval()  # eval: no dropout noise
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    ids, lengths = torch.randint(2, 50, (4, 7)), torch.tensor([7, 5, 3, 1])
    model(ids, lengths).sum().backward()
    optimizer.step()
    state = {"epoch": 3, "history": [{"epoch": 1, "val_accuracy": 0.5}], "best_epoch": 1}
    save_training_state(tmp_path, model.state_dict(), model.state_dict(), optimizer, state)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))

    model_state, best_state, optimizer_state, loaded = load_training_state(tmp_path)
    assert loaded == state
    fresh = create_model("cnn", vocab_size=50, num_classes=2).eval()
    fresh.load_state_dict(model_state)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.01)
    fresh_opt.load_state_dict(optimizer_state)
    # one more identical step on both gives identical weights: the optimizer moments came back
    for m, opt in ((model, optimizer), (fresh, fresh_opt)):
        opt.zero_grad()
        m(ids, lengths).sum().backward()
        opt.step()
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
