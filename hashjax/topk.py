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

**Counting select** (``method="count"``, the default for ``k > 256``). Hamming
distances take only ``b + 1`` values, so the exact stable top-k needs no
comparison sort over the database:

1. a histogram pass counts, per query, the items at each distance
   (``[nq, b + 2]``, bucket ``b + 1`` holds padding); its cumulative sum gives
   the threshold ``t`` (the k-th smallest distance) and ``need``, how many
   items at distance ``t`` belong to the top k;
2. a compaction pass keeps the items with ``d < t`` and the first ``need``
   items with ``d == t`` in row order. Exclusive prefix counts come from one
   32-bit mask per 32 rows (popcount of the mask below each row, plus a
   prefix over the chunk's masks), and each kept row is written to its slot
   of a ``[nq, k]`` buffer (a scatter that drops the other rows);
3. the ``k`` kept rows are re-scored and stably sorted by distance, which
   gives (distance, row) order since the buffer is in row order.

The cost is ``O(n)`` per query whatever ``k`` is; the group scan's top-k merge
grows with ``k``. Under sharding the histograms are summed over devices
(``psum``), each device takes the items at ``t`` whose global rank among
them (items at ``t`` on earlier devices first) is below ``need``, and the
per-device ``[nq, k]`` buffers are gathered in device order and sorted.
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
METHODS = ("group", "count")
_COUNT_CHUNK = 1024  # rows per step of the counting select (a multiple of 32)


def default_group_size(k: int) -> int:
  """Rows per group of the group scan for a top-``k`` search.

  ``DEFAULT_GROUP_SIZE`` while the ``k * g`` refine candidates per query stay
  within ``MAX_REFINE_CANDIDATES``, else 1 (a plain running top-k over rows).
  """
  return DEFAULT_GROUP_SIZE if k * DEFAULT_GROUP_SIZE <= MAX_REFINE_CANDIDATES else 1


def default_method(k: int, bits: int) -> str:
  """Top-k kernel for ``k`` neighbours of ``bits``-bit codes: "group" or "count".

  The group scan while its group size is the full ``DEFAULT_GROUP_SIZE``
  (``k <= 256``), else the counting select, whose cost does not grow with
  ``k``. Measured on 2 loaded CPU cores (load 17-20, 256 queries x 50k rows,
  64 bits): group scan 0.07 s / counting 0.6 s at k = 100, 1.2 s / 0.4 s at
  k = 1000, 5.5 s / 2.2 s at k = 10000. ``bits`` does not move the
  crossover in those measurements; it is an argument so that the rule can.
  """
  del bits
  return "group" if k * DEFAULT_GROUP_SIZE <= MAX_REFINE_CANDIDATES else "count"


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


def _histogram(db, queries, count, base, *, bits, chunk):
  """Items per distance ``[nq, bits + 2]`` int32 (bucket ``bits + 1``: padding)."""
  m = db.shape[0]
  nq = queries.shape[0]
  chunks, nch = _columns(db, chunk)
  rows = jnp.arange(nq, dtype=jnp.int32)[:, None]

  def body(h, xs):
    cols, j = xs
    d = _valid_distances(queries, cols, j, chunk, m, count, base, bits)
    return h.at[rows, d].add(1), None

  init = jnp.zeros((nq, bits + 2), jnp.int32)
  return lax.scan(body, init, (chunks, jnp.arange(nch, dtype=jnp.int32)))[0]


def _threshold(hist, k):
  """``(t, need)`` ``[nq]``: the k-th smallest distance, items at ``t`` to take."""
  cum = jnp.cumsum(hist, axis=1)
  t = jnp.sum(cum < k, axis=1, dtype=jnp.int32)
  at_t = jnp.take_along_axis(hist, t[:, None], axis=1)[:, 0]
  below = jnp.take_along_axis(cum, t[:, None], axis=1)[:, 0] - at_t
  return t, k - below


def _prefix_count(x):
  """Exclusive prefix counts ``[nq, c]`` int32 along rows of ``x [nq, c]`` bool,
  and the totals ``[nq]`` (``c`` a multiple of 32)."""
  nq, c = x.shape
  shifts = jnp.arange(32, dtype=jnp.uint32)
  below = (jnp.uint32(1) << shifts) - jnp.uint32(1)  # mask of the rows before
  mask = jnp.sum(x.reshape(nq, c // 32, 32).astype(jnp.uint32) << shifts, axis=2,
                 dtype=jnp.uint32)
  cnt = lax.population_count(mask).astype(jnp.int32)
  inner = lax.population_count(mask[:, :, None] & below).astype(jnp.int32)
  excl = jnp.cumsum(cnt, axis=1) - cnt
  return (excl[:, :, None] + inner).reshape(nq, c), jnp.sum(cnt, axis=1)


def _compact(db, queries, count, base, t, need, *, k, bits, chunk):
  """Local rows ``[nq, k]`` int32 of the items with ``d < t`` and the first
  ``need`` with ``d == t``, in row order; unused slots hold ``m`` (no row)."""
  m = db.shape[0]
  nq = queries.shape[0]
  chunks, nch = _columns(db, chunk)
  rows = jnp.arange(nq, dtype=jnp.int32)[:, None]
  local = jnp.arange(chunk, dtype=jnp.int32)
  t, need = t[:, None], need[:, None]

  def body(carry, xs):
    taken, seen_t, out = carry
    cols, j = xs
    d = _valid_distances(queries, cols, j, chunk, m, count, base, bits)
    at_t = d == t
    rank_t, n_t = _prefix_count(at_t)
    keep = (d < t) | (at_t & (seen_t[:, None] + rank_t < need))
    slot, n_keep = _prefix_count(keep)
    slot = jnp.where(keep, taken[:, None] + slot, k)
    out = out.at[rows, slot].set(jnp.broadcast_to(j * chunk + local, d.shape),
                                 mode="drop")
    return (taken + n_keep, seen_t + n_t, out), None

  init = (jnp.zeros((nq,), jnp.int32), jnp.zeros((nq,), jnp.int32),
          jnp.full((nq, k), m, jnp.int32))
  return lax.scan(body, init, (chunks, jnp.arange(nch, dtype=jnp.int32)))[0][2]


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


def _local_count_select(db, ids, queries, count, *, k, bits, chunk_size):
  """Counting-select top-k of an unsharded database: ``[nq, k]`` distances, ids."""
  chunk = _count_chunk(db.shape[0], chunk_size)
  t, need = _threshold(_histogram(db, queries, count, 0, bits=bits, chunk=chunk), k)
  rows = _compact(db, queries, count, 0, t, need, k=k, bits=bits, chunk=chunk)
  d, safe = _rescore(db, queries, rows, bits=bits)
  d, safe = lax.sort((d, safe), dimension=1, num_keys=1, is_stable=True)
  return d, ids[safe]


def _sharded_count_select(db, lid, q, cnt, *, k, bits, chunk_size):
  """Body of the shard_map counting select (see the module docstring)."""
  me = lax.axis_index(DATA_AXIS)
  base = me * db.shape[0]
  chunk = _count_chunk(db.shape[0], chunk_size)
  hist = _histogram(db, q, cnt, base, bits=bits, chunk=chunk)
  t, need = _threshold(lax.psum(hist, DATA_AXIS), k)
  at_t = jnp.take_along_axis(hist, t[:, None], axis=1)[:, 0]
  every = lax.all_gather(at_t, DATA_AXIS)  # [devices, nq]
  earlier = jnp.sum(jnp.where(jnp.arange(every.shape[0])[:, None] < me, every, 0),
                    axis=0)
  rows = _compact(db, q, cnt, base, t, jnp.maximum(need - earlier, 0), k=k,
                  bits=bits, chunk=chunk)
  d, safe = _rescore(db, q, rows, bits=bits)
  # Device order = row order, and each buffer is in row order: a stable sort by
  # distance of the gathered buffers gives (distance, row) order.
  d = lax.all_gather(d, DATA_AXIS, axis=1, tiled=True)
  i = lax.all_gather(lid[safe], DATA_AXIS, axis=1, tiled=True)
  d, i = lax.sort((d, i), dimension=1, num_keys=1, is_stable=True)
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
    chunk_size: rows per scan step (the counting select uses at most 1024).
    mesh: None or the mesh of ``packed``.
    group_size: rows per group of the group scan; None: :func:`default_group_size`.
    method: "group", "count" or None (:func:`default_method`; "group" when
      ``group_size`` is given).

  Returns:
    ``(distances, ids)`` ``[nq, k]``, ascending by (distance, row).
  """
  if method is None:
    method = "group" if group_size is not None else default_method(k, bits)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if method == "count":
    kw = dict(k=k, bits=bits, chunk_size=chunk_size)
    if mesh is None:
      return _local_count_select(packed, ids, queries, count, **kw)
    return _shard_map(functools.partial(_sharded_count_select, **kw), mesh,
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
