"""Seeded index splits: semi-paired (RREH), query / train / database (DCGH), validation.

All functions return int64 index arrays and draw from ``np.random.default_rng(seed)``
only, so the same seed always gives the same split (no global NumPy state).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hashjax import checks
from hashjax.data.core import MultiModalData

__all__ = [
    "SEMI_PAIRED_MODES",
    "VALIDATION_SOURCES",
    "HeldOutSplit",
    "SemiPairedSplit",
    "apply_semi_paired",
    "deal_image_text",
    "deal_validation",
    "labelled_positions",
    "query_database_split",
    "semi_paired_split",
    "train_validation_split",
    "validation_positions",
]

SEMI_PAIRED_MODES = ("disjoint", "shuffled")


class SemiPairedSplit(NamedTuple):
  """Which training items keep which modalities.

  Attributes:
    paired: int64 ``[n_p]`` sorted indices of items that keep every modality.
    unpaired: M int64 arrays; ``unpaired[m]`` ``[n_u_m]`` are the items seen in
      modality m only (``'disjoint'``: sorted, disjoint across modalities;
      ``'shuffled'``: all non-paired items, each modality in its own random order).
  """

  paired: np.ndarray
  unpaired: tuple[np.ndarray, ...]


def _check_num_items(num_items: Any) -> int:
  return checks.check_positive_int("num_items", num_items)


def _check_count(name: str, value: Any, *, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an integer, got {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  return int(value)


def _check_seed(seed: Any) -> int:
  return _check_count("seed", seed, minimum=0)


def semi_paired_split(num_items: int, paired_ratio: float, num_modalities: int,
                      mode: str = "disjoint", seed: int = 0) -> SemiPairedSplit:
  """Splits training items into paired and per-modality unpaired parts (docs/rreh.md).

  ``n_p = max(1, round(paired_ratio * num_items))`` items, drawn by a seeded
  permutation, keep every modality. The remaining ``n - n_p`` items:

  * ``'disjoint'``: dealt out over the M modalities, disjoint, sizes as equal as
    possible (the first ``(n - n_p) % M`` modalities get one more); each sorted.
  * ``'shuffled'``: every modality gets all of them, each in an independent random
    order, so row i of modality a and row i of modality b are (in general)
    different items: the correspondence is destroyed.

  Args:
    num_items: n >= 1 training items.
    paired_ratio: r in (0, 1]; 1.0 gives empty unpaired arrays.
    num_modalities: M >= 2.
    mode: ``'disjoint'`` or ``'shuffled'``.
    seed: seed of ``np.random.default_rng``.

  Returns:
    ``SemiPairedSplit(paired [n_p], unpaired (M arrays))``, int64.
  """
  n = _check_num_items(num_items)
  if isinstance(paired_ratio, bool) or not isinstance(
      paired_ratio, (int, float, np.integer, np.floating)):
    raise ValueError(f"paired_ratio must be a number in (0, 1], got {paired_ratio!r}.")
  r = float(paired_ratio)
  if not (np.isfinite(r) and 0.0 < r <= 1.0):
    raise ValueError(f"paired_ratio must be in (0, 1], got {paired_ratio}.")
  m = _check_count("num_modalities", num_modalities, minimum=2)
  if mode not in SEMI_PAIRED_MODES:
    raise ValueError(f"mode must be one of {SEMI_PAIRED_MODES}, got {mode!r}.")
  seed = _check_seed(seed)

  rng = np.random.default_rng(seed)
  perm = rng.permutation(n).astype(np.int64)
  n_p = min(n, max(1, int(round(r * n))))
  paired = np.sort(perm[:n_p])
  rest = perm[n_p:]
  if mode == "disjoint":
    unpaired = tuple(np.sort(part) for part in np.array_split(rest, m))
  else:
    rest = np.sort(rest)
    unpaired = tuple(rng.permutation(rest) for _ in range(m))
  return SemiPairedSplit(paired=paired,
                         unpaired=tuple(u.astype(np.int64) for u in unpaired))


def _check_indices(name: str, idx: Any, n: int) -> np.ndarray:
  arr = np.asarray(idx)
  if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
    raise ValueError(
        f"{name} must be a 1-D integer index array, got shape {arr.shape}, "
        f"dtype {arr.dtype}.")
  if arr.size and (arr.min() < 0 or arr.max() >= n):
    raise ValueError(
        f"{name} indices must lie in [0, {n}), got min {arr.min()}, max {arr.max()}.")
  return arr.astype(np.int64)


def apply_semi_paired(
    data: MultiModalData, split: SemiPairedSplit
) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Cuts every view into its paired rows and its unpaired rows.

  Args:
    data: M views ``[n, d_m]``.
    split: from :func:`semi_paired_split` with ``num_items = n`` and M modalities.

  Returns:
    ``(paired_views, unpaired_views)``: ``paired_views[m]`` ``[n_p, d_m]`` (the same
    items, in the same order, in every modality) and ``unpaired_views[m]``
    ``[n_u_m, d_m]`` (possibly ``[0, d_m]``).
  """
  if not isinstance(data, MultiModalData):
    raise ValueError(f"data must be a MultiModalData, got {type(data).__name__}.")
  if len(split.unpaired) != data.num_modalities:
    raise ValueError(
        f"split has {len(split.unpaired)} modalities but data has "
        f"{data.num_modalities} views {data.view_names}.")
  n = data.num_items
  paired = _check_indices("split.paired", split.paired, n)
  if paired.size == 0:
    raise ValueError("split.paired is empty; at least one paired item is needed.")
  unpaired = [_check_indices(f"split.unpaired[{m}]", u, n)
              for m, u in enumerate(split.unpaired)]
  for nm, v in zip(data.view_names, data.views):
    if v.shape[1] == 0:
      raise ValueError(f"view {nm!r} has no feature columns (shape {v.shape}).")
  paired_views = [v[paired] for v in data.views]
  unpaired_views = [v[u] for v, u in zip(data.views, unpaired)]
  return paired_views, unpaired_views


def _permutation(n: int, seed: int, legacy_rng: bool) -> np.ndarray:
  if legacy_rng:
    # np.random.seed(seed); np.random.permutation(n), as in the DCHMT/DCGH code.
    return np.random.RandomState(seed).permutation(n).astype(np.int64)
  return np.random.default_rng(seed).permutation(n).astype(np.int64)


def query_database_split(
    num_items: int, *, num_query: int, num_train: int, seed: int,
    legacy_rng: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The DCGH / DCHMT protocol: query, train and retrieval database indices.

  ``perm = default_rng(seed).permutation(n)``; query = ``perm[:num_query]``,
  train = ``perm[num_query:num_query + num_train]``, database = ``perm[num_query:]``
  (every non-query item, so train is inside the database).

  Args:
    num_items: n.
    num_query: >= 1 query items.
    num_train: >= 1 training items; ``num_query + num_train <= n``.
    seed: permutation seed (DCGH uses 1818).
    legacy_rng: use ``np.random.RandomState(seed).permutation`` instead, which
      reproduces the reference code's exact split (``np.random.seed`` +
      ``np.random.permutation``) for files in the same row order.

  Returns:
    ``(query_idx [num_query], train_idx [num_train], database_idx [n - num_query])``,
    int64, in permutation order.
  """
  n = _check_num_items(num_items)
  q = _check_count("num_query", num_query, minimum=1)
  t = _check_count("num_train", num_train, minimum=1)
  if q + t > n:
    raise ValueError(
        f"num_query + num_train = {q} + {t} = {q + t} exceeds num_items = {n}.")
  perm = _permutation(n, _check_seed(seed), legacy_rng)
  return perm[:q], perm[q:q + t], perm[q:]


def train_validation_split(num_items: int, *, num_validation: int,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Holds ``num_validation`` items out of a training set.

  ``perm = default_rng(seed).permutation(n)``; validation = ``perm[:num_validation]``,
  train = ``perm[num_validation:]``.

  Args:
    num_items: n training items.
    num_validation: 1 <= num_validation < n.
    seed: permutation seed.

  Returns:
    ``(train_idx [n - num_validation], val_idx [num_validation])``, int64, in
    permutation order.
  """
  n = _check_num_items(num_items)
  v = _check_count("num_validation", num_validation, minimum=1)
  if v >= n:
    raise ValueError(
        f"num_validation must be < num_items = {n} (leave training items), got {v}.")
  perm = _permutation(n, _check_seed(seed), False)
  return perm[v:], perm[:v]


# ----------------------------------------------------------------------------- held out

VALIDATION_SOURCES = ("train", "rest")


class HeldOutSplit(NamedTuple):
  """Training, validation-query, query and database items (validation held out).

  Validation queries retrieve from ``train``; test queries from ``database``. The
  items are any containers with ``subset`` (:class:`MultiModalData`,
  :class:`hashjax.data.ImageTextData`).
  """

  train: Any
  validation: Any
  query: Any
  database: Any


def validation_positions(num_train: int, rest: np.ndarray, *, num_validation: int,
                         source: str = "train", seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Where the validation queries come from.

  Args:
    num_train: number of training items.
    rest: int64 ``[r]`` database items outside the training set.
    num_validation: validation queries (>= 1: DCGH selects its model on them).
    source: ``"train"`` (a seeded draw of the training items, removed from training)
      or ``"rest"`` (the first ``num_validation`` of ``rest``; training intact).
    seed: seed of the ``"train"`` draw.

  Returns:
    ``(training positions [num_train - v], validation ids [v])``: with ``"train"``
    both index the training items; with ``"rest"`` the second holds items of ``rest``.
  """
  num_val = int(num_validation or 0)
  if num_val <= 0:
    raise ValueError("DCGH selects the model on a validation split: set "
                     "config.validation.num_items >= 1.")
  if source == "train":
    return train_validation_split(num_train, num_validation=num_val, seed=int(seed))
  if source == "rest":
    if num_val > rest.size:
      raise ValueError(f"validation.num_items = {num_val} but only {rest.size} "
                       "database items are outside the training set.")
    return np.arange(num_train), rest[:num_val]
  raise ValueError(f"validation.source must be one of {VALIDATION_SOURCES}, got "
                   f"{source!r}.")


def deal_validation(train: Any, query: Any, database: Any, *, num_validation: int,
                    seed: int = 0) -> HeldOutSplit:
  """Holds ``num_validation`` seeded training items out as validation queries."""
  tr_pos, val_pos = validation_positions(train.num_items, np.zeros(0, np.int64),
                                         num_validation=num_validation, seed=seed)
  return HeldOutSplit(train=train.subset(tr_pos), validation=train.subset(val_pos),
                      query=query, database=database)


def labelled_positions(num_items: int, fraction: float, *, seed: int) -> np.ndarray:
  """The training items that keep their labels (a supervised method's label budget).

  ``perm = default_rng(seed).permutation(n)``; the labelled items are the first
  ``m = max(2, floor(fraction * n + 0.5))`` of ``perm`` (at most n; rounded half
  up), returned sorted (so
  ``fraction = 1`` gives ``arange(n)``, the full training set in its order). Every
  fraction takes a prefix of the same permutation: for one seed the subsets are nested
  (the 1% set lies inside the 5% set, ...). At least 2 items, so that one can be held
  out for validation.

  Args:
    num_items: n training items (>= 2).
    fraction: in (0, 1].
    seed: permutation seed.

  Returns:
    int64 ``[m]`` sorted positions into the training items.
  """
  n = _check_num_items(num_items)
  f = float(fraction)
  if not 0.0 < f <= 1.0:
    raise ValueError(f"label fraction must be in (0, 1], got {fraction!r}.")
  if n < 2:
    raise ValueError(f"labelled_positions needs >= 2 training items, got {n}.")
  m = min(n, max(2, int(np.floor(f * n + 0.5))))   # rounded half up
  perm = _permutation(n, _check_seed(seed), False)
  return np.sort(perm[:m])


def deal_image_text(data: Any, *, num_query: int, num_train: int | None, seed: int,
                    legacy_rng: bool = False, num_validation: int,
                    validation_source: str = "train", validation_seed: int = 0
                    ) -> HeldOutSplit:
  """Query / train / database by :func:`query_database_split`, then validation.

  Args:
    data: n items with ``subset`` (e.g. :class:`hashjax.data.ImageTextData`).
    num_query: query items.
    num_train: training items (None: every non-query item, less the validation items
      when they come from ``"rest"``).
    seed: split seed; ``legacy_rng``: NumPy's global-state permutation (reference).
    num_validation: validation queries.
    validation_source: ``"train"`` or ``"rest"`` (see :func:`validation_positions`).
    validation_seed: seed of the ``"train"`` draw.

  Returns:
    :class:`HeldOutSplit`; the database is every non-query item.
  """
  n = data.num_items
  num_query = int(num_query)
  if num_train is None:
    num_train = n - num_query
    if validation_source == "rest":
      num_train -= int(num_validation or 0)
  q_idx, t_idx, db_idx = query_database_split(
      n, num_query=num_query, num_train=int(num_train), seed=int(seed),
      legacy_rng=bool(legacy_rng))
  rest = db_idx[t_idx.size:]
  tr_pos, val_sel = validation_positions(
      t_idx.size, rest, num_validation=num_validation, source=validation_source,
      seed=validation_seed)
  if validation_source == "train":
    val_idx, train_idx = t_idx[val_sel], t_idx[tr_pos]
  else:
    val_idx, train_idx = val_sel, t_idx
  return HeldOutSplit(train=data.subset(train_idx), validation=data.subset(val_idx),
                      query=data.subset(q_idx), database=data.subset(db_idx))
