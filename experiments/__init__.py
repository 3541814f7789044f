"""Experiments: the synthetic city (demo-data), benchmarks and evaluation scripts.

May import anything; nothing in features/, training/ or serving/ imports it."""
