"""Degenerate and extreme feature scales (issue 18.2, 18.3): no NaN model, same codes.

Constant and all-zero views used to give kernel width 0 and ``exp(-0/0) = NaN`` (every
item one code, chance mAP, exit 0); tiny scales underflowed the squared distances and
1e18 overflowed them. Now raw features are standardised in float64 (paired rows'
mean and RMS norm), theta / lam are relative to the Gram scale, a constant paired view
is a ValueError, and a non-finite W / objective is never returned.
"""

import jax
import numpy as np
import pytest

from hashjax import rreh

CFG = dict(bits=8, num_anchors=10, iterations=4, theta=1.0, beta=0.1, lam=1e-3,
           init_v="gaussian")


def _data(seed=0, n_p=30, n_u=20, dims=(6, 5)):
  rs = np.random.default_rng(seed)
  lab = rs.integers(0, 3, n_p + 2 * n_u)
  views = [rs.normal(size=(3, d))[lab] + 0.5 * rs.normal(size=(lab.size, d))
           for d in dims]
  paired = [v[:n_p] for v in views]
  unpaired = [views[0][n_p:n_p + n_u], views[1][n_p + n_u:]]
  queries = [v[-10:] for v in views]
  return paired, unpaired, queries


def _codes(paired, unpaired, queries, cfg):
  model = rreh.fit(paired, unpaired, cfg, jax.random.key(3))
  assert np.all(np.isfinite(np.asarray(model.W)))
  assert np.all(np.isfinite(np.asarray(model.objective)))
  return [np.asarray(rreh.encode(model, q, i)) for i, q in enumerate(queries)]


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("factor", [1e-3, 1e3, 1e-30, 1e18])
def test_rescaled_views_give_the_same_codes(kernel, factor):
  paired, unpaired, queries = _data()
  cfg = dict(CFG, kernel=kernel)
  ref = _codes(paired, unpaired, queries, cfg)
  scaled = _codes([p * factor for p in paired], [u * factor for u in unpaired],
                  [q * factor for q in queries], cfg)
  for a, b in zip(ref, scaled):
    assert a.shape == b.shape and np.unique(a, axis=0).shape[0] > 1
    np.testing.assert_array_equal(a, b)


def test_offset_views_give_the_same_codes():
  # A large common offset (1e6 + unit noise) cancels catastrophically in float32.
  paired, unpaired, queries = _data()
  ref = _codes(paired, unpaired, queries, CFG)
  moved = _codes([p + 1e6 for p in paired], [u + 1e6 for u in unpaired],
                 [q + 1e6 for q in queries], CFG)
  for a, b in zip(ref, moved):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [0.0, 7.5])
def test_constant_paired_view_is_a_clear_error(value):
  paired, unpaired, _ = _data()
  paired[1] = np.full_like(paired[1], value)
  with pytest.raises(ValueError, match=r"paired_views\[1\] is constant"):
    rreh.fit(paired, unpaired, CFG, jax.random.key(0))


def test_constant_unpaired_rows_give_a_finite_model():
  paired, unpaired, queries = _data()
  unpaired[0] = np.zeros_like(unpaired[0])
  codes = _codes(paired, unpaired, queries, CFG)
  assert all(np.unique(c, axis=0).shape[0] > 1 for c in codes)


def test_non_finite_state_is_refused():
  paired, unpaired, _ = _data()
  rng_a, rng_i = jax.random.split(jax.random.key(0))
  problem, _ = rreh.make_problem(paired, unpaired, CFG, rng_a)
  state = rreh.run(problem, rreh.make_hyper(theta=1.0, beta=0.1, lam=float("nan")),
                   rng_i, bits=8, iterations=2)
  with pytest.raises(FloatingPointError, match="non-finite W"):
    rreh.check_finite_state(state)
