"""textclf: train text classifiers with Ray Train, label Parquet corpora with Ray Data.

The Python API (textclf.api): `textclf.load`, `textclf.train`, `textclf.label`.
"""

__version__ = "0.1.0"
__all__ = ["Classifier", "__version__", "label", "load", "train"]


def __getattr__(name: str):
    # imported on first use, so the CLI's start-up does not pay for the API's imports
    if name in ("Classifier", "label", "load", "train"):
        from textclf import api

        return getattr(api, name)
    raise AttributeError(f"module 'textclf' has no attribute {name!r}")
