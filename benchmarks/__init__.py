"""Benchmarks of the offline review (`make bench`)."""
