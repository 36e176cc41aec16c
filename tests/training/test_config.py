import pytest

from textclf.errors import ConfigError
from textclf.training.config import (
    SGD_LR,
    SGD_LR_SUBLINEAR,
    TrainConfig,
    default_lr,
    default_optimizer,
    default_patience,
    load_train_config,
)
from textclf.training.driver import _class_weights


def test_yaml_values_then_flags_that_were_given(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("arch: bilstm\nepochs: 4\nbatch-tokens: 1024\nmodel:\n  hidden_dim: 64\n")
    config = load_train_config(path, {"epochs": 2, "workers": None, "lr": None})
    assert (config.arch, config.epochs, config.batch_tokens, config.model) == ("bilstm", 2, 1024, {"hidden_dim": 64})
    assert config.workers == 1  # a flag left out (None) keeps the YAML value or the default


def test_learning_rate_default_and_override():
    assert TrainConfig(arch="bow").lr is None and TrainConfig(arch="bow", lr=0.1).lr == 0.1  # None: default_lr


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"arch": "gpt"}, "unknown architecture"),
        ({"arch": "bow", "model": {"pretrained": "minilm-l6"}}, "--pretrained needs --arch transformer"),
        ({"arch": "transformer", "embeddings": "glove.txt"}, "transformer: --pretrained"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"class_weights": "inverse"}, "class_weights"),
        ({"workers": 1.5}, "workers"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of adam, sgd"),
        ({"arch": "transformer", "optimizer": "sgd"}, "AdamW"),
        ({"patience": -1}, "patience must be an integer >= 0, got -1"),
        ({"patience": "3"}, "patience must be an integer"),
    ],
)
def test_invalid_values_say_what_to_fix(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig(**options)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_train_config(path, {})


def test_balanced_class_weights_follow_sklearn():
    weights = _class_weights(TrainConfig(class_weights="balanced"), ["a", "b"], {"a": 30, "b": 10})
    assert weights == pytest.approx([40 / (2 * 30), 40 / (2 * 10)])
    assert _class_weights(TrainConfig(), ["a", "b"], {"a": 30, "b": 10}) is None


def test_yaml_numbers_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 1e-5\n")
    config = load_train_config(path, {})
    assert config.lr == 0.001 and config.weight_decay == 1e-5
    path.write_text("lr: fast\n")
    with pytest.raises(ConfigError, match="lr must be a number, got 'fast'"):
        load_train_config(path, {})


def test_the_default_learning_rate_grows_with_the_classes_for_bow_only():
    assert default_lr("bow", 2) == 1e-3 and default_lr("bow", 12) == pytest.approx(6e-3)
    assert default_lr("bow", 39) == 1e-2 and default_lr("bilstm", 39) == 1e-3


def test_bow_on_multi_label_data_trains_with_sgd_and_its_own_rate_by_default():
    assert default_optimizer("bow", multi_label=True) == "sgd"
    assert default_optimizer("bow", multi_label=False) == default_optimizer("cnn", multi_label=True) == "adam"
    assert default_optimizer("transformer", multi_label=True) is None  # AdamW, its own schedule
    assert default_lr("bow", 75, "sgd", "mean") == default_lr("cnn", 2, "sgd") == SGD_LR
    assert default_lr("bow", 75, "sgd", "sublinear") == SGD_LR_SUBLINEAR < SGD_LR
    assert default_lr("bow", 75, "adam", "sublinear") == 1e-2


def test_bow_on_multi_label_data_is_wider_unless_the_config_says_otherwise():
    from textclf.training.driver import _model_config

    def built(multi_label, **model):
        config = TrainConfig(arch="bow", model=model)
        return _model_config(config, 100, 5, vectors_dim=None, encoder_config=None, multi_label=multi_label)

    assert (built(False)["embedding_dim"], built(False)["num_buckets"]) == (64, 1_000_000)
    assert (built(True)["embedding_dim"], built(True)["num_buckets"]) == (256, 250_000)
    assert built(True, embedding_dim=32)["embedding_dim"] == 32
    assert built(True)["pooling"] == built(False)["pooling"] == "sublinear"
    # pretrained vectors set the width unless the config names one
    config = TrainConfig(arch="bow")
    assert _model_config(config, 100, 5, vectors_dim=50, encoder_config=None, multi_label=True)["embedding_dim"] == 50


def test_sgd_runs_its_whole_schedule_unless_patience_is_given():
    assert default_patience("sgd") == 0 and default_patience("adam") == default_patience(None) == 3
    assert TrainConfig().patience is None and TrainConfig(patience=0).patience == 0  # None: default_patience


def test_fine_tuning_defaults_differ_by_architecture_and_yield_to_given_values():
    tuned, scratch = TrainConfig(arch="transformer"), TrainConfig(arch="bow")
    assert (tuned.epochs, tuned.max_batch_rows, tuned.weight_decay, tuned.clip_norm) == (4, 16, 0.01, 1.0)
    assert (scratch.epochs, scratch.max_batch_rows, scratch.weight_decay, scratch.clip_norm) == (20, 128, 0.0, 5.0)
    assert TrainConfig(arch="transformer", epochs=5, weight_decay=0.0).epochs == 5
    assert default_lr("transformer", 2) == default_lr("transformer", 39) == 1e-4


def test_pretrained_flag_is_a_model_option_next_to_the_yaml_ones(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("arch: transformer\nmodel:\n  pooling: cls\n  pretrained: minilm-l6\n")
    assert load_train_config(path, {}).model == {"pooling": "cls", "pretrained": "minilm-l6"}
    flagged = load_train_config(path, {"pretrained": "/models/bert"})
    assert flagged.model == {"pooling": "cls", "pretrained": "/models/bert"}


def test_more_tokens_than_the_encoder_has_positions_is_refused_before_ray_starts(tiny_encoder):
    from textclf.training.driver import _pretrained_encoder

    config = TrainConfig(arch="transformer", model={"pretrained": str(tiny_encoder)})  # --max-tokens 256
    with pytest.raises(ConfigError, match="--max-tokens 256 is more than the encoder's 128 positions"):
        _pretrained_encoder(config)
    assert _pretrained_encoder(TrainConfig(arch="transformer", max_tokens=128, model=config.model)).config
