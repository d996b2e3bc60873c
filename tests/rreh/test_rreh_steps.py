"""Each RREH step (hashjax.rreh.steps) against a hand-worked case or plain NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from hashjax.rreh import steps


def _rand(seed, *shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_binarize_sign_zero_is_plus_one():
  z = jnp.asarray([[-2.0, 0.0, 3.0, -0.0]])
  np.testing.assert_array_equal(np.asarray(steps.binarize(z)), [[-1, 1, 1, 1]])


def test_squared_distances_and_kernel_by_hand():
  x = jnp.asarray([[0.0, 0.0], [3.0, 4.0]])
  a = jnp.asarray([[0.0, 0.0], [0.0, 4.0], [1.0, 0.0]])
  d2 = np.asarray(steps.squared_distances(x, a))
  np.testing.assert_allclose(d2, [[0, 16, 1], [25, 9, 20]], atol=1e-5)
  phi = np.asarray(steps.kernel_features(x, a, jnp.asarray(2.0)))
  np.testing.assert_allclose(phi, np.exp(-np.array([[0, 16, 1], [25, 9, 20]]) / 4.0),
                             rtol=1e-5)
  # Zero-padding the feature columns leaves distances unchanged.
  d2p = steps.squared_distances(jnp.pad(x, ((0, 0), (0, 3))), jnp.pad(a, ((0, 0), (0, 3))))
  np.testing.assert_allclose(np.asarray(d2p), d2, atol=1e-5)


def test_kernel_from_distances_default_width_and_masked_centring():
  """What fit uses: the default width (mean item-anchor squared distance over real
  rows), Gaussian features, centring by the real rows' mean; padded rows 0."""
  x, a = _rand(0, 2, 6, 3), _rand(1, 2, 4, 3)
  mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], np.float32)
  for m in range(2):
    dist = ((x[m][:, None] - a[m][None]) ** 2).sum(-1)       # NumPy, [6, 4]
    phi, mean, d2 = steps.kernel_from_distances(jnp.asarray(dist), jnp.asarray(mask[m]))
    real = mask[m] > 0
    ref_d2 = np.mean([[np.sum((r - aj) ** 2) for aj in a[m]] for r in x[m][real]])
    np.testing.assert_allclose(float(d2), ref_d2, rtol=1e-5)
    f = np.exp(-dist / (2 * ref_d2))
    mu = f[real].mean(0)
    np.testing.assert_allclose(np.asarray(mean), mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(phi)[real], f[real] - mu, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(phi)[~real], 0.0)
    # A given width is used as is.
    phi2, _, d2b = steps.kernel_from_distances(jnp.asarray(dist), jnp.asarray(mask[m]),
                                               jnp.float32(0.5))
    assert float(d2b) == 0.5
    f2 = np.exp(-dist / 1.0)
    np.testing.assert_allclose(np.asarray(phi2)[real], f2[real] - f2[real].mean(0),
                               atol=1e-5)


def test_reconstruction_step_is_the_ridge_solution():
  phi_u, phi_s = _rand(2, 9, 5).astype(np.float64), _rand(3, 5, 5).astype(np.float64)
  theta = 0.7
  r = np.asarray(steps.reconstruction_step(jnp.asarray(phi_u, jnp.float32),
                                           jnp.asarray(phi_s, jnp.float32),
                                           jnp.asarray(theta)))
  ref = phi_u @ phi_s.T @ np.linalg.inv(phi_s @ phi_s.T + theta * np.eye(5))
  np.testing.assert_allclose(r, ref, atol=2e-4)
  # Optimality: the gradient of ||Phi_u - R Phi_S||^2 + theta ||R||^2 vanishes.
  grad = -2 * (phi_u - r @ phi_s) @ phi_s.T + 2 * theta * r
  np.testing.assert_allclose(grad, 0.0, atol=2e-3)


def test_latent_targets_by_hand():
  v = jnp.asarray([[1.0, -1.0], [2.0, 0.5], [-1.0, 1.0]])      # n_p = 3
  r = jnp.asarray([[0, 0], [0, 0], [0, 0], [0.5, 2.0], [0, 0]], jnp.float32)  # n = 5
  z = np.asarray(steps.latent_targets(v, r, jnp.asarray([2, 0])))
  # unpaired row 3: 0.5 * v[2] + 2 * v[0] = [1.5, -1.5]; padding row 4: 0.
  np.testing.assert_allclose(z, [[1, -1], [2, 0.5], [-1, 1], [1.5, -1.5], [0, 0]])


def test_w_step_and_b_step_against_numpy():
  phi, z = _rand(4, 20, 6).astype(np.float64), _rand(5, 20, 3).astype(np.float64)
  b = np.where(_rand(6, 20, 3) >= 0, 1.0, -1.0)
  phi[17:] = 0.0                                     # 3 padded rows
  mask = np.r_[np.ones(17), np.zeros(3)]
  beta, lam = 0.3, 0.05
  q, p = steps.w_factor(jnp.asarray(phi, jnp.float32), beta=jnp.asarray(beta),
                        lam=jnp.asarray(lam))
  w = np.asarray(steps.w_step(q, p, jnp.asarray(z, jnp.float32), jnp.asarray(b, jnp.float32),
                              jnp.asarray(mask, jnp.float32), beta=jnp.asarray(beta)))
  ref = np.linalg.solve((1 + beta) * phi.T @ phi + lam * np.eye(6), phi.T @ (z + beta * b))
  np.testing.assert_allclose(w, ref, atol=1e-4)
  bb = np.asarray(steps.b_step(jnp.asarray(phi, jnp.float32), jnp.asarray(w)))
  np.testing.assert_array_equal(bb[:17], np.where(phi @ ref >= 0, 1, -1)[:17])


def test_w_step_wider_than_tall():
  # Linear RREH with more features than items: k = 9 > n = 5 (thin QR has 5 columns).
  phi, z = _rand(10, 5, 9).astype(np.float64), _rand(11, 5, 2).astype(np.float64)
  b = np.where(_rand(12, 5, 2) >= 0, 1.0, -1.0)
  beta, lam = 0.1, 0.5
  q, p = steps.w_factor(jnp.asarray(phi, jnp.float32), beta=jnp.asarray(beta),
                        lam=jnp.asarray(lam))
  assert q.shape == (5, 5) and p.shape == (9, 5)
  w = steps.w_step(q, p, jnp.asarray(z, jnp.float32), jnp.asarray(b, jnp.float32),
                   jnp.ones(5), beta=jnp.asarray(beta))
  ref = np.linalg.solve((1 + beta) * phi.T @ phi + lam * np.eye(9), phi.T @ (z + beta * b))
  np.testing.assert_allclose(np.asarray(w), ref, atol=1e-4)


def test_w_step_accurate_when_the_gram_matrix_is_not():
  # n = 20000 smooth kernel features of 2-d points (100 strongly correlated columns,
  # condition number ~3e6) and the paper's (docs/rreh.md) lambda = 0.01. The W-step must reach the
  # float64 optimum of its ridge objective to 1e-9 relative. (The float32 normal
  # equations, Cholesky of Phi^T Phi, miss it by 6e-7 here, and at n = 1e5, k = 2000
  # made RREH's objective rise between iterations.)
  rs = np.random.default_rng(0)
  n, k, nb, beta, lam = 20000, 100, 8, 0.1, 0.01
  centers, x = rs.random((k, 2)), rs.random((n, 2))
  phi = np.exp(-((x[:, None, :] - centers[None]) ** 2).sum(-1))
  phi -= phi.mean(0)
  t = rs.normal(size=(n, nb))
  b = np.where(rs.normal(size=(n, nb)) >= 0, 1.0, -1.0)

  def objective(w):
    p = phi @ w
    return ((t - p) ** 2).sum() + beta * ((b - p) ** 2).sum() + lam * (w ** 2).sum()

  w64 = np.linalg.solve((1 + beta) * phi.T @ phi + lam * np.eye(k), phi.T @ (t + beta * b))
  q, p = steps.w_factor(jnp.asarray(phi, jnp.float32), beta=jnp.asarray(beta),
                        lam=jnp.asarray(lam))
  w = np.asarray(steps.w_step(q, p, jnp.asarray(t, jnp.float32), jnp.asarray(b, jnp.float32),
                              jnp.ones(n), beta=jnp.asarray(beta)), np.float64)
  f64, f = objective(w64), objective(w)
  assert f - f64 <= 1e-9 * f64, (f, f64)


def test_v_step_solves_the_full_least_squares():
  rs = np.random.default_rng(7)
  m, n_p, n, s, b = 2, 6, 10, 3, 2
  ref_idx = np.array([4, 1, 2])
  p = rs.normal(size=(m, n, b))
  r = np.zeros((m, n, s))
  r[:, n_p:n - 1] = rs.normal(size=(m, n - 1 - n_p, s))   # last row: padding
  p[:, n - 1] = 0.0
  v_inv = steps.v_inverse(jnp.asarray(r, jnp.float32))
  v = np.asarray(steps.v_step(jnp.asarray(p, jnp.float32), jnp.asarray(r, jnp.float32),
                              v_inv, jnp.asarray(ref_idx), n_paired=n_p))
  # Stack the least-squares problem in vec(V) and solve it with lstsq.
  sel = np.zeros((s, n_p))
  sel[np.arange(s), ref_idx] = 1
  a = np.concatenate([np.eye(n_p)] * m + [r[i][n_p:] @ sel for i in range(m)])
  y = np.concatenate([p[i][:n_p] for i in range(m)] + [p[i][n_p:] for i in range(m)])
  ref = np.linalg.lstsq(a, y, rcond=None)[0]
  np.testing.assert_allclose(v, ref, atol=1e-4)
  # Non-reference rows are the mean of the modalities' paired rows.
  others = [i for i in range(n_p) if i not in ref_idx]
  np.testing.assert_allclose(v[others], p[:, others].mean(0), atol=1e-5)


def test_orthogonalize_is_balanced_and_decorrelated():
  v = jnp.asarray(_rand(8, 30, 4))
  o = np.asarray(steps.orthogonalize(v))
  np.testing.assert_allclose(o.sum(0), 0.0, atol=1e-3)
  np.testing.assert_allclose(o.T @ o, 30 * np.eye(4), atol=1e-3)
  # It is the nearest such matrix to the centred V: Procrustes solution.
  vc = np.asarray(v) - np.asarray(v).mean(0)
  u, _, qt = np.linalg.svd(vc, full_matrices=False)
  np.testing.assert_allclose(o, np.sqrt(30) * u @ qt, atol=1e-4)


def test_objective_by_hand():
  phi = jnp.asarray([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])          # n=3, k=2
  mask = jnp.asarray([1.0, 1.0, 0.0])
  w = jnp.asarray([[1.0], [0.5]])                                  # b=1
  b = jnp.asarray([[1.0], [-1.0], [1.0]])
  z = jnp.asarray([[0.0], [2.0], [9.0]])
  # P = [1, 1, (masked)]; ||Z-P||^2 = 1 + 1; beta ||B-P||^2 = 0.5 * (0 + 4);
  # lam ||W||^2 = 0.1 * 1.25.
  obj = steps.objective(phi, mask, w, b, z, beta=jnp.asarray(0.5), lam=jnp.asarray(0.1))
  np.testing.assert_allclose(float(obj), 2 + 2 + 0.125, rtol=1e-6)


def test_sample_anchors_distinct_and_capped():
  idx = np.asarray(steps.sample_anchors(jax.random.key(0), 50, 20))
  assert idx.shape == (20,) and len(set(idx.tolist())) == 20 and idx.min() >= 0
  assert idx.max() < 50
  capped = np.asarray(steps.sample_anchors(jax.random.key(0), 7, 600))
  assert sorted(capped.tolist()) == list(range(7))


def test_floor_delta2_constant_view_gives_zero_features_not_nan():
  x = jnp.ones((5, 3))                          # constant view: every distance is 0
  dist = steps.squared_distances(x, x[:2])
  phi, _, d2 = steps.kernel_from_distances(dist, jnp.ones(5))
  assert 0.0 < float(d2) <= np.finfo(np.float32).tiny   # floored, not 0
  np.testing.assert_array_equal(np.asarray(phi), 0.0)   # was exp(-0/0) = NaN


def test_relative_scale_is_mean_gram_eigenvalue():
  a = _rand(9, 7, 4)
  ref = np.mean(np.linalg.eigvalsh(a.T.astype(np.float64) @ a))
  np.testing.assert_allclose(float(steps.relative_scale(jnp.asarray(a))), ref, rtol=1e-5)
  assert float(steps.relative_scale(jnp.zeros((3, 2)))) > 0.0


def test_tsqr_on_sharded_rows_is_a_thin_qr():
  # 8 forced CPU devices (tests/conftest.py): rows sharded 8 ways, 6 rows per shard
  # (fewer than k = 7 columns, so the local R factors are 6 x 7).
  assert jax.device_count() == 8
  mesh = jax.make_mesh((8,), ("data",))
  x = _rand(10, 48, 7).astype(np.float32)
  xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
      "data", None)))
  q, r = jax.jit(lambda a: steps.tsqr(a, mesh))(xs)
  q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
  assert q.shape == (48, 7) and r.shape == (7, 7)
  np.testing.assert_allclose(q @ r, x, atol=1e-5)
  np.testing.assert_allclose(q.T @ q, np.eye(7), atol=1e-5)
  np.testing.assert_allclose(np.tril(r, -1), 0.0, atol=1e-6)
  # Same R as NumPy's QR up to the signs of its rows.
  r_ref = np.linalg.qr(x.astype(np.float64))[1]
  np.testing.assert_allclose(np.abs(r), np.abs(r_ref), atol=1e-4)
