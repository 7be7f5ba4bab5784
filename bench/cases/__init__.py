"""One module per operator (or service): `cases(quick) -> list[bench.runner.Case]`."""
