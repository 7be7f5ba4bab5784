"""Benchmark runner: `python -m bench [--quick] [--only NAME] [--json PATH] [--load N]`. Not part of the test run."""
