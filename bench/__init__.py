"""Benchmarks: ``python -m bench.parse`` (the grammar) and ``python -m bench.webhook`` (SMS)."""
