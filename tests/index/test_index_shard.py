"""Sharded index (8 forced CPU devices) == unsharded == NumPy brute force."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from retrieval_reference import stable_topk

from hashjax import index as hindex


def test_eight_devices():
  assert jax.device_count() == 8


def test_sharded_equals_unsharded_and_numpy(np_rng):
  bits, n = 100, 1003  # 1003 rows: the last shard is padded
  db = np_rng.choice(np.array([-1, 1], np.int8), size=(n, bits))
  # Duplicates straddling shard boundaries (126 rows per shard): ties across devices.
  for rows in (np.arange(100, 400, 7), np.arange(900, 1003, 3)):
    db[rows] = db[rows[0]]
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(21, bits))
  q[:2] = db[[100, 900]]
  index = hindex.add(hindex.create(bits), db[:500])
  sharded = hindex.shard(index)
  sharded = hindex.add(sharded, db[500:])  # adding keeps the sharding
  assert sharded.mesh is not None and sharded.mesh.shape["data"] == 8
  assert sharded.packed.sharding.spec == P("data", None)
  assert sharded.count == n and sharded.capacity == 1008
  index = hindex.add(index, db[500:])
  ref_d, ref_i = stable_topk(q, db, 60)
  d_sh, i_sh = hindex.search(sharded, q, 60, chunk_size=16)  # 8 chunks per device
  d_un, i_un = hindex.search(index, q, 60, chunk_size=16)
  np.testing.assert_array_equal(np.asarray(i_sh), ref_i)
  np.testing.assert_array_equal(np.asarray(d_sh), ref_d)
  np.testing.assert_array_equal(np.asarray(i_sh), np.asarray(i_un))
  np.testing.assert_array_equal(np.asarray(d_sh), np.asarray(d_un))

  res = hindex.radius_search(sharded, q, 40, chunk_size=16)
  dist = np.count_nonzero(q[:, None, :] != db[None, :, :], axis=-1)
  np.testing.assert_array_equal(res.counts, np.sum(dist <= 40, axis=1))
  for j, (d, i) in enumerate(res.to_lists()):
    hits = np.nonzero(dist[j] <= 40)[0]
    hits = hits[np.argsort(dist[j, hits], kind="stable")]
    np.testing.assert_array_equal(i, hits)
    np.testing.assert_array_equal(d, dist[j, hits])


def test_k_larger_than_rows_per_device(np_rng):
  # 19 rows over 8 devices (3 per device, 5 padding rows), k = 17.
  bits = 24
  db = np_rng.choice(np.array([-1, 1], np.int8), size=(19, bits))
  db[10:] = db[0]
  q = np.concatenate([db[:1], np_rng.choice(np.array([-1, 1], np.int8), size=(3, bits))])
  ids = np.arange(19) * 10 - 50  # negative user ids too
  sharded = hindex.shard(hindex.add(hindex.create(bits), db, ids))
  ref_d, ref_i = stable_topk(q, db, 17)
  d, i = hindex.search(sharded, q, 17)
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ids[ref_i])


def test_mesh_without_data_axis():
  mesh = jax.make_mesh((8,), ("model",))
  with pytest.raises(ValueError, match="'data' axis"):
    hindex.shard(hindex.create(8), mesh)
