"""Retrieval metrics on {-1, +1} hash codes (docs/evaluation.md): exact, stable, chunked.

See :mod:`hashjax.metrics.retrieval` for the ranking and the conventions (the two
mAP@k definitions), and for which functions are host-level and which are jittable
(:func:`retrieval_core`, :func:`topk_hamming_core`).
"""

from hashjax.codes import hamming_distance, num_words, pack_codes
from hashjax.metrics.retrieval import (
    evaluate_retrieval,
    mean_average_precision,
    ndcg_at_k,
    precision_at_k,
    precision_recall_curve,
    precision_within_radius,
    retrieval_core,
    topk_hamming,
    topk_hamming_core,
)

__all__ = [
    "evaluate_retrieval",
    "hamming_distance",
    "mean_average_precision",
    "ndcg_at_k",
    "num_words",
    "pack_codes",
    "precision_at_k",
    "precision_recall_curve",
    "precision_within_radius",
    "retrieval_core",
    "topk_hamming",
    "topk_hamming_core",
]
