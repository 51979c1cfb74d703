"""Benchmarks that compare CARBS with other hyperparameter tuners at equal cumulative cost.

Run ``python -m benchmarks.compare --quick`` (a few minutes) or ``--full`` (the
numbers published in ``docs/benchmarks.md``).
"""
