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
    "count_kernel",
    "default_group_size",
    "topk_kernel",
]

DATA_AXIS = "data"
DEFAULT_GROUP_SIZE = 32
MAX_REFINE_CANDIDATES = 8192


def default_group_size(k: int) -> int:
  """Rows per group of the group scan for a top-``k`` search.

  ``DEFAULT_GROUP_SIZE`` while the ``k * g`` refine candidates per query stay
  within ``MAX_REFINE_CANDIDATES``, else 1 (a plain running top-k over rows).
  """
  return DEFAULT_GROUP_SIZE if k * DEFAULT_GROUP_SIZE <= MAX_REFINE_CANDIDATES else 1


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
  valid = (rows < m) & (base + rows < count)
  safe = jnp.minimum(rows, m - 1)
  d = None
  for j in range(db.shape[1]):
    p = lax.population_count(db[:, j][safe] ^ queries[:, j:j + 1]).astype(jnp.int32)
    d = p if d is None else d + p
  s = jnp.where(valid, (bits - d).astype(jnp.float32), -1.0)
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


def _shard_map(fn, mesh, in_specs, out_specs):
  if hasattr(jax, "shard_map"):
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map  # pylint: disable=g-import-not-at-top

  return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                   check_rep=False)


@functools.partial(jax.jit,
                   static_argnames=("k", "bits", "chunk_size", "group_size", "mesh"))
def topk_kernel(packed, ids, queries, count, *, k, bits, chunk_size, mesh,
                group_size=None):
  """Exact top-k: ``[nq, k]`` int32 distances and ids (see :func:`search`).

  ``group_size`` None picks :func:`default_group_size`.
  """
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
