import collections
import dataclasses
import json
import math

import pytest
import torch

from textclf.errors import ConfigError
from textclf.models import config_class, create_model, model_names
from textclf.training.config import ARCHITECTURES

VOCAB = 50
# Small sizes keep the suite fast; the defaults are exercised by test_default_configs_build.
SMALL = {
    "bilstm": dict(embedding_dim=12, hidden_dim=10),
    "cnn": dict(embedding_dim=12, num_filters=6),
    "bow": dict(embedding_dim=12, num_buckets=97),
    "mlp": dict(embedding_dim=12, hidden_dim=10),
    # a one-layer BERT of hidden size 16 whose word pieces are the same VOCAB ids
    "transformer": dict(
        encoder=dict(
            model_type="bert",
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    ),
}
ALL = ["bilstm", "cnn", "bow", "mlp", "transformer"]


def small_model(name, num_classes=2, **overrides):
    torch.manual_seed(0)
    return create_model(name, vocab_size=VOCAB, num_classes=num_classes, **{**SMALL[name], **overrides})


def perturbed_model(name, **overrides):
    """A small model in eval mode with no all-zero layer (bow's output starts at zero)."""
    model = small_model(name, **overrides).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


def random_batch(lengths, width=None, seed=1):
    """Ids in 2..VOCAB-1 padded with 0 to ``width`` (default: the longest row)."""
    generator = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(2, VOCAB, (length,), generator=generator)
    return ids, torch.tensor(lengths)


def test_all_architectures_registered():
    assert model_names() == ["bilstm", "bow", "cnn", "mlp", "transformer"] == list(ARCHITECTURES)


@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("name", ALL)
def test_output_shape(name, num_classes):
    model = small_model(name, num_classes)
    ids, lengths = random_batch([7, 1, 3, 2])
    assert model(ids, lengths).shape == (4, num_classes)
    assert model.name == name
    assert model.embedding.weight.shape[0] >= VOCAB


@pytest.mark.parametrize("name", ["bilstm", "cnn", "bow", "mlp"])
def test_default_configs_build(name):
    model = create_model(name, vocab_size=VOCAB, num_classes=3)
    ids, lengths = random_batch([6, 1])
    assert model(ids, lengths).shape == (2, 3)


VARIANTS = [
    ("bilstm", {}),
    ("bilstm", {"pooling": "max"}),
    ("cnn", {}),
    ("bow", {}),
    ("bow", {"pooling": "mean"}),
    ("bow", {"pooling": "mean", "num_buckets": 0}),
    ("mlp", {}),
    ("transformer", {}),
    ("transformer", {"pooling": "cls"}),
]


@pytest.mark.parametrize("name, options", VARIANTS)
def test_row_output_ignores_batch_and_padding(name, options):
    model = perturbed_model(name, **options)
    lengths = [1, 2, 4, 9, 3]
    ids, _ = random_batch(lengths)
    with torch.no_grad():
        for row, length in enumerate(lengths):
            alone = model(ids[row : row + 1, :length], torch.tensor([length]))
            # The same row among others, the batch padded to 3x this row's length.
            batch, batch_lengths = random_batch([5, length, 2], width=3 * max(length, 5), seed=row + 7)
            batch[1] = 0
            batch[1, :length] = ids[row, :length]
            together = model(batch, batch_lengths)[1:2]
            torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, options", VARIANTS)
def test_tokens_in_padding_are_never_seen(name, options):
    model = perturbed_model(name, **options)
    ids, lengths = random_batch([8, 2, 5, 1], width=12)
    garbage = ids.clone()
    padding = ids == 0
    garbage[padding] = torch.randint(2, VOCAB, (int(padding.sum()),))
    with torch.no_grad():
        torch.testing.assert_close(model(garbage, lengths), model(ids, lengths), atol=0, rtol=0)


@pytest.mark.parametrize("padding_rows_zero", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_bow_sums_leave_padding_out_on_every_path(padding_rows_zero, sparse, monkeypatch):
    # bow's own sums (padding rows added where zero when scoring, padding dropped from flat ids when
    # training) must give the outputs and gradients of the tables' padding_idx, whatever row 0 holds
    import textclf.models.bow as bow

    model = perturbed_model("bow", pooling="mean")
    tables = model.sparse_tables()
    for table in tables:
        table.sparse = sparse
        if padding_rows_zero:
            with torch.no_grad():
                table.weight[0].zero_()
    ids, lengths = random_batch([8, 2, 5, 1], width=12)

    def outputs_and_gradients():
        model.zero_grad(set_to_none=True)
        out = model(ids, lengths)
        out.pow(2).sum().backward()
        return out.detach(), [table.weight.grad.to_dense() for table in tables]

    with torch.no_grad():
        scored = model(ids, lengths)
    trained, gradients = outputs_and_gradients()
    monkeypatch.setattr(bow, "_bag", lambda table, ids: table(ids))
    reference, reference_gradients = outputs_and_gradients()
    torch.testing.assert_close(scored, reference, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(trained, reference, atol=1e-6, rtol=1e-6)
    for got, expected in zip(gradients, reference_gradients):
        assert not got[0].any()  # row 0 never learns
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("sparse", [True, False])
def test_bow_sublinear_pooling_weighs_distinct_features_to_unit_length(sparse):
    # each distinct word and bigram once, weighted 1 + log(count), the weights of a row scaled to unit length
    model = perturbed_model("bow", dropout=0.0)
    for table in model.sparse_tables():
        table.sparse = sparse
    ids = torch.tensor([[5, 6, 5, 6, 5, 7, 0], [9, 9, 9, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([6, 3, 1])
    words, bigrams = model.embedding.weight, model.bigram_embedding.weight

    def expected(row: list[int]) -> torch.Tensor:
        bigram_ids = model.bigram_ids(torch.tensor([row]), torch.ones(1, len(row), dtype=torch.bool))[0]
        parts = [(words, collections.Counter(row)), (bigrams, collections.Counter(bigram_ids.tolist()))]
        weighted = [(table[i], 1 + math.log(n)) for table, counts in parts for i, n in counts.items()]
        norm = math.sqrt(sum(w * w for _, w in weighted))
        return model.fc(sum(vector * (w / norm) for vector, w in weighted))

    out = model(ids, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[row], expected(ids[row, :length].tolist()), atol=1e-5, rtol=1e-5)
    out.pow(2).sum().backward()
    for table in model.sparse_tables():
        gradient = table.weight.grad.to_dense()
        assert not gradient[0].any() and gradient.abs().sum() > 0


@pytest.mark.parametrize("name", ALL)
def test_one_step_lowers_loss_and_reaches_every_parameter(name):
    model = small_model(name, num_classes=3)
    ids, lengths = random_batch([6, 3, 1, 5, 4, 2])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn = torch.nn.CrossEntropyLoss()

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return loss_fn(model(ids, lengths), labels).item()

    before = eval_loss()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn(model(ids, lengths), labels).backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer.step()
    assert eval_loss() < before


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_is_used_for_one_token_batches(name):
    # DistributedDataParallel fails when a step leaves a parameter out of the graph.
    model = small_model(name)
    ids, lengths = random_batch([1, 1])
    model(ids, lengths).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'gpt'.*bilstm, bow, cnn, mlp, transformer"):
        create_model("gpt", vocab_size=VOCAB, num_classes=2)
    with pytest.raises(ConfigError):
        config_class("gpt")


@pytest.mark.parametrize(
    "options, pattern",
    [
        (dict(vocab_size=VOCAB, num_classes=2, hidden_size=3), "unknown option 'hidden_size'"),
        (dict(num_classes=2), "needs option 'vocab_size'"),
        (dict(vocab_size=VOCAB, num_classes=2, name="x"), "unknown option 'name'"),
        (dict(vocab_size=VOCAB, num_classes=1), "num_classes must be an integer >= 2"),
        (dict(vocab_size=VOCAB, num_classes=2, dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(vocab_size=VOCAB, num_classes=2, embedding_dim="64"), "embedding_dim must be an integer"),
        (dict(vocab_size=VOCAB, num_classes=2, num_layers=True), "num_layers must be an integer"),
        (dict(vocab_size=VOCAB, num_classes=2, bidirectional="yes"), "bidirectional must be true or false"),
    ],
)
def test_invalid_options_name_the_key(options, pattern):
    with pytest.raises(ConfigError, match=pattern):
        create_model("bilstm", **options)


def test_model_specific_validation():
    with pytest.raises(ConfigError, match="filter_sizes"):
        create_model("cnn", vocab_size=VOCAB, num_classes=2, filter_sizes=[])
    with pytest.raises(ConfigError, match="mode must be one of mean, sum"):
        create_model("mlp", vocab_size=VOCAB, num_classes=2, mode="max")
    with pytest.raises(ConfigError, match="num_buckets"):
        create_model("bow", vocab_size=VOCAB, num_classes=2, num_buckets=-1)
    with pytest.raises(ConfigError, match="pooling must be one of sublinear, mean"):
        create_model("bow", vocab_size=VOCAB, num_classes=2, pooling="max")
    with pytest.raises(ConfigError, match="pooling must be one of mean, cls"):
        small_model("transformer", pooling="max")
    with pytest.raises(ConfigError, match="needs option 'encoder'"):
        create_model("transformer", vocab_size=VOCAB, num_classes=2)
    with pytest.raises(ConfigError, match="encoder must be a Hugging Face config"):
        create_model("transformer", vocab_size=VOCAB, num_classes=2, encoder={"hidden_size": 8})
    with pytest.raises(ConfigError, match="vocab_size is 51, the encoder's is 50"):
        create_model("transformer", vocab_size=VOCAB + 1, num_classes=2, **SMALL["transformer"])


def test_transformer_loads_encoder_weights_strictly():
    donor, model = small_model("transformer"), small_model("transformer", num_classes=3)
    with torch.no_grad():
        for param in donor.parameters():
            param.add_(1.0)
    model.load_pretrained(donor.encoder.state_dict(), freeze=True)
    for name, param in model.encoder.state_dict().items():
        assert torch.equal(param, donor.encoder.state_dict()[name])
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_pretrained({})


@pytest.mark.parametrize(
    "name, options",
    [
        ("bilstm", dict(bidirectional=False, num_layers=1)),
        ("cnn", dict(filter_sizes=[2])),
        ("bow", dict(num_buckets=0)),
        ("mlp", dict(mode="sum", word_dropout=0.0)),
    ],
)
def test_non_default_variants(name, options):
    model = small_model(name, **options)
    ids, lengths = random_batch([4, 1])
    assert model(ids, lengths).shape == (2, 2)


@pytest.mark.parametrize("name", ALL)
def test_config_round_trips_through_json(name):
    model = small_model(name, num_classes=4).eval()
    stored = json.loads(json.dumps(dataclasses.asdict(model.config)))
    rebuilt = create_model(name, **stored).eval()
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    ids, lengths = random_batch([5, 2])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(ids, lengths), model(ids, lengths))


@pytest.mark.parametrize("freeze", [True, False])
@pytest.mark.parametrize("name", ["bilstm", "cnn", "bow", "mlp"])
def test_load_pretrained_copies_rows_and_freezes(name, freeze):
    model = small_model(name)
    vectors = torch.randn(VOCAB, 12)
    model.load_pretrained(vectors, freeze=freeze)
    weight = model.embedding.weight
    assert torch.equal(weight[1:VOCAB], vectors[1:])
    assert torch.equal(weight[0], torch.zeros(12))
    ids, lengths = random_batch([4, 2])
    model(ids, lengths).sum().backward()
    assert (weight.grad is None) == freeze
    assert all(p.grad is not None for p in model.parameters() if p is not weight)


def test_load_pretrained_rejects_wrong_shape():
    model = small_model("cnn")
    with pytest.raises(ConfigError, match=r"shape \(50, 300\).*embedding_dim"):
        model.load_pretrained(torch.zeros(VOCAB, 300), freeze=True)
