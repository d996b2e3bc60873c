"""Retrieval metrics on {-1, +1} hash codes (pure, jitted JAX)."""

from hashjax.metrics.packing import hamming_distance, num_words, pack_codes

__all__ = ["hamming_distance", "num_words", "pack_codes"]
