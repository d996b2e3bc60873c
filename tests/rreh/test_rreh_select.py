"""Label-free selection (issue 18.1): the criterion by hand, and fit's default path."""

import jax
import numpy as np
import pytest

from hashjax import rreh
from hashjax.rreh import criterion


def test_hamming_mrr_by_hand():
  q = np.array([[1, 1, 1], [1, -1, -1], [-1, -1, -1]])
  d = np.array([[1, 1, -1], [1, -1, -1], [1, 1, 1]])
  # Hamming distances: q0 -> [1, 2, 0]: true 1, one closer -> rank 2.
  # q1 -> [2, 0, 2]: true 0 -> rank 1. q2 -> [2, 1, 3]: true 3, two closer -> rank 3.
  np.testing.assert_allclose(criterion.hamming_mrr(q, d), (1 / 2 + 1 + 1 / 3) / 3)
  # Collapsed codes: every distance ties, expected rank (1 + h) / 2 = 2 for h = 3.
  ones = np.ones((3, 4))
  np.testing.assert_allclose(criterion.hamming_mrr(ones, ones), 1 / 2)


def test_choose_largest_lam_then_best_score():
  table = [dict(lam=1e-4, score=0.90, fold_scores=[0.9] * 3),   # best score, small lam
           dict(lam=1e-2, score=0.60, fold_scores=[0.6] * 3),
           dict(lam=1e-3, score=0.80, fold_scores=[0.8] * 3),
           dict(lam=1e-2, score=0.70, fold_scores=[0.6, 0.7, 0.8]),   # chosen
           dict(lam=1e-2, score=0.70, fold_scores=[0.7] * 3)]         # tie: later
  assert criterion.choose(table) == 3    # largest lam, then best score, then order
  table[3]["score"] = table[4]["score"] = -np.inf       # non-finite fits never win
  assert criterion.choose(table) == 1
  for r in table[1:]:
    r["score"] = -np.inf
  assert criterion.choose(table) == 0    # the only finite row, whatever its lam
  assert criterion.choose([dict(score=0.2, fold_scores=[0.2]),     # no lam: argmax
                           dict(score=0.3, fold_scores=[0.3])]) == 1


def test_pair_score_averages_both_directions():
  rs = np.random.default_rng(0)
  a, b = (np.where(rs.normal(size=(6, 8)) >= 0, 1, -1) for _ in range(2))
  want = (criterion.hamming_mrr(a, b) + criterion.hamming_mrr(b, a)) / 2
  np.testing.assert_allclose(criterion.pair_score([a, b]), want)


def _data(seed=0, n_p=40, n_u=40, dims=(8, 6)):
  rs = np.random.default_rng(seed)
  lab = rs.integers(0, 4, n_p + 2 * n_u)
  views = [rs.normal(size=(4, d))[lab] + 0.6 * rs.normal(size=(lab.size, d))
           for d in dims]
  return ([v[:n_p] for v in views], [views[0][n_p:n_p + n_u], views[1][n_p + n_u:]])


CFG = dict(bits=8, num_anchors=20, iterations=4)
GRID = dict(theta=(0.03, 3.0), init_v=("gaussian", "pca"))


@pytest.mark.slow
def test_select_scores_every_point_and_fit_uses_the_choice():
  paired, unpaired = _data()
  key = jax.random.key(2)
  chosen, table = rreh.select(paired, unpaired, dict(CFG, lam=1e-3), key, grid=GRID,
                              folds=2)
  assert len(table) == 4 and set(chosen) == {"theta", "init_v"}
  assert all(len(r["fold_scores"]) == 2 and 0 < r["score"] <= 1 for r in table)
  pick = table[criterion.choose(table)]
  assert chosen == {"theta": pick["theta"], "init_v": pick["init_v"]}
  assert len({round(r["score"], 9) for r in table}) > 1     # the grid points differ


@pytest.mark.slow
def test_fit_default_selects_and_select_false_uses_fixed():
  paired, unpaired = _data(1)
  key = jax.random.key(4)
  chosen, _ = rreh.select(paired, unpaired, CFG, jax.random.fold_in(key, 1))
  assert set(chosen) == set(criterion.SELECT_KEYS)
  auto = rreh.fit(paired, unpaired, CFG, key)               # default: select
  given = rreh.fit(paired, unpaired, dict(CFG, **chosen), key)
  np.testing.assert_array_equal(np.asarray(auto.W), np.asarray(given.W))
  off = rreh.fit(paired, unpaired, dict(CFG, select=False), key)
  fixed = rreh.fit(paired, unpaired, dict(CFG, **criterion.FIXED), key)
  np.testing.assert_array_equal(np.asarray(off.W), np.asarray(fixed.W))


def test_select_errors():
  paired, unpaired = _data()
  with pytest.raises(ValueError, match="grid keys must be among"):
    rreh.select(paired, unpaired, CFG, jax.random.key(0), grid=dict(bits=(8, 16)))
  with pytest.raises(ValueError, match="needs at least"):
    rreh.select([p[:3] for p in paired], unpaired, CFG, jax.random.key(0))
