"""Evaluation: labelled data, metrics and benchmarks."""
