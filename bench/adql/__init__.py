"""Benchmarks of the ADQL translator."""
