"""Label-free choice of RREH's hyper-parameters (issue 18.1).

RREH is unsupervised, so its users have no labels to tune on. The criteria use only
the pairing: hold out a share of the paired items (``folds`` disjoint shares), fit
every grid point on the rest with the held-out items moved to the unpaired sets of
every modality (so the model sees their features but not their correspondence),
and score the held-out items' codes (rows of the solver's own B, ``sign(Phi W)``
of the training rows, the same as :func:`hashjax.rreh.encode`; the continuous grid
points of one fold run in one program, :func:`hashjax.rreh.run_grid`):

* ``"neighbourhood"`` (the default, :func:`neighbourhood_score`): each held-out
  item's code in modality a ranks every item of modality b by Hamming distance
  (kept paired, unpaired and held-out rows; a random sample of
  :data:`MAX_SAMPLE_ROWS` when there are more; ties in random order), and the
  relevant items are the :data:`NEIGHBOUR_SHARE` of b's items nearest to the held-out
  item's own row in b (Euclidean on the features, every column standardised:
  :func:`neighbour_sets`). The score is the mean average precision over queries,
  ordered modality pairs and folds. It asks whether a query lands among items like
  its counterpart, which is what class-level retrieval rewards, and it uses the
  unpaired items.
* ``"pair"`` (:func:`pair_score`, the default until 2026-12-05): the mean reciprocal
  rank with which a held-out item's code finds its own counterpart among the
  held-out codes (ties count half, so collapsed codes score low). It measures
  instance matching and sees ~30 items per fold at 10% paired on UCI.

Evidence (experiments/rreh_criterion_study.py refits the folds of the evaluation's
16 data sets x 3 seeds at 10% paired and scores every STUDY_GRID point by several
criteria; compared by the validation mAP of their pick, database labels only):
with lam fixed at its largest value, the neighbourhood criterion at share 0.1 has a
mean validation regret of 0.0104 against 0.0173 for the pair criterion and 0.0135
for the fixed point; shares 0.05 / 0.2 gave 0.0146 / 0.0170, and neighbours found
in the kernel features instead of the raw ones 0.0164. Every data set there has 10
classes, so the share of 0.1 is also their class share.

Neither criterion can choose lambda: smaller ridges match held-out items better
while class-level retrieval gets worse, and the more items are paired the stronger
that pull (experiments/results/rreh_select_eval.md: with every UCI fac+kar item
paired the pair MRR picked smaller ridges at 0.60 test mAP where lam 1e-2 gave
0.71; the neighbourhood score's argmax over lam too lost 0.04 validation mAP at
100% paired on the first records of the study). :func:`choose` therefore does not
score lambda: it keeps the rows of the largest lam (the most regularised) and takes
the best score among them (theta and init_v). experiments/rreh_rule_study.py
(2026-12-06) tried ~45 label-free rules for lam offline on the study's stored fold
scores (16 data sets x 3 seeds at 10% paired, 4 x 3 at 30% and 100%): rules that
take a smaller lam only when it beats lam 1e-2 by k standard errors over folds, on
every fold, or by a relative margin; lam by another criterion (pair MRR,
within-modality, other shares); rank averages of two criteria; rules that depend
on the paired ratio. None earned its place: the best in-sample gains at 10% (mean
validation regret 0.0104 -> 0.0087-0.0099) are within the noise (95% bootstrap
intervals over data sets include 0, data sets won = lost), the tuned constants are
not smooth (k = 0.5 good, k = 2 worse than today), and ungated they raise the regret
at 30% / 100% paired. Leave-one-data-set-out tuning keeps 0.0087-0.0095 only for
rules switched on at 10% paired alone (a cut between 10% and 30% that no data here
can place), with 5 data sets won and 5 lost; the other families lose (0.0110-0.0146).
Leave-one-out signals of the W-step ridge (code bits that flip when a row is left
out, PRESS; experiments/rreh_loo_study.py) do not order lam like validation mAP
either.

What does move the 10% gap is a per-view cap of the W ridge tied to the spectrum
(``ridge_cap``, docs/rreh.md#ridge-cap). As a fixed setting it costs Wikipedia at
100% paired, but the criterion tells the two apart: :data:`GRID` holds every point
without and with the cap (kappa 3), scored like theta and init_v. With lam left
None, ``ridge_cap`` left None is searched that way (:func:`free_keys`).
``rreh.fit`` with the library defaults (experiments/results/rreh_select_eval.md,
"What rreh.fit returns", 2026-12-06): at 10% paired 14 of 16 data sets within 0.01
of the labelled pick (mean gap 0.0038; without the cap 11 of 16, 0.0086); at 30%
0.0106 (0.0105), at 100% 0.0070 (0.0068; Wikipedia keeps 0.2267, where the cap
alone gives 0.2143). Selection fits twice the points: 1.39x the time of a fit on
UCI fac+zer, 1.70x on 10,000 training items (side by side,
experiments/benchmarks/results/bench_select_cost.md).

With every item paired (``all_paired``: no unpaired rows in any modality) theta has
no effect on the fit (it only ridges the reconstruction of unpaired rows: the
evaluation's validation and test mAP are identical across theta at 100% paired),
but the selection folds move their held-out items to the unpaired sets, where
theta still sways the score and, through it, init_v. :func:`choose` then keeps the
rows of the smallest theta. Same study, 100% paired: mean validation regret 0.0519
-> 0.0092 (UCI kar+pix 0.171 -> 0 on all 3 seeds: the Gaussian start instead of
PCA at theta 3; fac+kar, fou+zer, Wikipedia unchanged); averaging the score over
theta instead gave 0.0214. Nothing changes when some items are unpaired.
:func:`hashjax.rreh.select` then fits only the smallest theta (about 1.8x faster
on UCI kar+pix at 100% paired, docs/rreh.md#hyper).

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

__all__ = ["CRITERIA", "DOWN_WEIGHT", "FIXED", "GRID", "MAX_QUERIES", "MAX_SAMPLE_ROWS",
           "NEIGHBOUR_SHARE", "SELECT_KEYS", "STUDY_GRID", "average_precision", "choose",
           "free_keys", "grid_points", "hamming_mrr", "neighbour_sets", "neighbourhood_score",
           "pair_score", "smallest_theta", "standardise_columns", "view_quality",
           "weight_candidates"]

# Keys chosen by the criterion when the config leaves them None (ridge_cap only
# together with lam: :func:`free_keys`).
SELECT_KEYS = ("theta", "lam", "init_v", "ridge_cap")
# The grid of the selection studies (experiments/rreh_select*.py): theta and lam are
# relative ridges (see RREHHyper).
STUDY_GRID: dict[str, tuple] = {"theta": (0.03, 0.3, 3.0),
                                "lam": (1e-4, 1e-3, 1e-2),
                                "init_v": ("gaussian", "pca")}
# The default search grid: STUDY_GRID at its largest lam only (:func:`choose` keeps
# the largest lam whatever the scores, so fitting the smaller ones would change
# nothing but the cost, 3x), each point without and with the spectral cap of the W
# ridge (``ridge_cap`` None = no cap, or kappa 3: docs/rreh.md#ridge-cap), which the
# criterion scores like theta and init_v (module docstring).
GRID: dict[str, tuple] = {**STUDY_GRID, "lam": (max(STUDY_GRID["lam"]),),
                          "ridge_cap": (None, 3.0)}
# Values used for keys left None when selection is switched off (select=False): the
# grid point closest to the label-based best on every study record so far
# (experiments/results/rreh_select.md; chosen with test labels, so a fixed default,
# not a selection method).
FIXED: dict[str, Any] = dict(theta=0.03, lam=1e-2, init_v="pca", ridge_cap=None)
# The criteria of :func:`hashjax.rreh.select`: "neighbourhood" (the default) and
# "pair" (held-out pair MRR, the former default).
CRITERIA = ("neighbourhood", "pair")
# Share of a modality's rows that count as a held-out item's neighbours there.
NEIGHBOUR_SHARE = 0.1
# Rows of each modality the neighbourhood criterion retrieves from (all rows when
# there are fewer), and held-out items used as its queries.
MAX_SAMPLE_ROWS = 4096
MAX_QUERIES = 1024
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


def choose(table: Sequence[Mapping[str, Any]], *, all_paired: bool = False) -> int:
  """Index of the chosen grid point: the largest ``lam``, then the best score.

  Args:
    table: one row per grid point with ``score`` (mean over folds; -inf where the
      fit was not finite) and optionally ``lam`` and ``theta``.
    all_paired: every item of the data is paired (no unpaired rows in any
      modality). theta then has no effect on the fit (it only ridges the
      reconstruction of unpaired rows), but the selection folds move their
      held-out items to the unpaired sets, where theta still sways the score and,
      through it, the choice of init_v: only the rows of the smallest theta count
      (module docstring).

  Returns:
    the row index: among the rows with a finite score (every row if none has one),
    those of the largest ``lam`` (all of them when there is no ``lam``), with
    ``all_paired`` those of the smallest ``theta`` among them (all of them when there
    is no ``theta``), the highest score, then the first in grid order. lam is not
    scored (module docstring).
  """
  scores = np.asarray([r["score"] for r in table], np.float64)
  rows = [j for j in range(len(table)) if np.isfinite(scores[j])] or list(
      range(len(table)))
  lam = {j: float(table[j].get("lam", 0.0)) for j in rows}
  top = max(lam.values())
  rows = [j for j in rows if lam[j] == top]
  if all_paired:
    rows = smallest_theta(table, rows)
  return min(rows, key=lambda j: (-scores[j], j))


def free_keys(config: Mapping[str, Any]) -> list[str]:
  """The keys of :data:`SELECT_KEYS` that label-free selection searches for ``config``.

  Those left None, except ``ridge_cap``: it caps the W ridge that ``lam`` sets, so it
  is searched only together with ``lam`` (a given lam keeps its ridge uncapped unless
  ``ridge_cap`` is given too).
  """
  free = [k for k in SELECT_KEYS if config.get(k) is None]
  if "lam" not in free and "ridge_cap" in free:
    free.remove("ridge_cap")
  return free


def smallest_theta(table: Sequence[Mapping[str, Any]],
                   rows: Sequence[int] | None = None) -> list[int]:
  """The rows (default: all) of ``table`` with the smallest ``theta`` among them
  (all of them when there is no ``theta``): the only ones that count when every
  item is paired (:func:`choose`; :func:`hashjax.rreh.select` fits only these)."""
  rows = range(len(table)) if rows is None else rows
  theta = {j: float(table[j].get("theta", 0.0)) for j in rows}
  low = min(theta.values())
  return [j for j in rows if theta[j] == low]


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


def standardise_columns(x: np.ndarray) -> np.ndarray:
  """``[s, d]`` float64, every column shifted to mean 0 and scaled to std 1 (a
  constant column becomes 0)."""
  x = np.asarray(x, np.float64)
  sd = x.std(axis=0)
  return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def neighbour_sets(features: np.ndarray, queries: np.ndarray,
                   share: float = NEIGHBOUR_SHARE) -> np.ndarray:
  """Which rows are among the ``share`` nearest to each query row.

  Args:
    features: ``[s, d]`` rows (standardised: :func:`standardise_columns`).
    queries: int ``[h]`` query rows (indices into ``features``).
    share: share of the ``s`` rows that are neighbours (at least 2: the query row
      itself and one more).

  Returns:
    bool ``[h, s]``: row j is among the ``max(2, round(share * s))`` rows of least
    Euclidean distance to row ``queries[q]`` (ties at the boundary: any of them).
  """
  x = np.asarray(features, np.float64)
  s = x.shape[0]
  k = min(s, max(2, int(round(share * s))))
  q = x[np.asarray(queries)]
  d2 = (q * q).sum(1)[:, None] - 2.0 * q @ x.T + (x * x).sum(1)[None, :]
  d2[np.arange(q.shape[0]), np.asarray(queries)] = -np.inf   # the row itself first
  near = np.argpartition(d2, k - 1, axis=1)[:, :k]
  out = np.zeros(d2.shape, bool)
  np.put_along_axis(out, near, True, axis=1)
  return out


def average_precision(query: np.ndarray, database: np.ndarray,
                      relevant: np.ndarray) -> float:
  """Mean average precision of Hamming ranking against given relevance.

  Args:
    query: ``[h, b]`` codes in {-1, +1}.
    database: ``[s, b]`` codes in {-1, +1}.
    relevant: bool ``[h, s]``, the database rows relevant to each query.

  Returns:
    the mean over queries with a relevant row of the average precision of the
    ranking by Hamming distance, ties in database row order (:func:`select` puts its
    sample in random order, so ties are broken at random and collapsed codes score
    like random ones).
  """
  q = np.asarray(query, np.float32)
  d = np.asarray(database, np.float32)
  rel = np.asarray(relevant, bool)
  dist = np.rint((q.shape[1] - q @ d.T) / 2.0).astype(np.int64)     # [h, s]
  order = np.argsort(dist * d.shape[0] + np.arange(d.shape[0]), axis=1)
  hit = np.take_along_axis(rel, order, axis=1)
  found = np.cumsum(hit, axis=1)
  ranks = np.arange(1, d.shape[0] + 1)
  num = rel.sum(axis=1)
  keep = num > 0
  ap = (hit * found / ranks).sum(axis=1)[keep] / num[keep]
  return float(ap.mean())


def neighbourhood_score(codes: Sequence[np.ndarray], queries: Sequence[np.ndarray],
                        relevant: Sequence[np.ndarray]) -> float:
  """The neighbourhood criterion of one fit (module docstring).

  Args:
    codes: M arrays ``[s_i, b]``, the sampled rows' codes in every modality.
    queries: M int arrays ``[h]``: row of held-out item q in modality i's sample
      (item q is the same in every modality).
    relevant: M bool arrays ``[h, s_i]``: :func:`neighbour_sets` of the held-out
      items' own rows in modality i's features.

  Returns:
    the mean over ordered modality pairs ``a != b`` of :func:`average_precision`
    of the held-out items' codes in a against every sampled code of b, relevant
    being each item's neighbours in b.
  """
  m = len(codes)
  return float(np.mean([
      average_precision(codes[a][np.asarray(queries[a])], codes[b], relevant[b])
      for a in range(m) for b in range(m) if a != b]))
