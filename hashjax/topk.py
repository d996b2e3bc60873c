"""Jitted streamed kernels of the Hamming index (unsharded and shard_map paths).

Exact top-k in two stages, without ever building the ``[nq, n]`` matrix:

1. **Group scan.** The database is cut into groups of ``g`` consecutive rows and
   streamed in chunks of ``c`` rows (``lax.scan``). Per chunk, the distances of
   every query to every row are computed word by word on a transposed
   ``[w, c]`` copy of the chunk (XOR + popcount, vectorised along rows), reduced
   to one minimum per group, and merged into a running top-``k`` of *groups*
   keyed by (group minimum, group index).
2. **Refine.** The rows of the ``k`` selected groups (``k * g`` candidates, in
   ascending row order) are re-scored and an exact top-``k`` is taken.

Why this is exact: if a true top-k item ``x`` lay in an unselected group, the
``k`` selected groups would each hold an item ``y`` with ``d(y) <= d(x)`` and, on a
tie, a smaller row index (groups are consecutive row ranges and tied groups are
ranked by group index), so ``k`` items would precede ``x``: a contradiction. With
``g = 1`` the scan is a plain running top-k over rows.

The group minimum shrinks the input of the (single-threaded, comparison-based)
XLA CPU top-k by ``g`` times; see experiments/benchmarks/PROFILE.md. Scores are
``bits - distance`` in float32: XLA's CPU top-k has a fast path for float32 only
(int32 falls back to a full sort). ``lax.top_k`` puts the lower index first among
equal values, and every merge lists earlier rows first, so ties keep insertion
order.

**Counting select** (``method="count"``). Hamming
distances take only ``b + 1`` values, so the exact stable top-k needs no
comparison sort over the database:

1. a histogram pass counts, per query, the items at each distance
   (``[nq, b + 2]``, bucket ``b + 1`` holds padding); its cumulative sum gives
   the threshold ``t`` (the k-th smallest distance) and ``need``, how many
   items at distance ``t`` belong to the top k;
2. a compaction pass keeps the items with ``d < t`` and the first ``need``
   items with ``d == t`` in row order, at the granularity of 32-row blocks: one
   uint32 mask per block and query of the kept rows (the rows at ``t`` beyond the
   quota are cleared with a popcount binary search), and only the blocks with a
   kept row (at most ``k``) are written, block index and mask, to a ``[nq, k]``
   buffer (a scatter of one entry per 32 rows);
3. the buffer is expanded to the ``k`` rows (slot -> block by a running max over
   the blocks' start slots, -> row by the position of the r-th set bit), the
   rows are re-scored and sorted by distance with the slot as tie-break (one
   packed int32 key when it fits: ``lax.sort`` of a single operand is several
   times faster on CPU than the stable two-operand sort), which gives
   (distance, row) order since the buffer is in row order.

The cost is ``O(n)`` per query whatever ``k`` is; the group scan's top-k merge
grows with ``k``. Under sharding the histograms are summed over devices
(``psum``), each device takes the items at ``t`` whose global rank among
them (items at ``t`` on earlier devices first) is below ``need``, and the
per-device ``[nq, k]`` buffers are gathered in device order and sorted.

**Two-level counting select** (``method="group_count"``, the default for ``k >=
32`` when the database has at least ``64 k`` rows; :func:`default_method`). The
counting select run twice, first on groups, then on rows:

1. on the minimum distance of each 32-row group (the group scan's groups): one
   pass for the histogram of the group minima, one that compacts the ``k``
   groups of smallest (minimum, group index), in group order. The first pass
   computes every distance and keeps the group minima (one byte per 32 rows, up
   to :data:`KEPT_BYTES` per query chunk), which the second pass reads
   instead of computing the distances again (about 20% faster at 2k x 1M; above
   the budget it recomputes them). Both scatter and compact one value per 32 rows;
2. on the ``32 k`` rows of those groups (read 32 contiguous rows at a time):
   the k-th distance ``t`` by a short search below the group threshold (which
   bounds it: every kept group has a row at or below it, and it is nearly
   always ``t`` itself), each probe a count of set bits of masks computed in one
   fused pass, then the kept rows as in step 2 of the counting select.

Exact for the group scan's reason: the k kept groups hold the top k rows, and
rows are taken in (distance, row) order. Under sharding each device keeps its
share of the k groups (the histogram summed over devices, the groups at the
threshold quota'd in device order), takes the exact top-k of its candidates,
and the ``[nq, k]`` results are gathered in device order and sorted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from hashjax.codes import column_distance

__all__ = [
    "DATA_AXIS",
    "DEFAULT_GROUP_SIZE",
    "GROUP_COUNT_MIN_K",
    "GROUP_COUNT_ROWS_PER_K",
    "MAX_REFINE_CANDIDATES",
    "METHODS",
    "count_kernel",
    "default_group_size",
    "default_method",
    "topk_kernel",
]

DATA_AXIS = "data"
DEFAULT_GROUP_SIZE = 32
MAX_REFINE_CANDIDATES = 8192
METHODS = ("group", "count", "group_count")
_COUNT_CHUNK = 1024  # rows per step of the counting select (a multiple of 32)
_GROUP = 32  # rows per group of the two-level counting select
# Largest uint8 table of group minima ([queries, groups]) that the two-level select
# keeps from its first group pass for its compaction pass (above it the compaction
# pass recomputes them).
KEPT_BYTES = 1 << 28


def default_group_size(k: int) -> int:
  """Rows per group of the group scan for a top-``k`` search.

  ``DEFAULT_GROUP_SIZE`` while the ``k * g`` refine candidates per query stay
  within ``MAX_REFINE_CANDIDATES``, else 1 (a plain running top-k over rows).
  """
  return DEFAULT_GROUP_SIZE if k * DEFAULT_GROUP_SIZE <= MAX_REFINE_CANDIDATES else 1


# The group scan below this many neighbours; the two-level counting select from
# here while the database holds at least GROUP_COUNT_ROWS_PER_K rows per neighbour.
GROUP_COUNT_MIN_K = 32
GROUP_COUNT_ROWS_PER_K = 64


def default_method(k: int, bits: int, n: int | None = None) -> str:
  """Top-k kernel for ``k`` neighbours of ``bits``-bit codes in ``n`` rows.

  * ``k < GROUP_COUNT_MIN_K``: the group scan (its running top-k of groups is
    small);
  * ``n >= GROUP_COUNT_ROWS_PER_K * k``: the two-level counting select
    (``"group_count"``: its refine reads ``32 k`` candidate rows, so it needs a
    database much larger than that);
  * else the row-level counting select.

  ``n`` None (not known): the group scan up to ``k = 256``, else the counting
  select. Measured on 2 quiet CPU cores (load 1.1-1.5), 1024 queries, 64 bits,
  seconds group / count / group_count, 2026-12-05: 2k rows k = 10: 0.004 /
  0.010 / 0.007; 20k rows, k = 10: 0.007 / 0.030 / 0.009, k = 32: 0.015 / - /
  0.008, k = 300: 0.153 / 0.044 / 0.040, k = 600: 0.257 / 0.059 / 0.099; 50k
  rows, k = 1000: 0.668 / 0.130 / 0.159; 100k rows, k = 3000: 2.08 / 0.27 /
  0.44; 200k rows, k = 10: 0.033 / - / 0.041, k = 32: 0.049 / - / 0.041; 1M
  rows, k = 10: 0.155 / - / 0.189, k = 100: 0.238 / - / 0.231; 128 bits, 20k
  rows, k = 100: 0.045 / 0.050 / 0.014, 200k rows, k = 1000: 1.43 / 0.42 /
  0.22. ``bits`` does not move the crossovers in those measurements; it is an
  argument so that the rule can.
  """
  del bits
  if n is None:
    return "group" if k * DEFAULT_GROUP_SIZE <= MAX_REFINE_CANDIDATES else "count"
  if k < GROUP_COUNT_MIN_K:
    return "group"
  return "group_count" if n >= GROUP_COUNT_ROWS_PER_K * k else "count"


def _columns(db, c):
  """Pads rows to whole chunks of ``c``: ``[nch, w, c]`` (chunk, word, row), ``nch``."""
  m, w = db.shape
  nch = -(-m // c)
  dbt = jnp.pad(db, ((0, nch * c - m), (0, 0))).T  # [w, nch * c]
  return dbt.reshape(w, nch, c).transpose(1, 0, 2), nch


def _local_topk(db, ids, queries, count, base, *, k, bits, chunk_size, group_size):
  """Top-k of local rows ``db [m, w]`` (global rows ``base + i``) as scores.

  Returns ``[nq, k]`` float32 scores ``bits - distance`` (-1 for padding, which
  only appears when ``m < k``) and the ids of those rows.
  """
  m, _ = db.shape
  nq = queries.shape[0]
  g = group_size
  c = g * -(-min(chunk_size, m) // g)  # rows per chunk, a multiple of g
  chunks, nch = _columns(db, c)
  ng = c // g
  kg = min(k, nch * ng)  # groups kept
  local = jnp.arange(c, dtype=jnp.int32)
  local_groups = jnp.arange(ng, dtype=jnp.int32)
  far = jnp.int32(bits + 1)

  def body(carry, xs):
    best_s, best_g = carry
    cols, j = xs
    row = j * c + local
    valid = (row < m) & (base + row < count)
    d = jnp.where(valid[None, :], column_distance(queries, cols), far)
    if g > 1:
      d = jnp.min(d.reshape(nq, ng, g), axis=2)
    s = (bits - d).astype(jnp.float32)  # -1 for all-padding groups
    cat_s = jnp.concatenate([best_s, s], axis=1)
    gid = jnp.broadcast_to(j * ng + local_groups, s.shape)
    cat_g = jnp.concatenate([best_g, gid], axis=1)
    top_s, sel = lax.top_k(cat_s, kg)
    return (top_s, jnp.take_along_axis(cat_g, sel, axis=1)), None

  init = (jnp.full((nq, kg), -2.0, jnp.float32), jnp.zeros((nq, kg), jnp.int32))
  (_, best_g), _ = lax.scan(body, init, (chunks, jnp.arange(nch, dtype=jnp.int32)))

  # Refine: candidate rows in ascending order, so top_k's ties follow insertion.
  best_g = jnp.sort(best_g, axis=1)
  rows = (best_g[:, :, None] * g + jnp.arange(g, dtype=jnp.int32)).reshape(nq, kg * g)
  if kg * g < k:  # fewer local rows than k (a small shard): pad with invalid rows
    rows = jnp.pad(rows, ((0, 0), (0, k - kg * g)), constant_values=nch * c)
  d, safe = _rescore(db, queries, rows, bits=bits)
  s = jnp.where(base + rows < count, (bits - d).astype(jnp.float32), -1.0)
  top_s, sel = lax.top_k(s, k)
  return top_s, ids[jnp.take_along_axis(safe, sel, axis=1)]


def _local_count(db, queries, count, base, radius, *, chunk_size):
  """Number of local rows within ``radius`` of each query: ``[nq]`` int32."""
  m = db.shape[0]
  c = min(chunk_size, m)
  chunks, nch = _columns(db, c)
  local = jnp.arange(c, dtype=jnp.int32)

  def body(total, xs):
    cols, j = xs
    row = j * c + local
    valid = (row < m) & (base + row < count)
    hit = (column_distance(queries, cols) <= radius) & valid[None, :]
    return total + jnp.sum(hit, axis=1, dtype=jnp.int32), None

  init = jnp.zeros((queries.shape[0],), jnp.int32)
  return lax.scan(body, init, (chunks, jnp.arange(nch, dtype=jnp.int32)))[0]


def _valid_distances(queries, cols, j, c, m, count, base, bits):
  """Distances ``[nq, c]`` of chunk ``j``; rows past ``m`` or ``count``: ``bits + 1``."""
  row = j * c + jnp.arange(c, dtype=jnp.int32)
  valid = (row < m) & (base + row < count)
  return jnp.where(valid[None, :], column_distance(queries, cols), bits + 1)


_PAIR_BINS = 66 * 66  # pair histogram up to 64 bits (b + 2 = 66 distance values)


def _value_histogram(values, xs, nq, nb, width, keep=False):
  """Items per value ``[nq, nb]`` int32 of ``values(*x) [nq, width]`` (in ``[0, nb)``)
  summed over the scan inputs ``xs``; with ``keep`` (``nb <= 256``) also the values
  themselves, uint8 ``[steps, nq, width]``.

  One flat index per update into a ``[nq * bins]`` buffer, a scatter with a
  scalar index that is in bounds by construction (faster than a 2-D index on
  CPU). When ``nb^2 <= 66^2`` (distances up to 64 bits), one update covers two
  entries (entry i and entry i + width / 2): a 2-D histogram of value pairs,
  ``nb^2`` bins per query, summed over both axes at the end. That halves the
  scatter's updates: the histogram pass took 0.12 s instead of 0.28 s (512
  queries x 100k rows x 64 bits, load 20, same process).
  """
  pair = nb * nb <= _PAIR_BINS and width % 2 == 0
  bins = nb * nb if pair else nb
  offset = jnp.arange(nq, dtype=jnp.int32)[:, None] * bins

  def body(h, x):
    v = values(*x)
    d = v[:, :width // 2] * nb + v[:, width // 2:] if pair else v
    h = h.at[(offset + d).reshape(-1)].add(1, mode="promise_in_bounds")
    return h, v.astype(jnp.uint8) if keep else None

  init = jnp.zeros((nq * bins,), jnp.int32)
  h, kept = lax.scan(body, init, xs)
  if pair:
    h = h.reshape(nq, nb, nb)
    h = jnp.sum(h, axis=2) + jnp.sum(h, axis=1)
  else:
    h = h.reshape(nq, nb)
  return (h, kept) if keep else h


def _row_values(db, queries, count, base, *, bits, chunk):
  """``(values, xs)`` of the row distances of ``db``'s chunks (padding: ``bits + 1``)."""
  m = db.shape[0]
  chunks, nch = _columns(db, chunk)

  def values(cols, j):
    return _valid_distances(queries, cols, j, chunk, m, count, base, bits)

  return values, (chunks, jnp.arange(nch, dtype=jnp.int32))


def _group_values(db, queries, count, base, *, bits, chunk):
  """``(values, xs)`` of the minimum distance of each 32-row group of the chunks."""
  values, xs = _row_values(db, queries, count, base, bits=bits, chunk=chunk)

  def group_min(cols, j):
    d = values(cols, j)
    return jnp.min(d.reshape(d.shape[0], chunk // _GROUP, _GROUP), axis=2)

  return group_min, xs


def _counted(values, xs, nq, nb, width):
  """The histogram pass of the group-level select: ``(hist [nq, nb], values, xs)``,
  the last two for its compaction pass: the values kept by this pass (one byte
  each) when ``nb <= 256`` and they fit :data:`KEPT_BYTES`, else the given ones
  (the compaction pass then computes them again)."""
  if nb <= 256 and nq * xs[0].shape[0] * width <= KEPT_BYTES:
    hist, kept = _value_histogram(values, xs, nq, nb, width, keep=True)
    return hist, _as_int32, (kept,)
  return _value_histogram(values, xs, nq, nb, width), values, xs


def _as_int32(v):
  return v.astype(jnp.int32)


def _threshold(hist, k):
  """``(t, need)`` ``[nq]``: the k-th smallest distance, items at ``t`` to take."""
  cum = jnp.cumsum(hist, axis=1)
  t = jnp.sum(cum < k, axis=1, dtype=jnp.int32)
  at_t = jnp.take_along_axis(hist, t[:, None], axis=1)[:, 0]
  below = jnp.take_along_axis(cum, t[:, None], axis=1)[:, 0] - at_t
  return t, k - below


def _masks(x):
  """One uint32 per 32 rows: ``[nq, c] bool -> [nq, c / 32]`` (bit i: row i)."""
  nq, c = x.shape
  shifts = jnp.arange(32, dtype=jnp.uint32)
  return jnp.sum(x.reshape(nq, c // 32, 32).astype(jnp.uint32) << shifts, axis=2,
                 dtype=jnp.uint32)


def _low(p):
  """Mask of the bits below ``p`` (uint32, ``0 <= p <= 31``)."""
  return (jnp.uint32(1) << p.astype(jnp.uint32)) - jnp.uint32(1)


def _bit_pos(x, r):
  """Largest ``p`` in [0, 31] with ``popcount(x & low(p)) <= r`` (int32).

  For ``0 <= r < popcount(x)`` this is the position of the ``(r + 1)``-th set
  bit of ``x``; five popcounts (binary search), vectorised over any shape.
  """
  p = jnp.zeros(jnp.broadcast_shapes(x.shape, r.shape), jnp.int32)
  for s in (16, 8, 4, 2, 1):
    cand = p + s
    ok = lax.population_count(x & _low(cand)).astype(jnp.int32) <= r
    p = jnp.where(ok, cand, p)
  return p


def _first_bits(x, a):
  """The lowest ``a`` set bits of ``x`` (uint32; ``a`` int32, clipped to [0, 32])."""
  n = lax.population_count(x).astype(jnp.int32)
  return jnp.where(a >= n, x, jnp.where(a <= 0, jnp.uint32(0), x & _low(_bit_pos(x, a))))


def _cumsum(x):
  """Inclusive prefix sums along axis 1 of ``x [nq, r]`` int32, non-negative with
  row totals below 2^24.

  Blocks of 32 by a float32 product with a triangular matrix (exact below 2^24),
  then the same over the block totals (a sequential loop beyond 32 blocks).
  ``jnp.cumsum`` is an associative scan on CPU, about 2x slower (1024 x 32 and
  1024 x 10000 int32, 2 loaded cores, same process).
  """
  nq, r = x.shape
  if r == 1:
    return x
  b = min(r, 32)
  nb = -(-r // b)
  tri = jnp.triu(jnp.ones((b, b), jnp.float32))
  xb = jnp.pad(x, ((0, 0), (0, nb * b - r))).reshape(nq, nb, b).astype(jnp.float32)
  inner = jnp.matmul(xb, tri, precision=lax.Precision.HIGHEST).astype(jnp.int32)
  if 1 < nb <= 32:
    tot = inner[:, :, -1]
    inner = inner + (_cumsum(tot) - tot)[:, :, None]
  elif nb > 32:  # long rows: a sequential loop over the block totals is cheaper
    def step(c, col):
      return c + col, c
    excl = lax.scan(step, jnp.zeros((nq,), jnp.int32), inner[:, :, -1].T, unroll=8)[1]
    inner = inner + excl.T[:, :, None]
  return inner.reshape(nq, nb * b)[:, :r]


def _take(lt, at, quota):
  """``lt`` and the first ``quota [nq, 1]`` set bits of ``at`` (masks ``[nq, r]``, in
  order), and the number of bits of each ``at`` word."""
  n_at = lax.population_count(at).astype(jnp.int32)
  return lt | _first_bits(at, quota - (_cumsum(n_at) - n_at)), n_at


def _keep_masks(d, t, need, seen_t):
  """Masks ``[nq, c / 32]`` of the entries of ``d [nq, c]`` below ``t [nq, 1]`` and the
  first ``need - seen_t`` at ``t`` (in order), and the count at ``t`` per 32."""
  return _take(_masks(d < t), _masks(d == t), need - seen_t[:, None])


def _compact(values, xs, nq, width, t, need, *, k):
  """The entries with ``values < t`` and the first ``need`` equal to ``t``, in scan
  order, as ``[nq, k]`` (32-entry block index, uint32 mask of kept entries).

  ``values(*x)`` gives ``[nq, width]`` per scan step (``width`` a multiple of 32).
  Only blocks with a kept entry are written (at most ``k``), so the scatter moves
  one entry per 32 instead of one per entry; unused slots hold mask 0.
  """
  nb = width // 32
  # Flat slots of a [nq, k + 1] buffer; column k takes the blocks with no kept row.
  offset = jnp.arange(nq, dtype=jnp.int32)[:, None] * (k + 1)
  blocks = jnp.arange(nb, dtype=jnp.int32)
  t, need = t[:, None], need[:, None]

  def body(carry, x):
    taken, seen_t, out_b, out_m, j = carry
    keep, n_at = _keep_masks(values(*x), t, need, seen_t)
    nz = (keep != 0).astype(jnp.int32)
    slot = jnp.where(nz > 0, taken[:, None] + _cumsum(nz) - nz, k)
    slot = (offset + slot).reshape(-1)
    out_b = out_b.at[slot].set(jnp.broadcast_to(j * nb + blocks, keep.shape).reshape(-1),
                               mode="promise_in_bounds")
    out_m = out_m.at[slot].set(keep.reshape(-1), mode="promise_in_bounds")
    return (taken + jnp.sum(nz, axis=1), seen_t + jnp.sum(n_at, axis=1), out_b,
            out_m, j + 1), None

  init = (jnp.zeros((nq,), jnp.int32), jnp.zeros((nq,), jnp.int32),
          jnp.zeros((nq * (k + 1),), jnp.int32), jnp.zeros((nq * (k + 1),), jnp.uint32),
          jnp.int32(0))
  out = lax.scan(body, init, xs)[0]
  return out[2].reshape(nq, k + 1)[:, :k], out[3].reshape(nq, k + 1)[:, :k]


def _expand(out_b, out_m, m):
  """Rows ``[nq, k]`` (ascending; ``m`` = no row) of the compacted block masks."""
  nq, k = out_b.shape
  rows = jnp.arange(nq, dtype=jnp.int32)[:, None]
  cnt = lax.population_count(out_m).astype(jnp.int32)
  cum = _cumsum(cnt) if k < (1 << 24) else jnp.cumsum(cnt, axis=1)
  slot = jnp.arange(k, dtype=jnp.int32)
  # The entry holding output slot s is the number of entries that end at or
  # before s (empty entries included, wherever they are): a +1 at each entry's
  # end, prefix-summed (ends past k - 1 go to column k).
  flat = (rows * (k + 1) + jnp.minimum(cum, k)).reshape(-1)
  ends = jnp.zeros((nq * (k + 1),), jnp.int32).at[flat].add(1, mode="promise_in_bounds")
  ends = ends.reshape(nq, k + 1)[:, :k]
  e = _cumsum(ends) if k < (1 << 24) else jnp.cumsum(ends, axis=1)
  e = jnp.minimum(e, k - 1)
  r = slot[None, :] - jnp.take_along_axis(cum - cnt, e, axis=1)
  word = jnp.take_along_axis(out_m, e, axis=1)
  row = jnp.take_along_axis(out_b, e, axis=1) * 32 + _bit_pos(word, r)
  return jnp.where(slot[None, :] < cum[:, -1:], row, m)


def _rescore(db, queries, rows, *, bits):
  """Distances ``[nq, r]`` of local ``rows [nq, r]`` (``m`` -> ``bits + 1``)."""
  m = db.shape[0]
  safe = jnp.minimum(rows, m - 1)
  d = None
  for j in range(db.shape[1]):
    p = lax.population_count(db[:, j][safe] ^ queries[:, j:j + 1]).astype(jnp.int32)
    d = p if d is None else d + p
  return jnp.where(rows < m, d, bits + 1), safe


def _count_chunk(m, chunk_size):
  return 32 * max(1, -(-min(chunk_size, _COUNT_CHUNK, m) // 32))


def _select_threshold(db, queries, count, base, *, k, bits, chunk, reduce):
  """``(t, need, at_t, values, xs)``: global threshold and quota, this shard's items
  at ``t``, and the row distances for the compaction pass (computed again there);
  ``reduce`` sums counts over shards (identity when unsharded)."""
  values, xs = _row_values(db, queries, count, base, bits=bits, chunk=chunk)
  # Row distances are not kept (unlike the group minima of the two-level select):
  # storing one byte per pair breaks XLA's fusion of the distances into the
  # histogram, and the pass got slower than computing them twice (5k x 20k x 64,
  # k = 1000: 0.98 s against 0.77 s, same process).
  hist = _value_histogram(values, xs, queries.shape[0], bits + 2, chunk)
  t, need = _threshold(reduce(hist), k)
  return t, need, jnp.take_along_axis(hist, t[:, None], axis=1)[:, 0], values, xs


def _sort_by_distance(d, i, *, bits):
  """``(d, i)`` sorted along axis 1 by (distance, position): stable by position.

  When the distance (``<= bits + 1``) and the position fit in 31 bits together
  they are packed into one int32 key and sorted alone (about 4.5x faster on CPU
  than the stable two-operand sort, 1024 x 10000); else the stable sort.
  """
  r = d.shape[1]
  sb = max(1, (r - 1).bit_length())
  if (bits + 1).bit_length() + sb > 31:
    return lax.sort((d, i), dimension=1, num_keys=1, is_stable=True)
  key = jnp.sort((d << sb) | jnp.arange(r, dtype=jnp.int32), axis=1)
  pos = key & ((1 << sb) - 1)
  return key >> sb, jnp.take_along_axis(i, pos, axis=1)


def _local_count_select(db, ids, queries, count, *, k, bits, chunk_size):
  """Counting-select top-k of an unsharded database: ``[nq, k]`` distances, ids."""
  chunk = _count_chunk(db.shape[0], chunk_size)
  t, need, _, values, xs = _select_threshold(db, queries, count, 0, k=k, bits=bits,
                                             chunk=chunk, reduce=lambda x: x)
  out_b, out_m = _compact(values, xs, queries.shape[0], chunk, t, need, k=k)
  rows = _expand(out_b, out_m, db.shape[0])
  d, safe = _rescore(db, queries, rows, bits=bits)
  d, safe = _sort_by_distance(d, safe, bits=bits)
  return d, ids[safe]


def _earlier_shards(x):
  """Sum of ``x [nq]`` over the devices before this one on ``DATA_AXIS``."""
  every = lax.all_gather(x, DATA_AXIS)  # [devices, nq]
  me = lax.axis_index(DATA_AXIS)
  return jnp.sum(jnp.where(jnp.arange(every.shape[0])[:, None] < me, every, 0), axis=0)


def _sharded_count_select(db, lid, q, cnt, *, k, bits, chunk_size):
  """Body of the shard_map counting select (see the module docstring)."""
  base = lax.axis_index(DATA_AXIS) * db.shape[0]
  chunk = _count_chunk(db.shape[0], chunk_size)
  t, need, at_t, values, xs = _select_threshold(
      db, q, cnt, base, k=k, bits=bits, chunk=chunk,
      reduce=lambda x: lax.psum(x, DATA_AXIS))
  earlier = _earlier_shards(at_t)
  out_b, out_m = _compact(values, xs, q.shape[0], chunk, t, jnp.maximum(need - earlier, 0),
                          k=k)
  rows = _expand(out_b, out_m, db.shape[0])
  d, safe = _rescore(db, q, rows, bits=bits)
  # Device order = row order, and each buffer is in row order: a stable sort by
  # distance of the gathered buffers gives (distance, row) order.
  d = lax.all_gather(d, DATA_AXIS, axis=1, tiled=True)
  i = lax.all_gather(lid[safe], DATA_AXIS, axis=1, tiled=True)
  d, i = _sort_by_distance(d, i, bits=bits)
  return d[:, :k], i[:, :k]


def _group_chunk(m, chunk_size):
  """Rows per step of the group passes: a multiple of 1024 (32 groups of 32 rows)."""
  return 1024 * max(1, -(-min(chunk_size, m) // 1024))


def _select_groups(db, queries, count, base, *, k, bits, chunk, reduce, earlier_at_t):
  """The ``k`` groups of smallest (minimum distance, group index) over all shards,
  this shard's part: ``[nq, k]`` local group indices ascending (none: a sentinel
  at least the number of local groups), and the k-th smallest group minimum
  ``[nq]`` (at least ``k`` rows of the groups lie at or below it).

  ``reduce`` sums over shards; ``earlier_at_t(at_t)`` counts the groups at the
  threshold on earlier shards (zero unsharded).
  """
  nq = queries.shape[0]
  values, xs = _group_values(db, queries, count, base, bits=bits, chunk=chunk)
  width = chunk // _GROUP
  hist, values, xs = _counted(values, xs, nq, bits + 2, width)
  total = reduce(jnp.int32(xs[0].shape[0] * width))  # groups on all shards, with padding
  t, need = _threshold(reduce(hist), jnp.minimum(k, total))
  at_t = jnp.take_along_axis(hist, t[:, None], axis=1)[:, 0]
  need = jnp.maximum(need - earlier_at_t(at_t), 0)
  out_b, out_m = _compact(values, xs, nq, width, t, need, k=k)
  # Fewer groups than k: all are kept, and only bits + 1 bounds k rows.
  return _expand(out_b, out_m, xs[0].shape[0] * width), jnp.where(total < k, bits + 1, t)


def _candidate_distances(dbg, queries, groups, m, count, base, *, bits):
  """Distances ``[nq, kg, 32]`` to the rows of ``groups [nq, kg]`` (``dbg [ng, 32, w]``);
  rows past ``m`` or ``count``: ``bits + 1``.

  Meant to be consumed by reductions that XLA fuses with it (bit masks, counts):
  materialised, the ``[nq, kg, 32]`` int32 array costs about 10x the fused pass.
  """
  ng = dbg.shape[0]
  cand = dbg[jnp.minimum(groups, ng - 1)]  # [nq, kg, 32, w]
  d = None
  for j in range(dbg.shape[2]):
    p = lax.population_count(cand[..., j] ^ queries[:, None, None, j]).astype(jnp.int32)
    d = p if d is None else d + p
  rows = groups[:, :, None] * _GROUP + jnp.arange(_GROUP, dtype=jnp.int32)
  return jnp.where((rows < m) & (base + rows < count), d, bits + 1)


def _below_and_at(d, t):
  """Masks ``[nq, kg]`` uint32 of ``d [nq, kg, 32] < t`` and ``== t`` (``t [nq]``).

  One reduction builds both (16 rows a word, ``<`` in the low and ``==`` in the
  high half): XLA then fuses the distances into it, where two reductions of the
  same distances store them first (0.15 s against 0.012 s for 1024 queries x
  32k candidates x 128 bits).
  """
  nq, kg, _ = d.shape
  d = d.reshape(nq, kg, 2, 16)
  t = t[:, None, None, None]
  shifts = jnp.arange(16, dtype=jnp.uint32)
  words = jnp.sum(((d < t).astype(jnp.uint32) << shifts)
                  | ((d == t).astype(jnp.uint32) << (shifts + 16)), axis=3,
                  dtype=jnp.uint32)
  lo, hi = words[..., 0], words[..., 1]
  return (lo & 0xFFFF) | (hi << 16), (lo >> 16) | ((hi >> 16) << 16)


def _popcount_rows(x):
  return jnp.sum(lax.population_count(x).astype(jnp.int32), axis=1)


def _refine_groups(db, queries, count, base, groups, t_hi, *, k, bits):
  """Top-k of the rows of ``groups [nq, kg]`` (ascending group indices) among
  those at distance ``<= t_hi [nq]``: ``[nq, k]`` distances and local rows by
  (distance, row); slots past them (fewer than ``k`` such rows) and rows past
  ``m`` or ``count`` rank last with distance ``bits + 1``.

  ``t_hi`` is the threshold of the group minima, which bounds the global k-th
  distance ``t`` and is nearly always ``t`` itself: one fused pass builds the
  masks of the rows below and at ``t_hi``, and where more than ``k`` rows lie
  below it (clustered rows), a search for ``t`` counts the rows at or below each
  probe from bit masks (one fused pass a probe) and the masks are rebuilt at
  ``t``. The distances are never stored.
  """
  m, w = db.shape
  nq, kg = groups.shape
  ng = -(-m // _GROUP)
  dbg = jnp.pad(db, ((0, ng * _GROUP - m), (0, 0))).reshape(ng, _GROUP, w)

  def dist():
    return _candidate_distances(dbg, queries, groups, m, count, base, bits=bits)

  lt, at = _below_and_at(dist(), t_hi)
  below = _popcount_rows(lt)

  def search(_):
    def at_most(v):
      return _popcount_rows(_masks((dist() <= v[:, None, None]).reshape(nq, kg * _GROUP)))

    # t in [lo, hi]: t_hi where fewer than k rows lie below it, else below it.
    done = below < k
    lo = jnp.where(done, t_hi, 0)
    hi = jnp.where(done, t_hi, t_hi - 1)

    def body(c):  # the first probe is hi - 1 (mostly the last), then bisection
      lo, hi, first = c
      mid = jnp.where(first, jnp.maximum(hi - 1, lo), (lo + hi) // 2)
      ok = at_most(mid) >= k
      return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi), jnp.bool_(False)

    t = lax.while_loop(lambda c: jnp.any(c[0] < c[1]), body,
                       (lo, hi, jnp.bool_(True)))[1]
    return _below_and_at(dist(), t)

  lt, at = lax.cond(jnp.any(below >= k), search, lambda _: (lt, at), None)
  keep, _ = _take(lt, at, (k - _popcount_rows(lt))[:, None])
  if kg < k:
    keep = jnp.pad(keep, ((0, 0), (0, k - kg)))
    groups = jnp.pad(groups, ((0, 0), (0, k - kg)), constant_values=ng)
  rows = _expand(groups[:, :k], keep[:, :k], m)
  d, safe = _rescore(db, queries, rows, bits=bits)
  d = jnp.where(base + rows < count, d, bits + 1)
  return _sort_by_distance(d, safe, bits=bits)


def _local_group_count(db, ids, queries, count, *, k, bits, chunk_size):
  """Two-level counting select of an unsharded database: ``[nq, k]`` distances, ids."""
  chunk = _group_chunk(db.shape[0], chunk_size)
  groups, t = _select_groups(db, queries, count, 0, k=k, bits=bits, chunk=chunk,
                             reduce=lambda x: x, earlier_at_t=jnp.zeros_like)
  d, safe = _refine_groups(db, queries, count, 0, groups, t, k=k, bits=bits)
  return d, ids[safe]


def _sharded_group_count(db, lid, q, cnt, *, k, bits, chunk_size):
  """Body of the shard_map two-level counting select."""
  base = lax.axis_index(DATA_AXIS) * db.shape[0]
  chunk = _group_chunk(db.shape[0], chunk_size)
  groups, t = _select_groups(db, q, cnt, base, k=k, bits=bits, chunk=chunk,
                             reduce=lambda x: lax.psum(x, DATA_AXIS),
                             earlier_at_t=_earlier_shards)
  # The group threshold is global: the global top k lie at or below it, but this
  # shard's candidates may hold fewer than k such rows (the rest rank last).
  d, safe = _refine_groups(db, q, cnt, base, groups, t, k=k, bits=bits)
  # Each shard's top-k of its candidates holds the global top-k rows it owns;
  # gathered in device (= row) order, a stable sort by distance merges them.
  d = lax.all_gather(d, DATA_AXIS, axis=1, tiled=True)
  i = lax.all_gather(lid[safe], DATA_AXIS, axis=1, tiled=True)
  d, i = _sort_by_distance(d, i, bits=bits)
  return d[:, :k], i[:, :k]


def _shard_map(fn, mesh, in_specs, out_specs):
  if hasattr(jax, "shard_map"):
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map  # pylint: disable=g-import-not-at-top

  return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                   check_rep=False)


@functools.partial(jax.jit, static_argnames=("k", "bits", "chunk_size", "group_size",
                                             "mesh", "method"))
def topk_kernel(packed, ids, queries, count, *, k, bits, chunk_size, mesh,
                group_size=None, method=None):
  """Exact top-k: ``[nq, k]`` int32 distances and ids (see :func:`search`).

  Args:
    packed: ``[m, w]`` uint32 packed database rows (sharded over ``mesh``'s
      ``"data"`` axis when ``mesh`` is given); rows ``>= count`` are padding.
    ids: ``[m]`` ids of the rows.
    queries: ``[nq, w]`` uint32 packed queries.
    count: int32 scalar, number of real rows.
    k: neighbours, ``1 <= k <= count``.
    bits: code length.
    chunk_size: rows per scan step (the counting select uses at most 1024, the
      two-level one a multiple of 1024).
    mesh: None or the mesh of ``packed``.
    group_size: rows per group of the group scan; None: :func:`default_group_size`.
    method: "group", "count", "group_count" or None (:func:`default_method` of
      ``k``, ``bits`` and the ``m`` rows; "group" when ``group_size`` is given).

  Returns:
    ``(distances, ids)`` ``[nq, k]``, ascending by (distance, row).
  """
  if method is None:
    method = ("group" if group_size is not None
              else default_method(k, bits, packed.shape[0]))
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if method in ("count", "group_count"):
    kw = dict(k=k, bits=bits, chunk_size=chunk_size)
    local, sharded = ((_local_count_select, _sharded_count_select) if method == "count"
                      else (_local_group_count, _sharded_group_count))
    if mesh is None:
      return local(packed, ids, queries, count, **kw)
    return _shard_map(functools.partial(sharded, **kw), mesh,
                      (P(DATA_AXIS, None), P(DATA_AXIS), P(), P()), (P(), P()))(
                          packed, ids, queries, count)
  if group_size is None:
    group_size = default_group_size(k)
  kw = dict(k=k, bits=bits, chunk_size=chunk_size, group_size=group_size)
  if mesh is None:
    s, i = _local_topk(packed, ids, queries, count, 0, **kw)
  else:
    def local(db, lid, q, cnt):
      base = lax.axis_index(DATA_AXIS) * db.shape[0]
      ls, li = _local_topk(db, lid, q, cnt, base, **kw)
      # Shards hold consecutive row blocks: gathering in shard order keeps ties
      # in insertion order for the final stable top-k.
      ls = lax.all_gather(ls, DATA_AXIS, axis=1, tiled=True)
      li = lax.all_gather(li, DATA_AXIS, axis=1, tiled=True)
      top, sel = lax.top_k(ls, k)
      return top, jnp.take_along_axis(li, sel, axis=1)

    s, i = _shard_map(local, mesh, (P(DATA_AXIS, None), P(DATA_AXIS), P(), P()),
                      (P(), P()))(packed, ids, queries, count)
  return (bits - s).astype(jnp.int32), i


@functools.partial(jax.jit, static_argnames=("chunk_size", "mesh"))
def count_kernel(packed, queries, count, radius, *, chunk_size, mesh):
  if mesh is None:
    return _local_count(packed, queries, count, 0, radius, chunk_size=chunk_size)

  def local(db, q, cnt, r):
    base = lax.axis_index(DATA_AXIS) * db.shape[0]
    c = _local_count(db, q, cnt, base, r, chunk_size=chunk_size)
    return lax.psum(c, DATA_AXIS)

  return _shard_map(local, mesh, (P(DATA_AXIS, None), P(), P(), P()), P())(
      packed, queries, count, radius)
