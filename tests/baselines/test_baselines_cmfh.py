"""CMFH against a NumPy transcription of the paper's closed-form updates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hashjax.baselines import cmfh


def _views(np_rng, n, dims, k=4, noise=0.3):
  z = np_rng.normal(size=(n, k))
  return [(z @ np_rng.normal(size=(k, d)) + noise * np_rng.normal(size=(n, d))
           + np_rng.normal(size=d)).astype(np.float32) for d in dims]


def _np_objective(v, us, ps, xs, lambdas, mu, gamma):
  total = gamma * np.sum(v ** 2)
  for x, u, p, lam in zip(xs, us, ps, lambdas):
    total += lam * np.sum((x - v @ u) ** 2) + mu * np.sum((v - x @ p) ** 2)
    total += gamma * (np.sum(u ** 2) + np.sum(p ** 2))
  return total


def _np_step(v, ps, xs, lambdas, mu, gamma):
  """Ding et al. 2014, Alg. 1 (rows = items): U_m, then V, then P_m."""
  b = v.shape[1]
  us = [np.linalg.inv(v.T @ v + gamma / lam * np.eye(b)) @ v.T @ x
        for x, lam in zip(xs, lambdas)]
  g = (len(xs) * mu + gamma) * np.eye(b)
  rhs = np.zeros_like(v)
  for x, u, p, lam in zip(xs, us, ps, lambdas):
    g += lam * u @ u.T
    rhs += lam * x @ u.T + mu * x @ p
  v = rhs @ np.linalg.inv(g)
  ps = [np.linalg.inv(x.T @ x + gamma / mu * np.eye(x.shape[1])) @ x.T @ v
        for x in xs]
  return v, us, ps


def test_update_matches_numpy(np_rng, rng):
  num_views = 3
  dims = (6, 4, 5)[:num_views]
  views = _views(np_rng, 80, dims)
  xs = [v - v.mean(0) for v in views]
  lambdas = np.linspace(0.3, 0.7, num_views)
  mu, gamma = 100.0, 0.01
  hyper = dict(lambdas=jnp.asarray(lambdas, jnp.float32), mu=jnp.float32(mu),
               gamma=jnp.float32(gamma))
  state = cmfh.init_state([jnp.asarray(x) for x in xs], bits=3, rng=rng)
  new = jax.jit(cmfh.update)(state, [jnp.asarray(x) for x in xs], **hyper)

  x64 = [x.astype(np.float64) for x in xs]
  v, us, ps = _np_step(np.asarray(state.latent, np.float64),
                       [np.asarray(p, np.float64) for p in state.projections],
                       x64, lambdas, mu, gamma)
  np.testing.assert_allclose(np.asarray(new.latent), v, rtol=2e-3, atol=2e-4)
  for m in range(num_views):
    np.testing.assert_allclose(np.asarray(new.bases[m]), us[m], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(np.asarray(new.projections[m]), ps[m], rtol=2e-3,
                               atol=2e-4)
  want = _np_objective(v, us, ps, x64, lambdas, mu, gamma)
  got = float(jax.jit(cmfh.objective)(new, [jnp.asarray(x) for x in xs], **hyper))
  np.testing.assert_allclose(got, want, rtol=1e-3)
  # The step is a block-coordinate descent step: J does not increase.
  before = _np_objective(np.asarray(state.latent, np.float64),
                         [np.asarray(u, np.float64) for u in state.bases],
                         [np.asarray(p, np.float64) for p in state.projections],
                         x64, lambdas, mu, gamma)
  assert want <= before


def test_fit_objective_non_increasing_and_codes(np_rng, rng):
  views = _views(np_rng, 300, (10, 7, 5))
  model = cmfh.fit(views, bits=6, rng=rng, iterations=30)
  obj = np.asarray(model.objective)
  assert obj.shape == (30,) and np.all(np.isfinite(obj))
  assert np.all(np.diff(obj) <= 1e-5 * obj[0])
  assert obj[-1] < obj[0]
  codes = [np.asarray(cmfh.encode(model, v, m)) for m, v in enumerate(views)]
  for c in codes:
    assert c.dtype == np.int8 and c.shape == (300, 6)
    assert set(np.unique(c)) <= {-1, 1}
  # Shared latent -> the views of one item get nearly the same code.
  assert np.mean(codes[0] == codes[1]) > 0.8
  assert np.mean(codes[1] == codes[2]) > 0.8
  # Centred data: the latent's mean (the threshold) is ~0 and shared by the views.
  thr = np.asarray(model.thresholds[0])
  assert np.max(np.abs(thr)) < 1e-3 * np.max(np.abs(np.asarray(model.projections[0])))
  np.testing.assert_array_equal(thr, np.asarray(model.thresholds[2]))


def test_bad_inputs(np_rng, rng):
  views = _views(np_rng, 300, (10, 7, 5))
  with pytest.raises(ValueError, match=r"bits <= n \(training items\) = 300"):
    cmfh.fit(views, bits=301, rng=rng)
  with pytest.raises(ValueError, match="one weight per view"):
    cmfh.fit(views, bits=2, rng=rng, lambdas=[0.5, 0.5])
  with pytest.raises(ValueError, match="mu must be finite and > 0"):
    cmfh.fit(views, bits=2, rng=rng, mu=0.0)
  with pytest.raises(ValueError, match="gamma must be finite and > 0"):
    cmfh.fit(views, bits=2, rng=rng, gamma=float("nan"))
  with pytest.raises(ValueError, match="lambdas must be finite and > 0"):
    cmfh.fit(views, bits=2, rng=rng, lambdas=[0.5, -0.1, 0.6])
  with pytest.raises(ValueError, match="row counts differ"):
    cmfh.fit([views[0], views[1][1:]], bits=2, rng=rng)
  with pytest.raises(ValueError, match="at least 2 paired training items"):
    cmfh.fit([views[0][:1], views[1][:1]], bits=1, rng=rng)
  model = cmfh.fit(views, bits=6, rng=rng, iterations=30)  # cached trace
  with pytest.raises(ValueError, match=r"modality must be in \[0, 3\)"):
    cmfh.encode(model, views[0], -1)
  bad = views[1].copy()
  bad[0, 0] = np.inf
  with pytest.raises(ValueError, match="inf"):
    cmfh.encode(model, bad, 1)


def test_badly_scaled_rank_deficient_views_stay_finite(rng):
  # UCI's fac (values up to 1353, rank-deficient) + pix views: before the ridge floor,
  # float32 Cholesky went NaN at the second iteration and every code came out -1.
  from hashjax.data import load_uci_mfeat  # pylint: disable=g-import-not-at-top

  data = load_uci_mfeat(views=("fac", "pix"))
  views = [np.asarray(v[:600]) for v in data.views]
  model = cmfh.fit(views, bits=16, rng=rng, iterations=10)
  obj = np.asarray(model.objective)
  assert np.all(np.isfinite(obj))
  assert np.all(np.diff(obj) <= 1e-4 * obj[:-1])   # still a descent method
  codes = np.asarray(cmfh.encode(model, views[0], 0))
  assert len(np.unique(codes, axis=0)) > 1


def test_non_finite_model_raises():
  from hashjax.baselines import common  # pylint: disable=g-import-not-at-top

  model = cmfh.CMFHModel((np.zeros(2),), (np.array([[np.nan]]),), (np.zeros(1),),
                         np.zeros(3))
  with pytest.raises(FloatingPointError, match=r"CMFH fit produced non-finite values "
                     r"in \.projections\[0\]"):
    common.check_finite_model("CMFH", model)
