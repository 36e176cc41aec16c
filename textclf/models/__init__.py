"""Text classifiers behind one registry: ``create_model(name, **config)``.

Every model maps ``ids`` [B, T] (0 = <pad>, 1 = <unk>; word pieces for `transformer`) and ``lengths`` [B]
to logits [B, K],
and a row's output never depends on the rest of its batch or on the batch's padding.
"""

# Importing the architectures registers them.
from textclf.models.bilstm import BiLSTM, BiLSTMConfig
from textclf.models.bow import BoWConfig, FastText
from textclf.models.cnn import CNNConfig, TextCNN
from textclf.models.mlp import MLP, MLPConfig
from textclf.models.registry import TextClassifier, config_class, create_model, create_model_to_load, model_names
from textclf.models.transformer import TransformerClassifier, TransformerConfig

__all__ = [
    "BiLSTM",
    "BiLSTMConfig",
    "BoWConfig",
    "CNNConfig",
    "FastText",
    "MLP",
    "MLPConfig",
    "TextCNN",
    "TextClassifier",
    "TransformerClassifier",
    "TransformerConfig",
    "config_class",
    "create_model",
    "create_model_to_load",
    "model_names",
]
