"""Group-scan top-k (group minimum + refine) against a plain NumPy loop, tie-heavy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from retrieval_reference import stable_topk

from hashjax import index as hindex
from hashjax import topk


def tie_codes(np_rng, n, bits):
  """Codes whose duplicates straddle group (multiples of 4 and 32) and chunk edges."""
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(n, bits))
  for start in (29, 62, 127, 250):
    codes[start:start + 7] = codes[3]  # exact duplicates of row 3 across edges
  codes[[31, 32, 95, 96, 160]] = codes[5]
  return codes


@pytest.mark.parametrize("bits,group_size,chunk_size,k", [
    (8, 1, 50, 20),      # plain running top-k over rows
    (8, 3, 10, 20),      # groups not dividing the chunk request: chunk rounded up
    (8, 4, 64, 60),
    (40, 32, 64, 20),    # 2 words; 20 groups of 32 > 333 rows: every group refined
    (40, 32, 96, 5),
    (40, None, 1000, 7),  # default group size, a single chunk
])
def test_group_scan_matches_loop(np_rng, bits, group_size, chunk_size, k):
  n = 333  # not a multiple of any group size: the last group is padded
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(11, bits))
  q[:3] = db[[3, 5, 200]]
  index = hindex.add(hindex.create(bits), db)
  ref_d, ref_i = stable_topk(q, db, k)
  # 8 bits: distances 0..8 over 333 rows, so dozens of items tie at the k-th one.
  if bits == 8:
    assert np.all(np.sum(ref_d == ref_d[:, -1:], axis=1) >= 2)
  d, i = hindex.search(index, q, k, chunk_size=chunk_size, query_chunk_size=8,
                       group_size=group_size)
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_all_equal_codes_keep_insertion_order(np_rng):
  # Every item at the same distance: the answer is the first k rows, whatever
  # group or chunk they fall in.
  db = np.ones((200, 16), np.int8)
  db[150:] = -1  # later rows closer to an all -1 query
  q = -np.ones((2, 16), np.int8)
  index = hindex.add(hindex.create(16), db)
  d, i = hindex.search(index, q, 70, chunk_size=64, group_size=32)
  np.testing.assert_array_equal(np.asarray(i), np.tile(
      np.concatenate([np.arange(150, 200), np.arange(20)]), (2, 1)))
  np.testing.assert_array_equal(np.asarray(d), np.tile(
      np.concatenate([np.zeros(50), np.full(20, 16)]), (2, 1)))


def test_sharded_groups_with_small_shards(np_rng):
  # 8 devices x 26 rows < k: each shard has fewer rows than k (padded refine).
  bits, n, k = 8, 203, 40
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(6, bits))
  index = hindex.shard(hindex.add(hindex.create(bits), db))
  ref_d, ref_i = stable_topk(q, db, k)
  for g in (4, 32):
    d, i = hindex.search(index, q, k, chunk_size=16, group_size=g)
    np.testing.assert_array_equal(np.asarray(d), ref_d)
    np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_default_group_size_and_large_k(np_rng):
  assert hindex.default_group_size(256) == 32  # 256 * 32 == MAX_REFINE_CANDIDATES
  assert hindex.default_group_size(257) == 1
  bits, n = 8, 300
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(3, bits))
  index = hindex.add(hindex.create(bits), db)
  ref_d, ref_i = stable_topk(q, db, 257)
  d, i = hindex.search(index, q, 257, chunk_size=128)  # default: group size 1
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)
  for g in (0, -2, 1.5):
    with pytest.raises(ValueError, match="group_size"):
      hindex.search(index, q, 5, group_size=g)


@pytest.mark.parametrize("bits,k,chunk_size", [
    (8, 1, 64),      # heavy ties everywhere
    (8, 20, 32),     # several chunks; the k-th distance shared by dozens of rows
    (8, 333, 1000),  # k = n: the whole ranking
    (40, 57, 64),    # 2 words
    (64, 300, 100),  # chunk rounded to a multiple of 32
])
def test_counting_select_matches_loop(np_rng, bits, k, chunk_size):
  n = 333
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(11, bits))
  q[:3] = db[[3, 5, 200]]
  index = hindex.add(hindex.create(bits), db)
  ref_d, ref_i = stable_topk(q, db, k)
  if bits == 8 and k < n:  # the tie at the k-th distance is split by the cut
    full = np.sort(stable_topk(q, db, n)[0], axis=1)
    assert np.any(np.sum(full == ref_d[:, -1:], axis=1) > np.sum(ref_d == ref_d[:, -1:], 1))
  d, i = hindex.search(index, q, k, chunk_size=chunk_size, query_chunk_size=8,
                       method="count")
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_counting_select_sharded_and_default_method(np_rng):
  # 8 devices x 42 rows; duplicates of row 3 straddle shard edges; k > rows/device.
  bits, n = 8, 333
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(6, bits))
  q[0] = db[3]
  sharded = hindex.shard(hindex.add(hindex.create(bits), db))
  for k in (1, 50, 300):
    ref_d, ref_i = stable_topk(q, db, k)
    d, i = hindex.search(sharded, q, k, chunk_size=32, method="count")
    np.testing.assert_array_equal(np.asarray(d), ref_d)
    np.testing.assert_array_equal(np.asarray(i), ref_i)
  # Database size unknown: the group scan while its refine stays small.
  assert hindex.default_method(256, 64) == "group"
  assert hindex.default_method(257, 64) == "count"
  # Known: group scan below 32 neighbours, two-level counting with >= 64 rows
  # per neighbour, else the row-level counting select.
  assert hindex.default_method(31, 64, 10**6) == "group"
  assert hindex.default_method(32, 64, 2048) == "group_count"
  assert hindex.default_method(32, 64, 2047) == "count"
  assert hindex.default_method(1000, 64, 10**6) == "group_count"
  assert hindex.default_method(1000, 64, 50_000) == "count"
  with pytest.raises(ValueError, match="method"):
    hindex.search(sharded, q, 5, method="sort")


@pytest.mark.parametrize("bits,n,k,chunk_size", [
    (128, 700, 150, 96),  # 4 words; kept rows spread over many 32-row blocks
    (6, 2000, 777, 256),  # 7 distances: the cut at the k-th falls inside blocks
])
def test_counting_select_blocks(np_rng, bits, n, k, chunk_size):
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(9, bits))
  q[0] = db[7]
  index = hindex.add(hindex.create(bits), db)
  ref_d, ref_i = stable_topk(q, db, k)
  d, i = hindex.search(index, q, k, chunk_size=chunk_size, method="count")
  np.testing.assert_array_equal(np.asarray(d), ref_d)
  np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_block_mask_helpers(np_rng):
  x = np_rng.integers(0, 2**32, size=400, dtype=np.uint64).astype(np.uint32)
  x[:3] = (0, 0xFFFFFFFF, 0x80000001)
  a = np_rng.integers(-2, 35, size=400).astype(np.int32)
  got = np.asarray(topk._first_bits(jnp.asarray(x), jnp.asarray(a)))
  for xv, av, g in zip(x, a, got):
    setb = [b for b in range(32) if xv >> b & 1][:max(av, 0)]
    assert g == sum(1 << b for b in setb), (xv, av, g)
  r = np.array([bin(v).count("1") for v in x]) - 1
  pos = np.asarray(topk._bit_pos(jnp.asarray(x), jnp.asarray(np.maximum(r, 0))))
  for xv, rv, p in zip(x, r, pos):
    if rv >= 0:
      assert p == max(b for b in range(32) if xv >> b & 1)


def test_sort_by_distance_paths(np_rng):
  d = jnp.asarray(np_rng.integers(0, 9, size=(5, 300)).astype(np.int32))
  i = jnp.asarray(np_rng.permutation(1500).reshape(5, 300).astype(np.int32))
  order = np.argsort(np.asarray(d), axis=1, kind="stable")
  for bits in (8, 1 << 30):  # packed int32 key; too wide: the stable two-key sort
    sd, si = topk._sort_by_distance(d, i, bits=bits)
    np.testing.assert_array_equal(np.asarray(sd), np.take_along_axis(np.asarray(d), order, 1))
    np.testing.assert_array_equal(np.asarray(si), np.take_along_axis(np.asarray(i), order, 1))


def test_cumsum_blocks(np_rng):
  # 1 entry, one block, blocks of blocks (matmul), and > 32 blocks (sequential).
  for r in (1, 5, 32, 33, 1025, 1100):
    x = np_rng.integers(0, 33, size=(3, r)).astype(np.int32)
    np.testing.assert_array_equal(np.asarray(topk._cumsum(jnp.asarray(x))),
                                  np.cumsum(x, axis=1))


def test_default_method_by_size_is_exact(np_rng):
  # k = 240 in 700 rows: the default is the counting select (small database);
  # the result must still be the stable NumPy top-k, as with the other methods.
  bits, n, k = 12, 700, 240
  db = tie_codes(np_rng, n, bits)
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(5, bits))
  q[0] = db[10]
  index = hindex.add(hindex.create(bits), db)
  assert hindex.default_method(k, bits, index.count) == "count"
  ref_d, ref_i = stable_topk(q, db, k)
  for method in (None, "group", "group_count"):
    d, i = hindex.search(index, q, k, chunk_size=64, method=method)
    np.testing.assert_array_equal(np.asarray(d), ref_d)
    np.testing.assert_array_equal(np.asarray(i), ref_i)


@pytest.mark.parametrize("bits,n,k,chunk_size", [
    (8, 333, 1, 64),        # heavy ties; chunk rounded up to 1024 rows
    (8, 5000, 40, 2048),    # 3 chunks; the k-th distance shared by many rows
    (40, 3000, 57, 1024),   # 2 words, groups straddling the duplicated rows
    (128, 4096, 150, 1024),  # 4 words
    (8, 2048, 100, 1024),   # 64 groups < k: every group kept, bound bits + 1
    (16, 4096, 2000, 2048),  # k > groups, many chunks of candidates
    (64, 333, 333, 100),    # k = n: the whole ranking
])
def test_two_level_counting_select_matches_loop(np_rng, bits, n, k, chunk_size):
  db = tie_codes(np_rng, n, bits)
  db[-40:] = db[3]  # a duplicate run inside the last group and past it
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(11, bits))
  q[:3] = db[[3, 5, 200]]
  ref_d, ref_i = stable_topk(q, db, k)
  index = hindex.add(hindex.create(bits), db)
  for ix in (index, hindex.shard(index)):  # unsharded and 8 devices
    d, i = hindex.search(ix, q, k, chunk_size=chunk_size, query_chunk_size=8,
                         method="group_count")
    np.testing.assert_array_equal(np.asarray(d), ref_d)
    np.testing.assert_array_equal(np.asarray(i), ref_i)


@pytest.mark.parametrize("bits,n,k,chunk_size", [
    (8, 5000, 40, 2048),
    (40, 3000, 57, 1024),
    (16, 4096, 2000, 2048),
])
def test_two_level_select_without_kept_group_minima(np_rng, monkeypatch, bits, n, k,
                                                   chunk_size):
  """Above KEPT_BYTES the compaction pass recomputes the group minima: same
  rows as the NumPy loop (the cases above keep them)."""
  monkeypatch.setattr(topk, "KEPT_BYTES", 0)
  jax.clear_caches()  # the constant is read while tracing
  try:
    test_two_level_counting_select_matches_loop(np_rng, bits, n, k, chunk_size)
  finally:
    jax.clear_caches()


def test_two_level_select_clustered_rows(np_rng):
  # Runs of 160 near-identical rows (5 groups each): the k-th row distance lies
  # far below the k-th group minimum, so the threshold search takes many probes.
  bits, k = 32, 100
  centres = np_rng.choice(np.array([-1, 1], np.int8), size=(40, bits))
  db = np.repeat(centres, 160, axis=0)
  flip = np_rng.random(db.shape) < 0.02
  db = np.where(flip, -db, db).astype(np.int8)
  q = centres[:6].copy()
  ref_d, ref_i = stable_topk(q, db, k)
  dist = np.sum(q[:, None, :] != db[None], axis=2)
  group_min = np.sort(dist.reshape(len(q), -1, 32).min(axis=2), axis=1)
  assert np.all(group_min[:, k - 1] >= ref_d[:, -1] + 3)  # the case this is about
  index = hindex.add(hindex.create(bits), db)
  assert hindex.default_method(k, bits, index.count) == "group_count"
  for ix in (index, hindex.shard(index)):
    d, i = hindex.search(ix, q, k)
    np.testing.assert_array_equal(np.asarray(d), ref_d)
    np.testing.assert_array_equal(np.asarray(i), ref_i)


def test_expand_with_empty_entries(np_rng):
  # Entries with no kept row anywhere (first, middle, last) are skipped.
  masks = np.array([[0, 0b101, 0, 0b1, 0, 0b110000]], np.uint32)
  blocks = np.array([[7, 1, 9, 2, 4, 3]], np.int32)
  rows = np.asarray(topk._expand(jnp.asarray(blocks), jnp.asarray(masks), 999))
  np.testing.assert_array_equal(rows, [[32, 34, 64, 100, 101, 999]])
