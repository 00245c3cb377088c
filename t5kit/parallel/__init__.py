"""Parallelism and memory strategies applied to a model from outside, one function per strategy."""
