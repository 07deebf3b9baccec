"""Benchmarks (not part of the pipeline); see README.md."""
