"""HammingIndex search / radius search against a NumPy brute force."""

import jax
import numpy as np
import pytest
from retrieval_reference import stable_topk

from hashjax import index as hindex
from hashjax.metrics import pack_codes


def random_codes(np_rng, n, bits, *, dup_groups=4, dup_size=25):
  """Codes with many exact duplicates (ties) and near duplicates."""
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(n, bits))
  for g in range(dup_groups):
    rows = np_rng.choice(n, size=dup_size, replace=False)
    codes[rows] = codes[g]
  # Near duplicates: one flipped bit, several items at the same distance.
  codes[-10:] = codes[1]
  codes[-10:, 0] *= -1
  return codes


@pytest.mark.parametrize("bits", [8, 24, 64, 100, 256])
def test_search_matches_brute_force(np_rng, bits):
  db = random_codes(np_rng, 600, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(37, bits))
  q[:4] = db[[0, 1, 2, 3]]  # exact hits of duplicated codes
  index = hindex.create(bits)
  for part in np.split(db, [100, 101, 450]):  # several adds, one of a single row
    index = hindex.add(index, part)
  assert index.count == 600 and index.bits == bits
  ref_d, ref_i = stable_topk(q, db, 50)
  # 10 database chunks, 3 query batches (the last padded).
  d, i = hindex.search(index, q, 50, chunk_size=64, query_chunk_size=16)
  assert d.dtype == np.int32 and d.shape == (37, 50) and i.shape == (37, 50)
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)
  # Packed queries give the same answer (same compiled kernel).
  d2, i2 = hindex.search(index, hindex.pack_host(q), 50, chunk_size=64,
                         query_chunk_size=16)
  np.testing.assert_array_equal(np.asarray(i2), ref_i)
  np.testing.assert_array_equal(np.asarray(d2), ref_d)


@pytest.mark.parametrize("chunk_size", [1, 7, 97, 97 + 1000])
def test_chunk_size_does_not_change_results(np_rng, chunk_size):
  db = random_codes(np_rng, 97, 100, dup_groups=2, dup_size=20)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(5, 100))
  index = hindex.add(hindex.create(100), db)
  ref_d, ref_i = stable_topk(q, db, 30)
  d, i = hindex.search(index, q, 30, chunk_size=chunk_size)
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_user_ids_and_full_ranking(np_rng):
  bits, n = 24, 120
  db = random_codes(np_rng, n, bits, dup_groups=3, dup_size=30)
  user_ids = np_rng.permutation(n) * 7 + 3
  index = hindex.add(hindex.create(bits), db[:70], user_ids[:70])
  index = hindex.add(index, db[70:], user_ids[70:])
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(9, bits))
  ref_d, ref_pos = stable_topk(q, db, n)
  d, i = hindex.search(index, q, n)  # k == len(index): the whole ranking
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), user_ids[ref_pos])


@pytest.mark.parametrize("bits", [8, 24, 100, 256])
def test_pack_host_matches_pack_codes(np_rng, bits):
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(13, bits))
  np.testing.assert_array_equal(hindex.pack_host(codes), np.asarray(pack_codes(codes)))
  # Hand-worked: entry 32 w + j -> bit j of word w.
  one = -np.ones((1, bits), np.int8)
  one[0, bits - 1] = 1
  expect = np.zeros((1, (bits + 31) // 32), np.uint32)
  expect[0, (bits - 1) // 32] = np.uint32(1) << np.uint32((bits - 1) % 32)
  np.testing.assert_array_equal(hindex.pack_host(one), expect)


@pytest.mark.parametrize("bits", [24, 64])
def test_radius_search_matches_numpy(np_rng, bits):
  db = random_codes(np_rng, 300, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(20, bits))
  q[:3] = db[[0, 1, 5]]
  index = hindex.add(hindex.create(bits), db)
  dist = np.count_nonzero(q[:, None, :] != db[None, :, :], axis=-1)
  for radius in (0, bits // 2 - 2):
    res = hindex.radius_search(index, q, radius, chunk_size=64, query_chunk_size=8)
    expect_counts = np.sum(dist <= radius, axis=1)
    np.testing.assert_array_equal(res.counts, expect_counts)
    assert res.distances.shape == (20, expect_counts.max())
    for j, (d, i) in enumerate(res.to_lists()):
      hits = np.nonzero(dist[j] <= radius)[0]  # ascending position
      hits = hits[np.argsort(dist[j, hits], kind="stable")]
      np.testing.assert_array_equal(i, hits)
      np.testing.assert_array_equal(d, dist[j, hits])
    # Padding beyond the counts is -1.
    pad = np.arange(res.distances.shape[1])[None, :] >= expect_counts[:, None]
    assert np.all(res.distances[pad] == -1) and np.all(res.ids[pad] == -1)


def test_radius_without_hits(np_rng):
  db = np.ones((10, 16), np.int8)
  q = -np.ones((3, 16), np.int8)
  index = hindex.add(hindex.create(16), db)
  res = hindex.radius_search(index, q, 15)
  assert res.distances.shape == (3, 0) and res.ids.shape == (3, 0)
  np.testing.assert_array_equal(res.counts, [0, 0, 0])
  res = hindex.radius_search(index, q, 16)  # everything, all at distance 16
  np.testing.assert_array_equal(res.counts, [10, 10, 10])
  np.testing.assert_array_equal(res.ids, np.tile(np.arange(10), (3, 1)))
  np.testing.assert_array_equal(res.distances, np.full((3, 10), 16))


def test_index_is_a_pytree(np_rng):
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(5, 40))
  index = hindex.add(hindex.create(40), codes)
  leaves, treedef = jax.tree_util.tree_flatten(index)
  assert len(leaves) == 2 and leaves[0].shape == (5, 2) and leaves[0].dtype == np.uint32
  rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
  assert rebuilt.bits == 40 and rebuilt.count == 5
  # Static fields survive jit; packed word 0 of row r is bits 0..31 of codes[r].
  word0 = jax.jit(lambda ix: ix.packed[:, 0])(index)
  expect = ((codes[:, :32] > 0) * (2 ** np.arange(32, dtype=np.uint64))).sum(1)
  np.testing.assert_array_equal(np.asarray(word0), expect.astype(np.uint32))


def test_bad_inputs(np_rng):
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(10, 64))
  index = hindex.add(hindex.create(64), codes)
  with pytest.raises(ValueError, match="has 64 bits"):
    hindex.search(index, codes[:, :32], 3)
  with pytest.raises(ValueError, match="has 64 bits"):
    hindex.add(index, codes[:, :63])
  with pytest.raises(ValueError, match="2 uint32 words"):
    hindex.search(index, np.zeros((2, 3), np.uint32), 3)
  with pytest.raises(ValueError, match="empty"):
    hindex.search(hindex.create(64), codes, 3)
  with pytest.raises(ValueError, match="empty"):
    hindex.radius_search(hindex.create(64), codes, 3)
  with pytest.raises(ValueError, match="at most the index size 10"):
    hindex.search(index, codes, 11)
  for k in (0, -1, 2.0, True):
    with pytest.raises(ValueError, match="k must be"):
      hindex.search(index, codes, k)
  with pytest.raises(ValueError, match="only -1 and \\+1"):
    hindex.search(index, np.zeros((2, 64), np.int8), 3)
  with pytest.raises(ValueError, match="ids must have shape"):
    hindex.add(index, codes, ids=np.arange(3))
  with pytest.raises(ValueError, match="fit in int32"):
    hindex.add(index, codes, ids=np.arange(10, dtype=np.int64) + 2**40)
  with pytest.raises(ValueError, match="radius"):
    hindex.radius_search(index, codes, -1)
  with pytest.raises(ValueError, match="chunk_size"):
    hindex.search(index, codes, 3, chunk_size=0)
  with pytest.raises(ValueError, match="bits"):
    hindex.create(0)
  packed24 = hindex.pack_host(codes[:, :24])
  packed24[0, 0] |= np.uint32(1 << 30)  # a padding bit above bit 24
  with pytest.raises(ValueError, match="above bit 24"):
    hindex.add(hindex.create(24), packed24)
