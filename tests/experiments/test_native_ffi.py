"""experiments/native_ffi: the native mAP kernel (an experiment, issue 16.3) is exact.

Builds hj_rank.cc with the system C++ compiler against jaxlib's XLA FFI headers,
registers it and checks every statistic against the per-query NumPy reference
(tests/retrieval_reference.py: stable argsort, relevance = a shared label) on data
with many ties (8 and 16 bits), queries without relevant items, cut-offs above the
number of relevant items and above n, 3 code words (the generic path) and labels
over 32 classes (two label words). Skipped only where no C++ compiler exists.
"""

import pathlib
import shutil
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from retrieval_reference import per_query

from hashjax import codes

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "native_ffi"))

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")


@pytest.fixture(scope="module")
def native(tmp_path_factory):
  import bench_native_map  # noqa: PLC0415 (needs the path above)
  so, _ = bench_native_map.build(str(tmp_path_factory.mktemp("native")))
  bench_native_map.register(so)
  return bench_native_map


@pytest.mark.parametrize("bits,classes,ks,threads", [
    (8, 5, (1, 7, 40), 1),       # heavy ties, k above R for most queries
    (16, 40, (3, 60), 2),        # two label words, two threads
    (70, 6, (200, 25), 3),       # three code words (generic path), k = n
    (64, 3, (), 2),              # no cut-off
])
def test_native_stats_match_numpy_reference(native, bits, classes, ks, threads):
  rng = np.random.default_rng(bits)
  nq, n = 37, 200
  q = np.where(rng.random((nq, bits)) < 0.5, 1, -1)
  d = np.where(rng.random((n, bits)) < 0.5, 1, -1)
  d[50:80] = d[10]  # exact duplicates: ties across the database
  ql = (rng.random((nq, classes)) < 0.15).astype(np.float32)
  dl = (rng.random((n, classes)) < 0.15).astype(np.float32)
  ql[0] = 0  # a query with no relevant item
  kvec = jnp.asarray(ks, jnp.int32).reshape(len(ks))
  ap, ap_k, ap_calc_k, hits_k = native.native_stats(
      jnp.asarray(codes.pack_host(q)), jnp.asarray(codes.pack_host(d)),
      jnp.asarray(native.pack_labels(ql)), jnp.asarray(native.pack_labels(dl)), kvec,
      bits=bits, threads=threads)
  ref = per_query(q, d, ql, dl, ks=ks)
  np.testing.assert_allclose(np.asarray(ap), ref["ap"], atol=1e-6)
  assert float(ap[0]) == 0.0
  for i, k in enumerate(ks):
    np.testing.assert_allclose(np.asarray(ap_k[:, i]), ref[f"ap@{k}"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(ap_calc_k[:, i]), ref[f"ap_calc@{k}"],
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(hits_k[:, i]),
                                  np.rint(ref[f"p@{k}"] * k).astype(np.int32))


def test_native_stable_map_loop_matches_reference(native):
  """The benchmark's own NumPy loop (its check) agrees with the shared reference."""
  rng = np.random.default_rng(1)
  q = np.where(rng.random((9, 12)) < 0.5, 1, -1).astype(np.float32)
  d = np.where(rng.random((90, 12)) < 0.5, 1, -1).astype(np.float32)
  ql = (rng.random((9, 4)) < 0.3).astype(np.float32)
  dl = (rng.random((90, 4)) < 0.3).astype(np.float32)
  ref = per_query(q, d, ql, dl, ks=(10,))
  assert native.stable_map(q, d, ql, dl) == pytest.approx(ref["ap"].mean(), abs=1e-9)
  assert native.stable_map(q, d, ql, dl, 10) == pytest.approx(ref["ap_calc@10"].mean(),
                                                              abs=1e-9)
