"""Text to model input, Ray-free: spaCy tokenizing, vocabulary, encoding, length-bucketed batching."""
