"""Ingest benchmarks."""
