"""DCGH loss against an explicit NumPy loop over items i, j and classes c (docs/dcgh.md)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hashjax.dcgh import losses


def _cos(a, b):
  na = max(math.sqrt(float(np.dot(a, a))), 1e-12)
  nb = max(math.sqrt(float(np.dot(b, b))), 1e-12)
  return float(np.dot(a, b)) / (na * nb)


def reference_loss(hi, ht, y, p, neg_w=0.8, pos_w=0.05):
  """Plain loops, written from docs/dcgh.md (not from the implementation)."""
  hi, ht, y, p = (np.asarray(a, np.float64) for a in (hi, ht, y, p))
  n, num_c = y.shape
  t = {}
  for name, h in (("image", hi), ("text", ht)):
    pos_sum = neg_sum = 0.0
    n_pos = n_neg = 0
    var_sum = 0.0
    for i in range(n):
      d = []
      for c in range(num_c):
        cs = _cos(h[i], p[c])
        if y[i, c] == 1:
          pos_sum += 1 - cs
          n_pos += 1
          d.append(1 - cs)
        else:
          neg_sum += max(0.0, cs)
          n_neg += 1
          d.append(0.0)
      mean = sum(d) / num_c
      var_sum += sum((v - mean) ** 2 for v in d) / (num_c - 1)
    t[f"proxy_{name}"] = ((pos_sum / n_pos if n_pos else 0.0)
                          + (neg_sum / n_neg if n_neg else 0.0))
    t[f"var_{name}"] = var_sum / n
  pairs = {"ii": (hi, hi), "tt": (ht, ht), "it": (hi, ht)}
  for key, (a, b) in pairs.items():
    s_pos, c_pos, s_neg, c_neg = 0.0, 0, 0.0, 0
    for i in range(n):
      for j in range(n):
        s = _cos(y[i], y[j])
        cab = _cos(a[i], b[j])
        if s > 0:
          s_pos += max(0.0, s - cab)
          c_pos += 1
        if y[i].sum() >= 2 and y[j].sum() >= 2 and float(np.dot(y[i], y[j])) == 0:
          s_neg += max(0.0, cab)
          c_neg += 1
    t[f"pos_{key}"] = s_pos / c_pos if c_pos else 0.0
    t[f"neg_{key}"] = s_neg / c_neg if c_neg else 0.0
  total = (t["proxy_image"] + t["proxy_text"] + t["var_image"] + t["var_text"]
           + neg_w * (t["neg_ii"] + t["neg_tt"] + t["neg_it"])
           + pos_w * (t["pos_ii"] + t["pos_tt"] + t["pos_it"]))
  return total, t


def _data(np_rng, n, num_c, bits, kind):
  hi = np.tanh(np_rng.normal(size=(n, bits))).astype(np.float32)
  ht = np.tanh(np_rng.normal(size=(n, bits))).astype(np.float32)
  p = np.tanh(np_rng.normal(size=(num_c, bits)) * 0.5).astype(np.float32)
  if kind == "multi":
    y = (np_rng.random((n, num_c)) < 0.3).astype(np.uint8)
    y[0] = 0
    y[0, [0, 1]] = 1   # guarantee disjoint multi-label pairs exist
    y[1] = 0
    y[1, [2, 3]] = 1
  elif kind == "single":
    y = np.eye(num_c, dtype=np.uint8)[np_rng.integers(0, num_c, n)]
  elif kind == "zero_rows":
    y = (np_rng.random((n, num_c)) < 0.4).astype(np.uint8)
    y[[1, 3]] = 0
  elif kind == "no_negatives":   # every item multi-label but all share class 0
    y = (np_rng.random((n, num_c)) < 0.5).astype(np.uint8)
    y[:, 0] = 1
    y[:, 1] = 1
  else:
    raise ValueError(kind)
  return hi, ht, y, p


def _check(hi, ht, y, p, **kw):
  want_total, want = reference_loss(hi, ht, y, p, **kw)
  wkw = {"neg_weight": kw.get("neg_w", 0.8), "pos_weight": kw.get("pos_w", 0.05)}
  total, terms = jax.jit(functools.partial(losses.dcgh_loss, **wkw))(
      jnp.asarray(hi), jnp.asarray(ht), jnp.asarray(y), jnp.asarray(p))
  assert set(terms) == set(losses.LOSS_TERMS)
  for k in losses.LOSS_TERMS:
    np.testing.assert_allclose(float(terms[k]), want[k], rtol=2e-5, atol=2e-6, err_msg=k)
  np.testing.assert_allclose(float(total), want_total, rtol=2e-5, atol=2e-6)
  return want


@pytest.mark.parametrize("kind", ["multi", "single", "zero_rows", "no_negatives"])
def test_terms_match_numpy_loops(np_rng, kind):
  hi, ht, y, p = _data(np_rng, 9, 5, 8, kind)
  want = _check(hi, ht, y, p)
  if kind == "multi":
    assert want["neg_it"] > 0 and want["pos_it"] > 0
  if kind in ("single", "no_negatives"):   # the negative pair terms vanish
    assert want["neg_ii"] == want["neg_tt"] == want["neg_it"] == 0.0


def test_batch_of_two_and_weights(np_rng):
  hi, ht, _, p = _data(np_rng, 2, 4, 6, "multi")
  y = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], np.uint8)   # disjoint: one negative pair
  want = _check(hi, ht, y, p, neg_w=0.3, pos_w=2.0)
  # Hand count: S is the identity, so positives are the 2 diagonal pairs.
  np.testing.assert_allclose(
      want["pos_ii"], 0.0, atol=1e-6)   # cos(h_i, h_i) = 1 = S_ii
  cos01 = _cos(hi[0], ht[1])
  cos10 = _cos(hi[1], ht[0])
  np.testing.assert_allclose(want["neg_it"], (max(0, cos01) + max(0, cos10)) / 2)


def test_mask_equals_unpadded_batch(np_rng):
  hi, ht, y, p = _data(np_rng, 7, 5, 8, "multi")
  pad = 3
  hi_p = np.concatenate([hi, np_rng.normal(size=(pad, 8)).astype(np.float32)])
  ht_p = np.concatenate([ht, np.zeros((pad, 8), np.float32)])   # zero rows: no NaN
  y_p = np.concatenate([y, np.ones((pad, 5), np.uint8)])
  mask = np.arange(7 + pad) < 7
  want_total, want = reference_loss(hi, ht, y, p)
  f = jax.jit(losses.dcgh_loss)
  total, terms = f(hi_p, ht_p, y_p, p, mask=mask)
  np.testing.assert_allclose(float(total), want_total, rtol=2e-5)
  for k in losses.LOSS_TERMS:
    np.testing.assert_allclose(float(terms[k]), want[k], rtol=2e-5, atol=2e-6, err_msg=k)
  grads = jax.grad(lambda a, b, c: f(a, b, y_p, c, mask=mask)[0], argnums=(0, 1, 2))(
      hi_p, ht_p, p)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  np.testing.assert_array_equal(np.asarray(grads[1][7:]), 0.0)


def test_all_zero_labels_is_finite(np_rng):
  hi, ht, _, p = _data(np_rng, 4, 4, 5, "multi")
  y = np.zeros((4, 4), np.uint8)
  total, terms = losses.dcgh_loss(hi, ht, y, p)
  _, want = reference_loss(hi, ht, y, p)
  assert np.isfinite(float(total))
  for k in ("pos_ii", "pos_it", "neg_ii"):
    assert float(terms[k]) == 0.0
  np.testing.assert_allclose(float(terms["proxy_image"]), want["proxy_image"], rtol=2e-5)


def test_pmap_all_gather_equals_global_loss(np_rng):
  n_dev = jax.device_count()
  hi, ht, y, p = _data(np_rng, 2 * n_dev, 6, 8, "multi")
  want_total, want = reference_loss(hi, ht, y, p)

  def per_device(a, b, c):
    return losses.dcgh_loss(a, b, c, jnp.asarray(p), axis_name="d")

  shard = lambda x: x.reshape(n_dev, 2, *x.shape[1:])
  total, terms = jax.pmap(per_device, axis_name="d")(shard(hi), shard(ht), shard(y))
  np.testing.assert_allclose(np.asarray(total), want_total, rtol=2e-5)
  np.testing.assert_allclose(np.asarray(terms["neg_it"]), want["neg_it"], rtol=2e-5)


def test_init_proxies_statistics(rng):
  p = losses.init_proxies(rng, 50, 400)
  assert p.shape == (50, 400) and p.dtype == jnp.float32
  pre = np.arctanh(np.clip(np.asarray(p, np.float64), -1 + 1e-7, 1 - 1e-7))
  np.testing.assert_allclose(pre.std(), math.sqrt(2 / 50), rtol=0.03)
  assert abs(pre.mean()) < 0.01


def test_bad_shapes_raise():
  h = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match="proxies must be"):
    losses.dcgh_loss(h, h, jnp.zeros((3, 2)), jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match="at least 2 classes"):
    losses.dcgh_loss(h, h, jnp.zeros((3, 1)), jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match="labels must be"):
    losses.dcgh_loss(h, h, jnp.zeros((2, 2)), jnp.zeros((2, 4)))
