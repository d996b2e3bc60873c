"""CCA-ITQ against NumPy / SciPy references written here."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from hashjax.baselines import cca_itq


def _views(np_rng, n, dims, k=4, noise=0.5):
  """Views sharing a k-dim latent with decreasing strength (distinct correlations)."""
  z = np_rng.normal(size=(n, k)) * np.linspace(2.0, 0.5, k)
  return [(z @ np_rng.normal(size=(k, d)) + noise * np_rng.normal(size=(n, d))
           + np_rng.normal(size=d)).astype(np.float32) for d in dims]


def _ridged_cov(x, reg):
  c = x.T @ x / x.shape[0]
  return c + reg * np.trace(c) / c.shape[0] * np.eye(c.shape[0])


def _inv_sqrt(c):
  w, v = np.linalg.eigh(c)
  return (v / np.sqrt(w)) @ v.T


def test_cca_directions_match_whitened_svd(np_rng):
  reg, bits = 1e-3, 3
  views = _views(np_rng, 300, (7, 5))
  xs = [v.astype(np.float64) - v.mean(0) for v in views]
  c11, c22 = _ridged_cov(xs[0], reg), _ridged_cov(xs[1], reg)
  c12 = xs[0].T @ xs[1] / xs[0].shape[0]
  w1, w2 = _inv_sqrt(c11), _inv_sqrt(c22)
  u, s, vt = np.linalg.svd(w1 @ c12 @ w2)
  ref = [w1 @ u[:, :bits], w2 @ vt.T[:, :bits]]

  fn = jax.jit(functools.partial(cca_itq.cca_directions, bits=bits))
  rho, dirs = fn([jnp.asarray(x, jnp.float32) for x in xs], reg=jnp.float32(reg))
  np.testing.assert_allclose(np.asarray(rho), s[:bits], atol=2e-4)
  for ours, want in zip(dirs, ref):
    ours = np.asarray(ours, np.float64)
    signs = np.sign(np.sum(ours * want, axis=0))
    np.testing.assert_allclose(ours * signs, want, rtol=2e-3, atol=2e-3)

  model = cca_itq.fit(views, bits=bits, rng=jax.random.key(1), reg=reg)
  np.testing.assert_allclose(np.asarray(model.correlations), s[:bits], atol=2e-4)


def test_multiview_cca_matches_scipy_generalized_eigh(np_rng):
  reg, bits, dims = 1e-2, 3, (4, 6, 5)
  views = _views(np_rng, 200, dims)
  xs = [v.astype(np.float64) - v.mean(0) for v in views]
  x = np.concatenate(xs, axis=1)
  full = x.T @ x / x.shape[0]
  edges = np.cumsum((0,) + dims)
  b = np.zeros_like(full)
  o = full.copy()
  for m in range(3):
    sl = slice(edges[m], edges[m + 1])
    b[sl, sl] = _ridged_cov(xs[m], reg)
    o[sl, sl] = 0.0
  w, v = scipy.linalg.eigh(o, b)
  rho, dirs = jax.jit(functools.partial(cca_itq.cca_directions, bits=bits))(
      [jnp.asarray(x_, jnp.float32) for x_ in xs], reg=jnp.float32(reg))
  np.testing.assert_allclose(np.asarray(rho), w[::-1][:bits], atol=2e-4)
  ours = np.concatenate([np.asarray(d, np.float64) for d in dirs], axis=0)
  want = v[:, ::-1][:, :bits] * np.sqrt(3.0)
  signs = np.sign(np.sum(ours * want, axis=0))
  np.testing.assert_allclose(ours * signs, want, rtol=2e-3, atol=2e-3)


def _numpy_itq_step(v, r):
  b = np.where(v @ r >= 0, 1.0, -1.0)
  u, _, wt = np.linalg.svd(b.T @ v)
  r = wt.T @ u.T
  return r, np.sum((b - v @ r) ** 2)


def test_itq_step_matches_numpy_and_loss_never_increases(np_rng, rng):
  v = (np_rng.normal(size=(150, 6)) * np.linspace(2, 0.5, 6)).astype(np.float32)
  v -= v.mean(0)
  k = 4
  r_k, loss_k = cca_itq.itq(jnp.asarray(v), rng=rng, iterations=k)
  r_k1, loss_k1 = cca_itq.itq(jnp.asarray(v), rng=rng, iterations=k + 1)
  r_ref, loss_ref = _numpy_itq_step(v.astype(np.float64), np.asarray(r_k, np.float64))
  np.testing.assert_allclose(np.asarray(r_k1), r_ref, atol=1e-4)
  np.testing.assert_allclose(np.asarray(loss_k1)[:k], np.asarray(loss_k), rtol=1e-6)
  np.testing.assert_allclose(float(loss_k1[k]), loss_ref, rtol=1e-4)
  r = np.asarray(r_k1, np.float64)
  np.testing.assert_allclose(r.T @ r, np.eye(6), atol=1e-5)

  # A 30-step NumPy loop from the same start never increases the loss either.
  r = np.asarray(cca_itq.itq(jnp.asarray(v), rng=rng, iterations=1)[0], np.float64)
  losses = [_numpy_itq_step(v.astype(np.float64), r)[1]]
  for _ in range(30):
    r, loss = _numpy_itq_step(v.astype(np.float64), r)
    losses.append(loss)
  assert np.all(np.diff(losses) <= 1e-6 * losses[0])


def test_fit_codes(np_rng, rng):
  views = _views(np_rng, 400, (9, 5), noise=0.1)
  model = cca_itq.fit(views, bits=4, rng=rng, iterations=20)
  loss = np.asarray(model.quantization_loss)
  assert loss.shape == (20,)
  assert np.all(np.diff(loss) <= 1e-5 * loss[0])
  r = np.asarray(model.rotation)
  np.testing.assert_allclose(r.T @ r, np.eye(4), atol=1e-5)
  codes = [np.asarray(cca_itq.encode(model, v, m)) for m, v in enumerate(views)]
  for c in codes:
    assert c.dtype == np.int8 and c.shape == (400, 4)
    assert set(np.unique(c)) <= {-1, 1}
  # Paired items get (mostly) the same code from both views.
  assert np.mean(codes[0] == codes[1]) > 0.85
  # Codes are sign((x - mean) @ P) with sign(0) = +1.
  z = (views[1] - np.asarray(model.means[1])) @ np.asarray(model.projections[1])
  agree = np.mean(np.where(z >= 0, 1, -1) == codes[1])
  assert agree > 0.995


def test_bad_inputs(np_rng, rng):
  views = _views(np_rng, 400, (9, 5))
  with pytest.raises(ValueError, match=r"at most min_m d_m = 5 bits"):
    cca_itq.fit(views, bits=6, rng=rng)
  with pytest.raises(ValueError, match="row counts differ"):
    cca_itq.fit([views[0], views[1][:40]], bits=2, rng=rng)
  with pytest.raises(ValueError, match="at least 2 views"):
    cca_itq.fit([views[0]], bits=2, rng=rng)
  with pytest.raises(ValueError, match="list or tuple"):
    cca_itq.fit(views[0], bits=2, rng=rng)
  bad = views[0].copy()
  bad[3, 2] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    cca_itq.fit([bad, views[1]], bits=2, rng=rng)
  with pytest.raises(ValueError, match="bits must be positive"):
    cca_itq.fit(views, bits=0, rng=rng)
  with pytest.raises(ValueError, match="iterations"):
    cca_itq.fit(views, bits=2, rng=rng, iterations=0)
  model = cca_itq.fit(views, bits=4, rng=rng, iterations=20)  # cached trace
  with pytest.raises(ValueError, match=r"modality must be in \[0, 2\)"):
    cca_itq.encode(model, views[0], 2)
  with pytest.raises(ValueError, match="must have 5 columns"):
    cca_itq.encode(model, views[0], 1)
