"""`textclf train`: the Ray Train driver, the per-worker loop, training data on Ray Data, checkpoints."""
