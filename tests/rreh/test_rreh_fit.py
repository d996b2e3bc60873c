"""rreh.fit / rreh.encode against the float64 NumPy reference (tests/rreh/rreh_reference.py).

The reference is written from docs/rreh.md independently of the JAX code (per-modality
loops on unpadded arrays, ``s x s`` reconstruction formula, full ``n_p x n_p`` V
normal equations). Anchors and the initial Gaussian G are taken from the same PRNG
key as ``fit`` uses: ``rng_anchor, rng_init = split(rng)``; G =
``normal(rng_init, (k, bits))``.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rreh_reference import encode_reference, fit_reference  # noqa: E402

from hashjax import rreh  # noqa: E402

BITS, K = 8, 12
HYPER = dict(theta=1.0, beta=0.5, lam=1.0, iterations=6, init_v="gaussian")


def _data(seed, n_p, n_us, dims, c=4):
  rs = np.random.default_rng(seed)
  centers = [rs.normal(size=(c, d)) for d in dims]
  lab = rs.integers(0, c, n_p)
  paired = [(centers[i][lab] + 0.7 * rs.normal(size=(n_p, d))).astype(np.float32)
            for i, d in enumerate(dims)]
  unpaired = []
  for i, d in enumerate(dims):
    lu = rs.integers(0, c, n_us[i])
    unpaired.append((centers[i][lu] + 0.7 * rs.normal(size=(n_us[i], d))).astype(
        np.float32))
  return paired, unpaired


def _reference_for(model, paired, unpaired, rng, cfg):
  _, rng_init = jax.random.split(rng)
  kernel = cfg.get("kernel", True)
  f = K if kernel else max(p.shape[1] for p in paired)
  g = np.asarray(jax.random.normal(rng_init, (f, BITS), jnp.float32), np.float64)
  if not kernel:
    g = g[:paired[0].shape[1]]
  kw = {k: v for k, v in cfg.items() if k not in ("bits", "num_anchors", "select")}
  return fit_reference(paired, unpaired, np.asarray(model.anchor_index), g, **kw)


def _check_against_reference(model, ref, paired, unpaired, queries):
  np.testing.assert_allclose(np.asarray(model.objective), ref["objective"], rtol=2e-5)
  if ref["kernel"]:
    np.testing.assert_allclose(np.asarray(model.delta2), ref["delta2"], rtol=1e-5)
  for i in range(len(paired)):
    f = ref["W"][i].shape[0]
    # Float32 against float64: entries near zero carry the error of the largest ones
    # (about 1e-5 of max |W| where the capped ridge is small), so the absolute
    # tolerance scales with W (seen on AVX-512 hosts: 1.7e-4 at max |W| 15.5).
    np.testing.assert_allclose(np.asarray(model.W[i])[:f], ref["W"][i],
                               atol=2e-5 * np.abs(ref["W"][i]).max(), rtol=1e-3)
    x = np.concatenate([paired[i], unpaired[i], queries[i]])
    np.testing.assert_array_equal(np.asarray(rreh.encode(model, x, i)),
                                  encode_reference(ref, x, i))


def test_fit_matches_reference_two_modalities_and_one_device_mesh():
  paired, unpaired = _data(0, 40, [30, 31], [7, 5])
  queries, _ = _data(1, 25, [0, 0], [7, 5])
  cfg = dict(bits=BITS, num_anchors=K, **HYPER)
  rng = jax.random.key(3)
  model8 = rreh.fit(paired, unpaired, cfg, rng)              # 8 forced CPU devices
  assert jax.device_count() == 8
  ref = _reference_for(model8, paired, unpaired, rng, cfg)
  _check_against_reference(model8, ref, paired, unpaired, queries)
  # Anchors are distinct paired rows, the same in both modalities (standardised).
  idx = np.asarray(model8.anchor_index)
  assert len(set(idx.tolist())) == K and idx.max() < 40
  for i in range(2):
    d = paired[i].shape[1]
    np.testing.assert_allclose(np.asarray(model8.anchors[i])[:, :d], ref["anchors"][i],
                               atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(model8.anchors[i])[:, :d] * np.asarray(model8.scale[i])
        + np.asarray(model8.shift[i])[:d], paired[i][idx], atol=1e-5)
  # Objective recorded per iteration and non-increasing (no orthogonal projection).
  obj = np.asarray(model8.objective)
  assert obj.shape == (HYPER["iterations"],) and np.all(np.diff(obj) <= 1e-5 * obj[0])
  # A 1-device mesh gives the same codes.
  one = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
  model1 = rreh.fit(paired, unpaired, cfg, rng, mesh=one)
  for i in range(2):
    x = np.concatenate([paired[i], unpaired[i], queries[i]])
    np.testing.assert_array_equal(np.asarray(rreh.encode(model1, x, i)),
                                  np.asarray(rreh.encode(model8, x, i)))
  np.testing.assert_allclose(np.asarray(model1.objective), obj, rtol=1e-5)


def test_fit_three_modalities_unequal_unpaired_counts():
  # 20, 33 and 0 unpaired items: padding + masks; different raw widths.
  paired, unpaired = _data(2, 40, [20, 33, 0], [6, 4, 9])
  queries, _ = _data(3, 10, [0, 0, 0], [6, 4, 9])
  cfg = dict(bits=BITS, num_anchors=K, **HYPER)
  rng = jax.random.key(5)
  model = rreh.fit(paired, unpaired, cfg, rng)
  ref = _reference_for(model, paired, unpaired, rng, cfg)
  _check_against_reference(model, ref, paired, unpaired, queries)


@pytest.mark.parametrize("variant", [
    dict(reconstruct_against="paired"),
    dict(init_v="pca"),
    dict(orthogonal_v=True, kernel=False, delta2=None),
])
def test_fit_variants_match_reference(variant):
  paired, unpaired = _data(4, 40, [30, 31], [7, 5])
  queries, _ = _data(5, 10, [0, 0], [7, 5])
  cfg = dict(bits=BITS, num_anchors=K, **{**HYPER, **variant})
  rng = jax.random.key(7)
  model = rreh.fit(paired, unpaired, cfg, rng)
  ref = _reference_for(model, paired, unpaired, rng, cfg)
  _check_against_reference(model, ref, paired, unpaired, queries)


@pytest.mark.parametrize("kernel", [True, False])
def test_fit_with_ridge_cap_matches_reference(kernel):
  # A 2-d view: its kernel features' spectrum falls off within 8 directions, so the
  # cap lowers that view's ridge (raw features: 8 bits > its 2 columns, the floor).
  paired, unpaired = _data(6, 40, [30, 31], [7, 2])
  queries, _ = _data(7, 10, [0, 0], [7, 2])
  cfg = dict(bits=BITS, num_anchors=K, **HYPER, ridge_cap=0.5, kernel=kernel)
  rng = jax.random.key(9)
  model = rreh.fit(paired, unpaired, cfg, rng)
  ref = _reference_for(model, paired, unpaired, rng, cfg)
  _check_against_reference(model, ref, paired, unpaired, queries)
  plain = [HYPER["lam"] * np.sum(p ** 2) / p.shape[1] for p in ref["phi"]]
  assert ref["lam"][1] < 0.5 * plain[1]           # the cap binds on the 2-d view
  uncapped = rreh.fit(paired, unpaired, dict(cfg, ridge_cap=None), rng)
  assert np.abs(np.asarray(model.W) - np.asarray(uncapped.W)).max() > 1e-3
  # A cap that never binds is the uncapped model, bit for bit.
  loose = rreh.fit(paired, unpaired, dict(cfg, ridge_cap=1e12), rng)
  np.testing.assert_array_equal(np.asarray(loose.W), np.asarray(uncapped.W))
  # ridge_cap=0 is no cap (and with lam given, None is no cap too: not searched).
  off = rreh.fit(paired, unpaired, dict(cfg, ridge_cap=0.0), rng)
  np.testing.assert_array_equal(np.asarray(off.W), np.asarray(uncapped.W))


def test_fit_and_encode_stream_float64_memmaps_in_chunks(tmp_path):
  # The views are float64 memory-mapped files; chunk_rows=5 (rounded up to 8 rows
  # on the 8-device mesh) streams each modality in 9 chunks, the last ones partial,
  # and encode runs in 4-row chunks (last one partial). Same reference as above.
  paired, unpaired = _data(0, 40, [30, 31], [7, 5])
  queries, _ = _data(1, 25, [0, 0], [7, 5])

  def memmap(name, a):
    m = np.memmap(tmp_path / name, np.float64, "w+", shape=a.shape)
    m[:] = a
    m.flush()
    return np.memmap(tmp_path / name, np.float64, "r", shape=a.shape)

  mm_p = [memmap(f"p{i}", p) for i, p in enumerate(paired)]
  mm_u = [memmap(f"u{i}", u) for i, u in enumerate(unpaired)]
  cfg = dict(bits=BITS, num_anchors=K, **HYPER)
  rng = jax.random.key(3)
  model = rreh.fit(mm_p, mm_u, cfg, rng, chunk_rows=5)
  ref = _reference_for(model, paired, unpaired, rng, cfg)
  _check_against_reference(model, ref, paired, unpaired, queries)
  for i in range(2):
    x = np.concatenate([paired[i], unpaired[i], queries[i]])
    np.testing.assert_array_equal(np.asarray(rreh.encode(model, x, i, chunk_rows=4)),
                                  encode_reference(ref, x, i))


def test_make_problem_then_run_is_fit():
  # The public path for researchers: make_problem + run + RREHModel == fit.
  paired, unpaired = _data(6, 40, [30, 31], [7, 5])
  queries, _ = _data(7, 10, [0, 0], [7, 5])
  cfg = dict(bits=BITS, num_anchors=K, **HYPER)
  rng = jax.random.key(11)
  model = rreh.fit(paired, unpaired, cfg, rng)
  rng_anchor, rng_init = jax.random.split(rng)
  problem, features = rreh.make_problem(paired, unpaired, cfg, rng_anchor)
  hyper = rreh.make_hyper(theta=HYPER["theta"], beta=HYPER["beta"], lam=HYPER["lam"])
  state = rreh.run(problem, hyper, rng_init, bits=BITS,
                   iterations=HYPER["iterations"])
  mine = rreh.RREHModel(**features._asdict(), W=state.W, objective=state.objective)
  ref = _reference_for(model, paired, unpaired, rng, cfg)
  _check_against_reference(mine, ref, paired, unpaired, queries)
  for i in range(2):
    np.testing.assert_array_equal(np.asarray(rreh.encode(mine, queries[i], i)),
                                  np.asarray(rreh.encode(model, queries[i], i)))
