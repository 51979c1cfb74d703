"""Reliability stress run: load and faults at scale (see README.md in this directory)."""
