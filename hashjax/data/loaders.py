"""Loaders for feature-matrix data sets: the shipped real data and generic files.

Every loader returns float32 views and uint8 multi-hot labels inside a
:class:`~hashjax.data.core.MultiModalData` (or a
:class:`~hashjax.data.core.RetrievalSplit` where the data set has a fixed split).
``path=None`` reads the copy packaged in ``hashjax/data/files`` (see its README for
provenance and licences).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from hashjax.data import _io
from hashjax.data.core import MultiModalData, RetrievalSplit

__all__ = [
    "UCI_MFEAT_VIEWS",
    "load_feature_file",
    "load_mirflickr_tags",
    "load_uci_mfeat",
    "load_wikipedia",
]

UCI_MFEAT_VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")

PathLike = str | os.PathLike


def _labels_to_multihot(labels: np.ndarray, *, num_classes: int | None,
                        label_offset: int, where: str) -> np.ndarray:
  """Class ids ``[n]`` / ``[n, 1]`` (minus ``label_offset``) or multi-hot ``[n, C]``."""
  arr = np.asarray(labels)
  if arr.ndim == 2 and arr.shape[1] == 1:
    arr = arr[:, 0]
  if arr.size == 0:
    raise ValueError(f"{where}: labels are empty (shape {np.shape(labels)}).")
  if arr.dtype.kind not in "biuf":
    raise ValueError(f"{where}: labels must be numeric, got dtype {arr.dtype}.")
  if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
    raise ValueError(f"{where}: labels contain NaN or inf.")
  if arr.ndim == 1:
    if not np.all(arr == np.round(arr)):
      raise ValueError(f"{where}: class-id labels must be integers.")
    ids = arr.astype(np.int64) - int(label_offset)
    hi = None if num_classes is None else int(num_classes)
    if ids.min() < 0 or (hi is not None and ids.max() >= hi):
      rng = (f"[{label_offset}, {label_offset + hi - 1}]" if hi is not None
             else f">= {label_offset}")
      raise ValueError(
          f"{where}: class ids out of range: expected {rng}, got min "
          f"{int(arr.min())}, max {int(arr.max())}.")
    c = int(ids.max()) + 1 if hi is None else hi
    out = np.zeros((ids.shape[0], c), np.uint8)
    out[np.arange(ids.shape[0]), ids] = 1
    return out
  if arr.ndim == 2:
    if label_offset:
      raise ValueError(
          f"{where}: label_offset={label_offset} applies to class-id labels only, "
          f"got multi-hot labels of shape {arr.shape}.")
    if not np.all((arr == 0) | (arr == 1)):
      bad = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
      raise ValueError(
          f"{where}: multi-hot labels must be 0 or 1, found values such as "
          f"{bad.tolist()}.")
    if num_classes is not None and arr.shape[1] != num_classes:
      raise ValueError(
          f"{where}: expected {num_classes} classes, labels have shape {arr.shape}.")
    return arr.astype(np.uint8)
  raise ValueError(
      f"{where}: labels must be [n], [n, 1] or [n, C], got shape {arr.shape}.")


def _build(views: Mapping[str, np.ndarray], labels: np.ndarray, *,
           num_classes: int | None, label_offset: int, name: str,
           where: str) -> MultiModalData:
  """Validates raw arrays and wraps them as float32 views + uint8 labels."""
  out = []
  for nm, v in views.items():
    arr = np.asarray(v)
    if arr.dtype.kind not in "biuf":
      raise ValueError(f"{where}: view {nm!r} must be numeric, got dtype {arr.dtype}.")
    if arr.ndim != 2:
      raise ValueError(
          f"{where}: view {nm!r} must be a 2-D [n, d] matrix, got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
      raise ValueError(
          f"{where}: view {nm!r} is empty (shape {arr.shape}); every modality needs "
          "at least one item and one feature.")
    out.append(arr.astype(np.float32))
  rows = {nm: a.shape[0] for nm, a in zip(views, out)}
  if len(set(rows.values())) > 1:
    raise ValueError(f"{where}: views have different row counts {rows}.")
  y = _labels_to_multihot(labels, num_classes=num_classes,
                          label_offset=label_offset, where=where)
  n = out[0].shape[0]
  if y.shape[0] != n:
    raise ValueError(
        f"{where}: labels have {y.shape[0]} rows but the views have {n} items.")
  try:
    return MultiModalData(views=tuple(out), labels=y, view_names=tuple(views),
                          name=name)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from e


def load_feature_file(
    path: PathLike,
    *,
    view_keys: Sequence[str],
    label_key: str,
    view_names: Sequence[str] | None = None,
    num_classes: int | None = None,
    label_offset: int = 0,
    name: str | None = None,
) -> MultiModalData:
  """Loads "one feature matrix per modality + labels" from a .mat or .npz file.

  Args:
    path: a ``.mat`` (MATLAB v5/v7) or ``.npz`` file.
    view_keys: keys of the M feature matrices, each ``[n, d_m]`` (rows = items).
    label_key: key of the labels: class ids ``[n]`` / ``[n, 1]`` or multi-hot
      ``[n, C]``.
    view_names: names of the views (default: ``view_keys``).
    num_classes: C; class ids must then lie in ``[0, C)`` after the offset
      (default: ``max + 1``, or the width of multi-hot labels).
    label_offset: subtracted from class ids, e.g. 1 for MATLAB labels ``1..C``.
    name: data set name (default: the file stem).

  Returns:
    ``MultiModalData`` with float32 views and uint8 ``[n, C]`` labels.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: a key is missing, a view is not a non-empty 2-D numeric matrix,
      holds NaN/inf, row counts differ, or labels are out of range.
  """
  view_keys = list(view_keys)
  if not view_keys:
    raise ValueError("view_keys must name at least one feature matrix.")
  if len(set(view_keys)) != len(view_keys):
    raise ValueError(f"view_keys has duplicates: {view_keys}.")
  names = list(view_keys if view_names is None else view_names)
  if len(names) != len(view_keys):
    raise ValueError(
        f"{len(view_keys)} view_keys but {len(names)} view_names were given.")
  if len(set(names)) != len(names):
    raise ValueError(f"view_names has duplicates: {names}.")
  with _io.resolve_path(path, None) as p:
    arrays = _io.read_arrays(p, [*view_keys, label_key])
    where = str(p)
    stem = p.stem
  return _build({nm: arrays[k] for nm, k in zip(names, view_keys)},
                arrays[label_key], num_classes=num_classes,
                label_offset=label_offset, name=stem if name is None else name,
                where=where)


def load_wikipedia(path: PathLike | None = None) -> RetrievalSplit:
  """The Wikipedia image-text benchmark (Rasiwasia et al. 2010), fixed split.

  Views ``("image", "text")``: 128-d SIFT bag-of-words and 10-d LDA topic features;
  10 single-label classes (file ids ``1..10``, as multi-hot ``[n, 10]``).
  The standard protocol: train = database = the training set (2173 items),
  query = the test set (693 items).

  Args:
    path: a ``wikiData.mat`` with keys ``I_tr, T_tr, L_tr, I_te, T_te, L_te``;
      ``None`` reads the packaged copy.

  Returns:
    ``RetrievalSplit(train, query, database)`` with ``train is database``.
  """
  keys = ["I_tr", "T_tr", "L_tr", "I_te", "T_te", "L_te"]
  with _io.resolve_path(path, "wikipedia.mat") as p:
    a = _io.read_arrays(p, keys)
    where = str(p)
  parts = {}
  for part in ("tr", "te"):
    parts[part] = _build(
        {"image": a[f"I_{part}"], "text": a[f"T_{part}"]}, a[f"L_{part}"],
        num_classes=10, label_offset=1, name="wikipedia",
        where=f"{where} ({'train' if part == 'tr' else 'test'})")
  return RetrievalSplit(train=parts["tr"], query=parts["te"], database=parts["tr"])


def load_uci_mfeat(path: PathLike | None = None,
                   views: Sequence[str] | None = None) -> MultiModalData:
  """UCI Multiple Features (handwritten digits 0..9): six views of 2000 items.

  Views ``fac`` (216-d), ``fou`` (76), ``kar`` (64), ``mor`` (6), ``pix`` (240),
  ``zer`` (47); 200 items per class, rows ordered by class. No fixed split.

  Args:
    path: an ``.npz`` with the six view keys and ``labels`` (0..9); ``None`` reads
      the packaged copy.
    views: view names to keep, in this order (default: all six).

  Returns:
    ``MultiModalData`` with 2000 items and 10 classes.
  """
  keep = list(UCI_MFEAT_VIEWS if views is None else views)
  unknown = [v for v in keep if v not in UCI_MFEAT_VIEWS]
  if unknown or not keep or len(set(keep)) != len(keep):
    raise ValueError(
        f"views must be distinct names from {UCI_MFEAT_VIEWS}, got {keep}.")
  with _io.resolve_path(path, "uci_mfeat.npz") as p:
    a = _io.read_arrays(p, [*keep, "labels"])
    where = str(p)
  return _build({v: a[v] for v in keep}, a["labels"], num_classes=10,
                label_offset=0, name="uci_mfeat", where=where)


def load_mirflickr_tags(yall_path: PathLike | None = None,
                        lall_path: PathLike | None = None) -> MultiModalData:
  """MIRFlickr-25K (20,015-item subset): tag bag-of-words + 24 concept labels.

  A single view ``"text"``: ``[20015, 1386]`` binary tag occurrences (float32).
  The image features of this subset are not available, so this is uni-modal data
  (text towers, label-similarity losses, metrics at realistic scale).

  Args:
    yall_path: ``.mat`` with key ``YAll`` ``[n, 1386]``; ``None``: packaged copy.
    lall_path: ``.mat`` with key ``LAll`` ``[n, 24]`` multi-hot; ``None``: packaged.

  Returns:
    ``MultiModalData`` with one view and 24 classes.
  """
  with _io.resolve_path(yall_path, "mirflickr25k_yall.mat") as p:
    y = _io.read_arrays(p, ["YAll"])["YAll"]
    where = str(p)
  with _io.resolve_path(lall_path, "mirflickr25k_lall.mat") as p:
    labels = _io.read_arrays(p, ["LAll"])["LAll"]
    where += f" + {p}"
  return _build({"text": y}, labels, num_classes=24, label_offset=0,
                name="mirflickr_tags", where=where)
