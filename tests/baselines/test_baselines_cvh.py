"""CVH against SciPy's generalized symmetric eigensolver and the CCA identity."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from hashjax.baselines import cvh


def _views(np_rng, n, dims, k=4, noise=0.5):
  z = np_rng.normal(size=(n, k)) * np.linspace(2.0, 0.5, k)
  return [(z @ np_rng.normal(size=(k, d)) + noise * np_rng.normal(size=(n, d))
           + np_rng.normal(size=d)).astype(np.float32) for d in dims]


def _cvh_problem(xs, reg):
  """L = (M-1) B - O and B, built block by block from the paper's objective."""
  dims = [x.shape[1] for x in xs]
  edges = np.cumsum([0] + dims)
  n, num = xs[0].shape[0], len(xs)
  b = np.zeros((edges[-1], edges[-1]))
  lap = np.zeros_like(b)
  for m in range(num):
    for k in range(num):
      sm, sk = slice(edges[m], edges[m + 1]), slice(edges[k], edges[k + 1])
      c = xs[m].T @ xs[k] / n
      if m == k:
        c = c + reg * np.trace(c) / dims[m] * np.eye(dims[m])
        b[sm, sm] = c
        lap[sm, sm] = (num - 1) * c
      else:
        lap[sm, sk] = -c
  return lap, b


def test_cvh_matches_scipy_generalized_eigh(np_rng, rng):
  reg, bits, dims = 1e-3, 6, (4, 6, 5)
  views = _views(np_rng, 250, dims)
  xs = [v.astype(np.float64) - v.mean(0) for v in views]
  lap, b = _cvh_problem(xs, reg)
  w, v = scipy.linalg.eigh(lap, b)
  lam, blocks = jax.jit(functools.partial(cvh.cvh_directions, bits=bits))(
      [jnp.asarray(x, jnp.float32) for x in xs], reg=jnp.float32(reg))
  np.testing.assert_allclose(np.asarray(lam), w[:bits], atol=2e-4)
  ours = np.concatenate([np.asarray(a, np.float64) for a in blocks], axis=0)
  want = v[:, :bits]
  signs = np.sign(np.sum(ours * want, axis=0))
  np.testing.assert_allclose(ours * signs, want, rtol=2e-3, atol=2e-3)
  np.testing.assert_allclose(ours.T @ b @ ours, np.eye(bits), atol=1e-4)

  model = cvh.fit(views, bits=bits, rng=rng, reg=reg)
  np.testing.assert_allclose(np.asarray(model.eigenvalues), w[:bits], atol=2e-4)
  # The relaxed objective of each bit: sum_{m<k} ||X_m a_m - X_k a_k||^2 / n plus the
  # ridge penalty (M - 1) sum_m ridge_m ||a_m||^2 equals its eigenvalue.
  a = [np.asarray(p, np.float64) for p in model.projections]
  pair = sum(np.sum((xs[m] @ a[m] - xs[k] @ a[k]) ** 2, axis=0)
             for m in range(3) for k in range(m + 1, 3)) / xs[0].shape[0]
  ridge = sum(reg * np.trace(x.T @ x / x.shape[0]) / x.shape[1]
              * np.sum(am ** 2, axis=0) for x, am in zip(xs, a))
  np.testing.assert_allclose(pair + 2 * ridge, w[:bits], rtol=1e-3, atol=1e-4)


def test_two_view_cvh_is_cca(np_rng, rng):
  """Published identity: with W = I and two views CVH's eigenvalues are 1 - rho."""
  reg, bits = 1e-3, 4
  views = _views(np_rng, 300, (8, 5))
  xs = [v.astype(np.float64) - v.mean(0) for v in views]
  covs = [x.T @ x / x.shape[0] for x in xs]
  covs = [c + reg * np.trace(c) / c.shape[0] * np.eye(c.shape[0]) for c in covs]
  inv_sqrt = []
  for c in covs:
    w, v = np.linalg.eigh(c)
    inv_sqrt.append((v / np.sqrt(w)) @ v.T)
  rho = np.linalg.svd(inv_sqrt[0] @ (xs[0].T @ xs[1] / xs[0].shape[0]) @ inv_sqrt[1],
                      compute_uv=False)
  model = cvh.fit(views, bits=bits, rng=rng, reg=reg)
  np.testing.assert_allclose(np.asarray(model.eigenvalues), 1.0 - rho[:bits],
                             atol=2e-4)


def test_codes_and_bad_inputs(np_rng, rng):
  views = _views(np_rng, 300, (8, 5), noise=0.1)
  model = cvh.fit(views, bits=3, rng=rng)
  codes = [np.asarray(cvh.encode(model, v, m)) for m, v in enumerate(views)]
  for c in codes:
    assert c.dtype == np.int8 and c.shape == (300, 3)
    assert set(np.unique(c)) <= {-1, 1}
  assert np.mean(codes[0] == codes[1]) > 0.85
  # Up to sum_m d_m bits are allowed.
  assert cvh.fit(views, bits=13, rng=rng).projections[0].shape == (8, 13)
  with pytest.raises(ValueError, match=r"at most sum_m d_m = 13 bits"):
    cvh.fit(views, bits=14, rng=rng)
  with pytest.raises(ValueError, match="row counts differ"):
    cvh.fit([views[0][:10], views[1]], bits=2, rng=rng)
  with pytest.raises(ValueError, match="inf"):
    cvh.fit([views[0], np.full_like(views[1], np.inf)], bits=2, rng=rng)
  with pytest.raises(ValueError, match="modality must be an int"):
    cvh.encode(model, views[0], 0.5)
  with pytest.raises(ValueError, match="must have 8 columns"):
    cvh.encode(model, views[1], 0)
  with pytest.raises(ValueError, match="2-D"):
    cvh.encode(model, views[0][0], 0)
