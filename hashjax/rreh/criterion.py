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
points of one fold run in one program (:func:`hashjax.rreh.run_grid`). The driver is
:func:`hashjax.rreh.select` (in :mod:`hashjax.rreh.api`); this module holds the
criterion and the grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FIXED", "GRID", "SELECT_KEYS", "grid_points", "hamming_mrr", "pair_score"]

# Keys chosen by the criterion when the config leaves them None.
SELECT_KEYS = ("theta", "lam", "init_v")
# The default search grid (theta and lam are relative ridges, see RREHHyper).
GRID: dict[str, tuple] = dict(theta=(0.03, 0.3, 3.0), lam=(1e-4, 1e-3, 1e-2),
                              init_v=("gaussian", "pca"))
# Values used for keys left None when selection is switched off (select=False).
FIXED: dict[str, Any] = dict(theta=0.3, lam=1e-3, init_v="pca")


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
