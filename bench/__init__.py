"""Benchmarks that print tables. Run with `make bench`; not part of `make test`."""
