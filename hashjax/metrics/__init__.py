"""Retrieval metrics on {-1, +1} hash codes (pure, jitted JAX)."""

from hashjax.metrics._simple import mean_average_precision, ndcg_at_k, precision_at_k
from hashjax.metrics.packing import hamming_distance, num_words, pack_codes

__all__ = [
    "hamming_distance",
    "mean_average_precision",
    "ndcg_at_k",
    "num_words",
    "pack_codes",
    "precision_at_k",
]
