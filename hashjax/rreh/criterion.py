"""Label-free choice of RREH's hyper-parameters (issue 18.1).

RREH is unsupervised, so its users have no labels to tune on. The criterion uses
only the pairing: hold out a share of the paired items (``folds`` disjoint shares),
fit every grid point on the rest with the held-out items moved to the unpaired
sets of every modality (so the model sees their features but not their
correspondence), and score how well each held-out item's code in one modality
retrieves its own counterpart among the held-out codes of another modality by
Hamming distance: the mean reciprocal rank (ties count half, so collapsed codes
score low), averaged over both directions of every modality pair and over folds.

The held-out items' codes are rows of the solver's own B (``sign(Phi W)`` of the
training rows, the same as :func:`hashjax.rreh.encode`), and the continuous grid
points of one fold run in one program (:func:`hashjax.rreh.run_grid`).

The pair criterion measures instance matching, not class structure, and it cannot
choose lambda: smaller ridges match held-out instances better while class-level
retrieval gets worse, and the more items are paired the stronger that pull (issue 18,
experiments/results/rreh_select_eval.md: with every UCI fac+kar item paired it picked
smaller ridges at 0.60 test mAP where lam 1e-2 gave 0.71, mean of 3 seeds). The former
one-standard-error rule towards large lam helped at 10% paired, where three folds of
~30 held-out items give a wide standard error, but became the plain argmax at 30% and
100% paired.
:func:`choose` therefore does not score lambda: it keeps the rows of the largest lam
(the most regularised) and takes the best score among them (theta and init_v). The
rule was chosen on validation mAP from the database side only, never on test
queries: at 10% paired it is level with the former rule (mean validation mAP 0.5212
against 0.5218 over 16 data sets x 3 seeds; 0.0011 lower on test), at 30% and 100%
paired (3 UCI pairs + Wikipedia, 3 seeds) 0.030 and 0.091 higher. It does not fix
the start of V: on UCI kar+pix the criterion prefers pca, 0.16 below gaussian there.

View weights (``view_weights="auto"``, issue 18.7, docs/rreh.md#weights): with
the chosen grid point fixed, a few weight vectors are scored by the same criterion
on the same folds: uniform, each view down-weighted to :data:`DOWN_WEIGHT`, and
weights proportional to each view's held-out pair MRR under the uniform fit
(:func:`view_quality`, label-free). Their candidates come from
:func:`weight_candidates`; the best mean score wins, ties going to uniform.

The driver is
:func:`hashjax.rreh.select` (in :mod:`hashjax.rreh.api`); this module holds the
criterion and the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DOWN_WEIGHT", "FIXED", "GRID", "SELECT_KEYS", "STUDY_GRID", "choose",
           "grid_points", "hamming_mrr", "pair_score", "view_quality",
           "weight_candidates"]

# Keys chosen by the criterion when the config leaves them None.
SELECT_KEYS = ("theta", "lam", "init_v")
# The grid of the selection studies (experiments/rreh_select*.py): theta and lam are
# relative ridges (see RREHHyper).
STUDY_GRID: dict[str, tuple] = {"theta": (0.03, 0.3, 3.0),
                                "lam": (1e-4, 1e-3, 1e-2),
                                "init_v": ("gaussian", "pca")}
# The default search grid: STUDY_GRID at its largest lam only. :func:`choose` keeps
# the largest lam whatever the scores, so fitting the smaller ones would change
# nothing but the cost (3x).
GRID: dict[str, tuple] = {**STUDY_GRID, "lam": (max(STUDY_GRID["lam"]),)}
# Values used for keys left None when selection is switched off (select=False): the
# grid point closest to the label-based best on every study record so far
# (experiments/results/rreh_select.md; chosen with test labels, so a fixed default,
# not a selection method).
FIXED: dict[str, Any] = dict(theta=0.03, lam=1e-2, init_v="pca")
# Weight of the down-weighted view in the "down" candidates (the others 1, before
# normalising to sum M).
DOWN_WEIGHT = 0.1


def hamming_mrr(query: np.ndarray, database: np.ndarray) -> float:
  """Mean reciprocal rank of row i of ``database`` for query row i, by Hamming distance.

  Ties with the true item count half (the expected rank under random tie breaking),
  so codes that collapse to one value score about ``2 / (h + 1)``, not 1.

  Args:
    query: ``[h, b]`` codes in {-1, +1}.
    database: ``[h, b]`` codes in {-1, +1}; row i is query i's counterpart.

  Returns:
    MRR in (0, 1].
  """
  q = np.asarray(query, np.float64)
  d = np.asarray(database, np.float64)
  dist = (q.shape[1] - q @ d.T) / 2.0                       # [h, h] Hamming
  true = np.diag(dist)[:, None]
  closer = np.sum(dist < true, axis=1)
  ties = np.sum(dist == true, axis=1) - 1
  return float(np.mean(1.0 / (1.0 + closer + 0.5 * ties)))


def pair_score(codes: Sequence[np.ndarray]) -> float:
  """Mean :func:`hamming_mrr` over every ordered pair of modalities ``a != b``."""
  m = len(codes)
  return float(np.mean([hamming_mrr(codes[a], codes[b])
                        for a in range(m) for b in range(m) if a != b]))


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
  """Every combination of ``grid`` (``{key: values}``), in ``itertools.product`` order."""
  keys = list(grid)
  return [dict(zip(keys, v)) for v in itertools.product(*(grid[k] for k in keys))]


def choose(table: Sequence[Mapping[str, Any]]) -> int:
  """Index of the chosen grid point: the largest ``lam``, then the best score.

  Args:
    table: one row per grid point with ``score`` (mean over folds; -inf where the
      fit was not finite) and optionally ``lam``.

  Returns:
    the row index: among the rows with a finite score (every row if none has one),
    those of the largest ``lam`` (all of them when there is no ``lam``), the highest
    score, then the first in grid order. lam is not scored (module docstring).
  """
  scores = np.asarray([r["score"] for r in table], np.float64)
  rows = [j for j in range(len(table)) if np.isfinite(scores[j])] or list(
      range(len(table)))
  lam = {j: float(table[j].get("lam", 0.0)) for j in rows}
  top = max(lam.values())
  return min((j for j in rows if lam[j] == top), key=lambda j: (-scores[j], j))


def view_quality(codes: Sequence[np.ndarray]) -> np.ndarray:
  """Label-free quality of every view: its mean held-out pair MRR with the others.

  Args:
    codes: M arrays ``[h, b]``, the held-out items' codes in every view (row i the
      same item).

  Returns:
    ``[M]``: for view i the mean over ``j != i`` of
    ``(hamming_mrr(codes[i], codes[j]) + hamming_mrr(codes[j], codes[i])) / 2``.
  """
  m = len(codes)
  mrr = np.zeros((m, m))
  for a in range(m):
    for b in range(m):
      if a != b:
        mrr[a, b] = hamming_mrr(codes[a], codes[b])
  sym = (mrr + mrr.T) / 2.0
  return sym.sum(axis=1) / (m - 1)


def _normalise(w: np.ndarray) -> tuple[float, ...]:
  w = np.asarray(w, np.float64)
  return tuple(float(x) for x in w * (w.size / w.sum()))


def weight_candidates(m: int, quality: np.ndarray | None = None
                      ) -> list[tuple[str, tuple[float, ...]]]:
  """The non-uniform view-weight candidates, normalised to sum to M.

  Args:
    m: number of views M.
    quality: ``[M]`` positive per-view scores (:func:`view_quality`), or None.

  Returns:
    ``[(name, weights)]``: ``down_i`` (view i at :data:`DOWN_WEIGHT`, the others 1)
    for every view, then ``quality`` (weights proportional to ``quality``) when it is
    given, positive and not uniform.
  """
  out = []
  for i in range(m):
    w = np.ones(m)
    w[i] = DOWN_WEIGHT
    out.append((f"down_{i}", _normalise(w)))
  if quality is not None:
    q = np.asarray(quality, np.float64)
    if np.all(np.isfinite(q)) and np.all(q > 0) and np.ptp(q) > 0:
      out.append(("quality", _normalise(q)))
  return out
