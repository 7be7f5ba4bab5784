"""Benchmark runner: `python -m bench [--quick] [--only NAME] [--json PATH]`. Not part of the test run."""
