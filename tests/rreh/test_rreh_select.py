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


def test_choose_all_paired_scores_at_the_smallest_theta():
  # Fold-mean neighbourhood scores of UCI kar+pix, 100% paired, seed 0, lam 1e-2
  # (experiments/results/rreh_criterion_study.jsonl, rounded): the folds' theta 3
  # favours the PCA start, the smallest theta the Gaussian one (validation mAP 0.73
  # against 0.57; theta does not change a fully paired fit).
  table = [dict(theta=0.03, lam=1e-2, init_v="gaussian", score=0.665),
           dict(theta=0.03, lam=1e-2, init_v="pca", score=0.629),
           dict(theta=3.0, lam=1e-2, init_v="gaussian", score=0.656),
           dict(theta=3.0, lam=1e-2, init_v="pca", score=0.688),
           dict(theta=0.03, lam=1e-4, init_v="gaussian", score=0.700)]  # small lam
  assert criterion.choose(table) == 3                    # some items unpaired
  assert criterion.choose(table, all_paired=True) == 0   # smallest theta, largest lam
  # lam first, then theta: without a finite fit at (theta 0.03, lam 1e-2), the
  # smallest theta among the largest lam's finite rows, not the small-lam row.
  table[0]["score"] = table[1]["score"] = -np.inf
  assert criterion.choose(table, all_paired=True) == 3
  table[2]["theta"] = 0.3
  assert criterion.choose(table, all_paired=True) == 2
  # No theta in the grid: the flag changes nothing.
  assert criterion.choose([dict(score=0.2), dict(score=0.3)], all_paired=True) == 1


@pytest.mark.slow
def test_select_all_paired_passes_the_flag_and_theta_is_inert(monkeypatch):
  paired, unpaired = _data(5)
  empty = [u[:0] for u in unpaired]
  key = jax.random.key(6)
  cfg = dict(CFG, lam=1e-3)
  # The premise: with no unpaired rows theta does not change the fit.
  a = rreh.fit(paired, empty, dict(cfg, theta=0.03, init_v="pca"), key)
  b = rreh.fit(paired, empty, dict(cfg, theta=3.0, init_v="pca"), key)
  np.testing.assert_allclose(np.asarray(a.W), np.asarray(b.W), rtol=1e-6, atol=1e-6)
  seen = []
  real = criterion.choose
  monkeypatch.setattr(criterion, "choose",
                      lambda t, **kw: seen.append(kw) or real(t, **kw))
  chosen, table = rreh.select(paired, empty, cfg, key, grid=GRID, folds=2)
  assert seen == [dict(all_paired=True)]
  assert chosen["theta"] == min(GRID["theta"])
  small = [r for r in table if r["theta"] == min(GRID["theta"])]
  assert chosen["init_v"] == max(small, key=lambda r: r["score"])["init_v"]
  # Only the smallest theta is fitted: the others' rows are marked, never scored.
  assert len(table) == 4 and all(np.isfinite(r["score"]) and "skipped" not in r
                                 for r in small)
  others = [r for r in table if r["theta"] != min(GRID["theta"])]
  assert others and all(r["score"] == -np.inf and r["skipped"] for r in others)
  # ... and their scores are those of the full grid's smallest-theta rows: fitting
  # fewer points does not change the fits that remain.
  _, part = rreh.select(paired, empty, cfg, key, folds=2,
                        grid=dict(theta=(min(GRID["theta"]),), init_v=GRID["init_v"]))
  np.testing.assert_allclose([r["score"] for r in small], [r["score"] for r in part],
                             rtol=1e-6)
  rreh.select(paired, unpaired, cfg, key, grid=GRID, folds=2)
  assert seen[-1] == dict(all_paired=False)


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


def test_free_keys_search_the_cap_only_with_lam():
  free = criterion.free_keys
  assert free({}) == ["theta", "lam", "init_v", "ridge_cap"]
  assert free(dict(lam=1e-2)) == ["theta", "init_v"]        # a given lam: no cap
  assert free(dict(ridge_cap=0.0)) == ["theta", "lam", "init_v"]   # 0: no cap, given
  assert free(dict(ridge_cap=3.0, theta=1.0)) == ["lam", "init_v"]
  assert criterion.GRID["ridge_cap"] == (None, 3.0) and criterion.FIXED["ridge_cap"] is None


@pytest.mark.slow
def test_select_scores_capped_and_uncapped_points_as_separate_runs():
  # A 2-wide view: its kernel features' spectrum ends within 8 directions, so the
  # cap binds there. One grid with ridge_cap (None, 3) runs both kinds of point in
  # one batch (no cap = inf); each row must score exactly as a selection with that
  # cap fixed (ridge_cap=0: none).
  paired, unpaired = _data(3, dims=(8, 2))
  key = jax.random.key(5)
  cfg = dict(CFG, lam=1e-2)
  grid = dict(GRID, ridge_cap=(None, 3.0))
  chosen, table = rreh.select(paired, unpaired, cfg, key, grid=grid, folds=2)
  assert len(table) == 8 and chosen["ridge_cap"] in (None, 3.0)
  pick = table[criterion.choose(table)]
  assert chosen == {k: pick[k] for k in grid}
  for cap in (None, 3.0):
    _, alone = rreh.select(paired, unpaired, dict(cfg, ridge_cap=cap or 0.0), key,
                           grid=GRID, folds=2)
    mine = [r for r in table if r["ridge_cap"] == cap]
    assert [r["score"] for r in mine] == [r["score"] for r in alone]
  capped = [r["score"] for r in table if r["ridge_cap"] == 3.0]
  plain = [r["score"] for r in table if r["ridge_cap"] is None]
  assert capped != plain                        # the cap changes the fits here


def test_select_errors():
  paired, unpaired = _data()
  with pytest.raises(ValueError, match="grid keys must be among"):
    rreh.select(paired, unpaired, CFG, jax.random.key(0), grid=dict(bits=(8, 16)))
  with pytest.raises(ValueError, match="needs at least"):
    rreh.select([p[:3] for p in paired], unpaired, CFG, jax.random.key(0))


# --- the neighbourhood criterion (the default) -------------------------------------


def test_average_precision_by_hand():
  q = np.array([[1, 1]])
  db = np.array([[1, 1], [-1, -1], [1, -1]])        # distances 0, 2, 1
  rel = np.array([[False, True, True]])
  # Ranking d0 (0), d2 (1), d1 (2): hits at ranks 2 and 3.
  np.testing.assert_allclose(criterion.average_precision(q, db, rel), (1 / 2 + 2 / 3) / 2)
  same = np.array([[1, 1], [1, 1]])                  # a tie: database row order
  np.testing.assert_allclose(criterion.average_precision(q, same, [[False, True]]), 1 / 2)
  np.testing.assert_allclose(criterion.average_precision(q, same, [[True, False]]), 1.0)
  # A query with no relevant row does not count.
  two = np.array([[1, 1], [-1, -1]])
  np.testing.assert_allclose(
      criterion.average_precision(two, db, [[False, True, True], [False] * 3]),
      (1 / 2 + 2 / 3) / 2)


def _ap_loop(query, database, relevant):
  """Reference: one query at a time, sort by (distance, row), precision at hits."""
  aps = []
  for q, rel in zip(query, relevant):
    dist = [int(np.sum(q != d)) for d in database]
    order = sorted(range(len(database)), key=lambda j: (dist[j], j))
    hits, total = 0, 0.0
    for rank, j in enumerate(order, 1):
      if rel[j]:
        hits += 1
        total += hits / rank
    if hits:
      aps.append(total / hits)
  return float(np.mean(aps))


def test_average_precision_matches_a_loop():
  rs = np.random.default_rng(3)
  q = np.where(rs.normal(size=(7, 6)) >= 0, 1, -1)
  db = np.where(rs.normal(size=(40, 6)) >= 0, 1, -1)     # 6 bits: many ties
  rel = rs.random((7, 40)) < 0.2
  np.testing.assert_allclose(criterion.average_precision(q, db, rel),
                             _ap_loop(q, db, rel), rtol=1e-12)


def test_neighbour_sets_by_hand():
  x = np.array([[0.0], [1.0], [3.0], [10.0]])
  got = criterion.neighbour_sets(x, np.array([0, 3]), share=0.5)     # 2 of 4 rows
  np.testing.assert_array_equal(got, [[1, 1, 0, 0], [0, 0, 1, 1]])
  # The query row itself is always a neighbour, also among exact duplicates; at least
  # 2 rows whatever the share.
  dup = np.zeros((5, 2))
  got = criterion.neighbour_sets(dup, np.array([4]), share=0.01)
  assert got[0, 4] and got.sum() == 2


def test_standardise_columns():
  x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 12.0]])
  z = criterion.standardise_columns(x)
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
  np.testing.assert_allclose(z[:, [0, 2]].std(0), 1)
  np.testing.assert_array_equal(z[:, 1], 0)            # a constant column


def test_neighbourhood_score_averages_directions_and_prefers_structure():
  rs = np.random.default_rng(1)
  lab = rs.integers(0, 4, 200)
  feats = [rs.normal(size=(4, d))[lab] + 0.3 * rs.normal(size=(200, d)) for d in (5, 7)]
  queries = [np.arange(20), np.arange(20)]
  rel = [criterion.neighbour_sets(criterion.standardise_columns(f), queries[i])
         for i, f in enumerate(feats)]
  proto = np.where(rs.normal(size=(4, 16)) >= 0, 1, -1)
  good = [np.where(rs.random((200, 16)) < 0.1, -1, 1) * proto[lab] for _ in range(2)]
  noise = [np.where(rs.normal(size=(200, 16)) >= 0, 1, -1) for _ in range(2)]
  s = criterion.neighbourhood_score(good, queries, rel)
  want = (criterion.average_precision(good[0][:20], good[1], rel[1])
          + criterion.average_precision(good[1][:20], good[0], rel[0])) / 2
  np.testing.assert_allclose(s, want)
  # Codes that keep the clusters (but not the order inside one: the 20 neighbours are
  # a share of a cluster of ~50) beat random codes (~ the 10% share) by far.
  assert s > 0.3 > 0.15 > criterion.neighbourhood_score(noise, queries, rel)


def test_select_criteria_and_their_errors():
  paired, unpaired = _data()
  with pytest.raises(ValueError, match="criterion must be one of"):
    rreh.select(paired, unpaired, CFG, jax.random.key(0), criterion="labels")


@pytest.mark.slow
def test_select_pair_criterion_is_the_held_out_mrr():
  paired, unpaired = _data(2)
  key = jax.random.key(5)
  cfg = dict(CFG, lam=1e-3)
  _, nb = rreh.select(paired, unpaired, cfg, key, grid=GRID, folds=2)
  _, pair = rreh.select(paired, unpaired, cfg, key, grid=GRID, folds=2, criterion="pair")
  assert all(0 < r["score"] <= 1 for r in nb + pair)
  assert [r["score"] for r in nb] != [r["score"] for r in pair]


def test_neighbour_fold_samples_rows_with_the_queries(monkeypatch):
  """Above MAX_SAMPLE_ROWS the criterion samples: the held-out rows are all in it,
  the queries point at them, every row is a real row of its modality."""
  from hashjax.rreh import api
  paired, unpaired = _data(3, n_p=40, n_u=60)
  monkeypatch.setattr(criterion, "MAX_SAMPLE_ROWS", 50)
  monkeypatch.setattr(criterion, "MAX_QUERIES", 6)
  rows = api._Rows(np.asarray([30]), np.asarray([[70, 70]]), (8, 6))
  tp = [p[:30] for p in paired]
  tu = [np.concatenate([u, p[30:]]) for p, u in zip(paired, unpaired)]
  held_rows = [30 + 60 + np.arange(10) for _ in range(2)]
  _, feats = api._build_problem(tp, tu, rows, rreh.resolve_config(CFG),
                                jax.random.key(0), api.default_mesh(), None)
  near = api._neighbour_fold(tp, tu, rows, held_rows, 100, feats, jax.random.key(1),
                             api.default_mesh())
  for i in range(2):
    assert near.rows[i].size == 50 == np.unique(near.rows[i]).size
    assert np.all(near.rows[i] < 100)
    np.testing.assert_array_equal(near.rows[i][near.queries[i]], held_rows[i][:6])
    assert near.relevant[i].shape == (6, 50)
    assert near.relevant[i][np.arange(6), near.queries[i]].all()     # itself
    assert np.all(near.relevant[i].sum(1) == 5)                      # 10% of 50
  # The queries' neighbours are found in the right features: recompute by hand.
  x = np.concatenate([tp[1], tu[1]])[near.rows[1]]
  z = criterion.standardise_columns(x)
  d = ((z[near.queries[1]][:, None] - z[None]) ** 2).sum(-1)
  for q in range(6):
    assert set(np.argsort(d[q], kind="stable")[:5]) == set(np.flatnonzero(
        near.relevant[1][q]))
