"""Per-view weights alpha_i (issue 18.7, docs/rreh.md#weights).

Checked against independent references: the weighted V-step against a NumPy least
squares on sqrt(alpha)-scaled rows, the weighted fit against the float64 reference
(tests/rreh/rreh_reference.py), the weight candidates and view quality by hand.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rreh_reference import (
    encode_reference,
    fit_reference,
    project_reference,
)

from hashjax import checks, rreh
from hashjax.rreh import criterion, solver, steps

BITS, K = 8, 12
FIXED = dict(theta=1.0, beta=0.5, lam=1.0, iterations=6, select=False)


def _data(seed, n_p, n_us, dims, c=4, noise=0.7):
  rs = np.random.default_rng(seed)
  centers = [rs.normal(size=(c, d)) for d in dims]
  lab = rs.integers(0, c, n_p)
  paired = [(centers[i][lab] + noise * rs.normal(size=(n_p, d))).astype(np.float32)
            for i, d in enumerate(dims)]
  unpaired = []
  for i, d in enumerate(dims):
    lu = rs.integers(0, c, n_us[i])
    unpaired.append((centers[i][lu] + noise * rs.normal(size=(n_us[i], d))).astype(
        np.float32))
  return paired, unpaired


def test_weighted_v_step_solves_the_weighted_least_squares():
  rs = np.random.default_rng(11)
  m, n_p, n, s, b = 3, 7, 12, 3, 2
  ref_idx = np.array([5, 0, 2])
  alpha = np.array([0.3, 1.2, 1.5])
  p = rs.normal(size=(m, n, b))
  r = np.zeros((m, n, s))
  r[:, n_p:n - 1] = rs.normal(size=(m, n - 1 - n_p, s))   # last row: padding
  p[:, n - 1] = 0.0
  w = jnp.asarray(alpha, jnp.float32)
  v_inv = steps.v_inverse(jnp.asarray(r, jnp.float32), w)
  v = np.asarray(steps.v_step(jnp.asarray(p, jnp.float32), jnp.asarray(r, jnp.float32),
                              v_inv, jnp.asarray(ref_idx), n_paired=n_p, weights=w))
  # min sum_i alpha_i ||A_i V - Y_i||^2 is plain least squares on sqrt(alpha_i) rows.
  sel = np.zeros((s, n_p))
  sel[np.arange(s), ref_idx] = 1
  sq = np.sqrt(alpha)
  a = np.concatenate([sq[i] * np.eye(n_p) for i in range(m)]
                     + [sq[i] * r[i][n_p:] @ sel for i in range(m)])
  y = np.concatenate([sq[i] * p[i][:n_p] for i in range(m)]
                     + [sq[i] * p[i][n_p:] for i in range(m)])
  want = np.linalg.lstsq(a, y, rcond=None)[0]
  np.testing.assert_allclose(v, want, atol=1e-4)
  others = [i for i in range(n_p) if i not in ref_idx]
  np.testing.assert_allclose(
      v[others], np.einsum("m,mnb->nb", alpha, p[:, others]) / alpha.sum(), atol=1e-5)
  # The weights matter: the unweighted solution is elsewhere.
  v0 = np.asarray(steps.v_step(jnp.asarray(p, jnp.float32), jnp.asarray(r, jnp.float32),
                               steps.v_inverse(jnp.asarray(r, jnp.float32)),
                               jnp.asarray(ref_idx), n_paired=n_p))
  assert np.abs(v0 - want).max() > 1e-2


@pytest.mark.parametrize("init_v", ["pca", "gaussian"])
def test_weighted_fit_matches_reference(init_v):
  paired, unpaired = _data(2, 40, [20, 33, 15], [6, 4, 9])
  queries, _ = _data(3, 10, [0, 0, 0], [6, 4, 9])
  weights = (2.0, 0.25, 1.0)
  cfg = dict(bits=BITS, num_anchors=K, init_v=init_v, view_weights=weights, **FIXED)
  rng = jax.random.key(5)
  model = rreh.fit(paired, unpaired, cfg, rng)
  _, rng_init = jax.random.split(rng)
  g = np.asarray(jax.random.normal(rng_init, (K, BITS)), np.float64)
  ref = fit_reference(paired, unpaired, np.asarray(model.anchor_index), g,
                      theta=1.0, beta=0.5, lam=1.0, iterations=6, init_v=init_v,
                      view_weights=weights)
  np.testing.assert_allclose(np.asarray(model.objective), ref["objective"], rtol=2e-5)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(model.W[i]), ref["W"][i], atol=1e-4,
                               rtol=1e-3)
    x = np.concatenate([paired[i], unpaired[i], queries[i]])
    # Equal bits wherever the float64 projection is not within float32 reach of 0
    # (with init_v="gaussian" one bit sits at |phi W| ~ 7e-8 and flips).
    proj = project_reference(ref, x, i)
    sure = np.abs(proj) > 1e-4 * np.abs(proj).max()
    assert sure.mean() > 0.99
    codes = np.asarray(rreh.encode(model, x, i))
    np.testing.assert_array_equal(codes[sure], encode_reference(ref, x, i)[sure])
  # The unweighted reference is a different model (the weights are not ignored).
  ref0 = fit_reference(paired, unpaired, np.asarray(model.anchor_index), g,
                       theta=1.0, beta=0.5, lam=1.0, iterations=6, init_v=init_v)
  assert not np.allclose(ref0["objective"], ref["objective"], rtol=1e-3)


def _fit(paired, unpaired, **kw):
  cfg = dict(bits=BITS, num_anchors=K, init_v="pca", **FIXED, **kw)
  return rreh.fit(paired, unpaired, cfg, jax.random.key(9))


def _codes(model, views):
  return [np.asarray(rreh.encode(model, x, i)) for i, x in enumerate(views)]


def test_unit_weights_are_bit_identical_to_none_and_scale_does_not_matter():
  paired, unpaired = _data(4, 40, [30, 25, 20], [7, 5, 3])
  queries, _ = _data(5, 30, [0, 0, 0], [7, 5, 3])
  base = _fit(paired, unpaired)                               # view_weights=None
  ones = _fit(paired, unpaired, view_weights=(1, 1, 1))       # the weighted code path
  np.testing.assert_array_equal(np.asarray(ones.W), np.asarray(base.W))
  np.testing.assert_array_equal(np.asarray(ones.objective), np.asarray(base.objective))
  for a, b in zip(_codes(ones, queries), _codes(base, queries)):
    np.testing.assert_array_equal(a, b)
  # Normalised to sum M: (w), (c w) give the same model.
  w = _fit(paired, unpaired, view_weights=(0.5, 1.0, 2.0))
  for c in (4.0, 0.1, 3.0):
    cw = _fit(paired, unpaired, view_weights=tuple(c * x for x in (0.5, 1.0, 2.0)))
    np.testing.assert_array_equal(np.asarray(cw.W), np.asarray(w.W))
  assert not np.array_equal(np.asarray(w.W), np.asarray(base.W))
  # And the constant weights (3, 3, 3) are uniform, i.e. today's model.
  np.testing.assert_array_equal(
      np.asarray(_fit(paired, unpaired, view_weights=[3.0, 3.0, 3.0]).W),
      np.asarray(base.W))


def test_weighted_objective_non_increasing_on_uci_three_views():
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top

  split = hdata.get_retrieval_split(dict(
      name="uci_mfeat", path=None, views=["fac", "mor", "pix"], num_query=400,
      num_train=None, seed=0))
  train = split.train.subset(np.arange(600))
  sp = hdata.semi_paired_split(600, 0.2, 3, "disjoint", 0)
  paired, unpaired = hdata.apply_semi_paired(train, sp)
  one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
  cfg = dict(bits=16, num_anchors=60, iterations=12, init_v="pca", theta=0.03,
             beta=0.1, lam=0.01, select=False)
  objs = []
  for w in ((1.0, 0.1, 1.0), (0.2, 1.0, 3.0)):
    model = rreh.fit(paired, unpaired, dict(cfg, view_weights=w), jax.random.key(1),
                     mesh=one)
    obj = np.asarray(model.objective)
    assert obj.shape == (12,) and np.all(np.isfinite(obj)) and np.all(obj > 0)
    assert np.all(np.diff(obj) <= 1e-5 * obj[0]), obj
    assert obj[-1] < obj[0]
    objs.append(obj)
  assert not np.allclose(objs[0], objs[1])


@pytest.mark.parametrize("weights, match", [
    ((1.0, 0.0), "view_weights must be > 0"),
    ((1.0, -2.0), "view_weights must be > 0"),
    ((1.0, float("nan")), "view_weights must be > 0 and finite"),
    ((1.0, float("inf")), "view_weights must be > 0 and finite"),
    ((1.0, 1.0, 1.0), "view_weights has 3 weights but there are 2 views"),
    ((1.0,), "one weight per view"),
    (2.0, "view_weights must be None, 'auto' or one positive number per view"),
    ("uniform", "view_weights must be None, 'auto'"),
    ((1.0, True), "view_weights must hold numbers"),
    ((1.0, "a"), "view_weights must hold numbers"),
])
def test_bad_weights_rejected_before_any_work(weights, match):
  paired, unpaired = _data(0, 10, [5, 6], [4, 3])
  size = solver.run._cache_size()  # pylint: disable=protected-access
  with pytest.raises(ValueError, match=match):
    rreh.fit(paired, unpaired, dict(view_weights=weights), jax.random.key(0))
  with pytest.raises(ValueError, match=match):
    rreh.select(paired, unpaired, dict(view_weights=weights), jax.random.key(0))
  assert solver.run._cache_size() == size  # pylint: disable=protected-access


def test_auto_weights_need_selection():
  with pytest.raises(ValueError, match="view_weights='auto' .* needs select=True"):
    rreh.resolve_config(dict(view_weights="auto", select=False))
  assert rreh.resolve_config(dict(view_weights="auto"))["view_weights"] == "auto"
  assert rreh.resolve_config(dict(view_weights=(1, 3)))["view_weights"] == (0.5, 1.5)


def test_check_view_weights_normalises_to_sum_m():
  assert checks.check_view_weights("w", (1, 2, 3, 2)) == (0.5, 1.0, 1.5, 1.0)
  assert checks.check_view_weights("w", np.array([2.0, 2.0])) == (1.0, 1.0)
  assert checks.check_view_weights("w", None) is None


def test_weight_candidates_and_view_quality_by_hand():
  cands = dict(criterion.weight_candidates(3, np.array([0.2, 0.4, 0.6])))
  d = criterion.DOWN_WEIGHT
  np.testing.assert_allclose(cands["down_1"], np.array([1, d, 1]) * 3 / (2 + d))
  np.testing.assert_allclose(cands["quality"], [0.5, 1.0, 1.5])
  assert list(cands) == ["down_0", "down_1", "down_2", "quality"]
  # Uniform quality adds no candidate (it is the uniform one).
  assert [n for n, _ in criterion.weight_candidates(2, np.array([0.3, 0.3]))] == [
      "down_0", "down_1"]
  # View quality: mean over the other views of the two directions' MRR.
  a = np.array([[1, 1], [1, -1], [-1, -1]])
  b = np.array([[1, 1], [1, -1], [-1, 1]])
  c = np.array([[1, 1], [1, 1], [1, 1]])
  mrr = criterion.hamming_mrr
  ab = (mrr(a, b) + mrr(b, a)) / 2
  ac = (mrr(a, c) + mrr(c, a)) / 2
  bc = (mrr(b, c) + mrr(c, b)) / 2
  np.testing.assert_allclose(criterion.view_quality([a, b, c]),
                             [(ab + ac) / 2, (ab + bc) / 2, (ac + bc) / 2])


def test_auto_weights_down_weight_a_noise_view():
  # Also the regression check of run_grid's sequential weighted PCA starts: with the
  # starts vmapped (a batched eigh) this select aborted the process on 8 forced CPU
  # devices (jaxlib 0.10, 2 cores); test_rreh_grid's 1-device grid did not.
  # Views 0 and 1 share the item's class; view 2 is pure noise, unrelated to it.
  paired, unpaired = _data(6, 120, [60, 60, 60], [8, 6, 5], c=6, noise=0.4)
  rs = np.random.default_rng(1)
  paired[2] = rs.normal(size=paired[2].shape).astype(np.float32)
  unpaired[2] = rs.normal(size=unpaired[2].shape).astype(np.float32)
  cfg = dict(bits=16, num_anchors=30, iterations=6, theta=0.03, beta=0.1, lam=0.01,
             init_v="pca", view_weights="auto")
  chosen, table = rreh.select(paired, unpaired, cfg, jax.random.key(2))
  rows = [r for r in table if "candidate" in r]
  assert [r["candidate"] for r in rows] == ["uniform", "down_0", "down_1", "down_2",
                                            "quality"]
  # The uniform row is the (single) grid point's own score.
  assert rows[0]["score"] == table[0]["score"] and rows[0]["view_weights"] is None
  best = max(rows, key=lambda r: r["score"])
  assert chosen["view_weights"] == best["view_weights"]
  w = np.asarray(chosen["view_weights"])
  assert w.shape == (3,) and w[2] == w.min() and w[2] < 1.0, table
