"""Event Lens benchmarks: a load generator, one module per scenario, and a runner (``python -m benchmarks.run``)."""
