"""Scoring with a loaded bundle, shared by predict, evaluate and the labeling actors."""
