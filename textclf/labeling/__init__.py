"""`textclf label`: input discovery, the Ray Data pipeline, per-batch labeling."""
