"""The in-memory container for multi-modal retrieval data.

``MultiModalData`` holds one feature matrix per modality (rows are the same items in
every view) and multi-hot labels. ``RetrievalSplit`` bundles the train / query /
database parts every method and every evaluation in hashjax uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from hashjax import checks

__all__ = ["MultiModalData", "RetrievalSplit", "to_multihot"]


def to_multihot(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
  """Converts class ids [n] or [n, 1] to multi-hot [n, C]; passes [n, C] through.

  Args:
    labels: int class ids ``[n]`` / ``[n, 1]`` (0-based), or multi-hot ``[n, C]``.
    num_classes: C for class-id input; default ``max(labels) + 1``.

  Returns:
    uint8 ``[n, C]`` multi-hot matrix.
  """
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim == 1:
    if labels.size == 0:
      raise ValueError("labels are empty.")
    if labels.dtype.kind not in "iu":
      if not np.all(labels == np.round(labels)):
        raise ValueError("class-id labels must be integers.")
      labels = labels.astype(np.int64)
    if labels.min() < 0:
      raise ValueError(f"class ids must be >= 0, got min {labels.min()}.")
    c = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.max() >= c:
      raise ValueError(
          f"class id {int(labels.max())} out of range for {c} classes.")
    out = np.zeros((labels.shape[0], c), np.uint8)
    out[np.arange(labels.shape[0]), labels] = 1
    return out
  if labels.ndim == 2:
    checks.check_labels("labels", labels)
    if num_classes is not None and labels.shape[1] != num_classes:
      raise ValueError(
          f"labels have {labels.shape[1]} classes, expected {num_classes}.")
    return labels.astype(np.uint8)
  raise ValueError(f"labels must be [n], [n, 1] or [n, C], got {labels.shape}.")


@dataclasses.dataclass(frozen=True)
class MultiModalData:
  """Items seen in M modalities, with multi-hot labels.

  Attributes:
    views: M feature matrices, ``views[m]`` of shape ``[n, d_m]`` (float32).
    labels: ``[n, C]`` uint8 multi-hot labels.
    view_names: M names, e.g. ``("image", "text")``.
    name: data set name, for reports.
  """

  views: tuple[np.ndarray, ...]
  labels: np.ndarray
  view_names: tuple[str, ...]
  name: str = ""

  def __post_init__(self):
    views = tuple(np.asarray(v) for v in self.views)
    if not views:
      raise ValueError("MultiModalData needs at least one view.")
    if len(self.view_names) != len(views):
      raise ValueError(
          f"{len(views)} views but {len(self.view_names)} view names.")
    for nm, v in zip(self.view_names, views):
      checks.check_matrix(f"view {nm!r}", v)
      checks.check_finite(f"view {nm!r}", v)
    checks.check_same_rows(list(self.view_names), views)
    labels = to_multihot(self.labels)
    checks.check_labels("labels", labels, rows=views[0].shape[0])
    object.__setattr__(self, "views", views)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "view_names", tuple(self.view_names))

  @property
  def num_items(self) -> int:
    return int(self.labels.shape[0])

  @property
  def num_modalities(self) -> int:
    return len(self.views)

  @property
  def num_classes(self) -> int:
    return int(self.labels.shape[1])

  def subset(self, indices: np.ndarray) -> "MultiModalData":
    """Rows ``indices`` of every view and of the labels."""
    indices = np.asarray(indices)
    return dataclasses.replace(
        self, views=tuple(v[indices] for v in self.views),
        labels=self.labels[indices])

  def select_views(self, names_or_ids: Sequence[str | int]) -> "MultiModalData":
    """Keeps the given views (by name or position), in that order."""
    ids = []
    for v in names_or_ids:
      if isinstance(v, str):
        if v not in self.view_names:
          raise ValueError(f"unknown view {v!r}; have {self.view_names}.")
        ids.append(self.view_names.index(v))
      else:
        if not 0 <= int(v) < self.num_modalities:
          raise ValueError(f"view index {v} out of range [0, {self.num_modalities}).")
        ids.append(int(v))
    return dataclasses.replace(
        self, views=tuple(self.views[i] for i in ids),
        view_names=tuple(self.view_names[i] for i in ids))


class RetrievalSplit(NamedTuple):
  """Train / query / database parts of one data set (same views in each)."""

  train: MultiModalData
  query: MultiModalData
  database: MultiModalData
