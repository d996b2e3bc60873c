"""Data: loaders for the shipped real data sets, standard layouts, splits, TFDS builders."""

from hashjax.data.core import MultiModalData, RetrievalSplit, to_multihot

__all__ = ["MultiModalData", "RetrievalSplit", "to_multihot"]
