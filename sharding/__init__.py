"""Partitioning, placement and (later) distributed query execution."""
