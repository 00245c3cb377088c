"""Benchmarks: generation latency of presets (infer)."""
