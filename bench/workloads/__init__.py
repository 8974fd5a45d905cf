"""Benchmark workloads: each module defines UNIT, CONFIGS and make(dy, **config) -> step()."""
