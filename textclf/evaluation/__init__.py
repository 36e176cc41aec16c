"""Metrics from confusion matrices, the evaluate command, and the report's pictures."""
