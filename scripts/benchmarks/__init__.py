"""Benchmarks behind ``scripts/bench``: each compares side by side in one run."""
