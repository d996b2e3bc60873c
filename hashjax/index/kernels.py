"""Jitted streamed kernels of the Hamming index (unsharded and shard_map paths).

The database is scanned in chunks of ``chunk_size`` rows (``lax.scan``) with a
running top-k merge, so no ``[nq, n]`` matrix is built. Scores are
``bits - distance`` in float32: XLA's CPU top-k has a fast path for float32 only
(int32 falls back to a full sort, about 50x slower in a 262k x 1k test).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from hashjax.metrics.packing import hamming_distance

__all__ = ["DATA_AXIS", "count_kernel", "topk_kernel"]

DATA_AXIS = "data"


def _chunked(db, ids, chunk_size):
  """Pads local rows to whole chunks: ``[nch, c, w]``, ``[nch, c]``, ``c``."""
  m, w = db.shape
  c = min(chunk_size, m)
  nch = -(-m // c)
  pad = nch * c - m
  if pad:
    db = jnp.pad(db, ((0, pad), (0, 0)))
    ids = jnp.pad(ids, (0, pad), constant_values=-1)
  return db.reshape(nch, c, w), ids.reshape(nch, c), c, nch


def _local_topk(db, ids, queries, count, base, *, k, bits, chunk_size):
  """Top-k of local rows ``db [m, w]`` (global rows ``base + i``) as scores.

  Scores are ``bits - distance`` in float32 (the fast CPU top-k path), padding
  rows -1. ``lax.top_k`` puts the lower index first among equal values, and each
  merge lists the running best (earlier rows) before the chunk, so ties keep
  insertion order.
  """
  m = db.shape[0]
  dbc, idc, c, nch = _chunked(db, ids, chunk_size)
  local = jnp.arange(c, dtype=jnp.int32)

  def body(carry, xs):
    best_s, best_id = carry
    chunk, chunk_ids, j = xs
    row = j * c + local
    valid = (row < m) & (base + row < count)
    s = (bits - hamming_distance(queries, chunk)).astype(jnp.float32)
    s = jnp.where(valid[None, :], s, -1.0)
    cat_s = jnp.concatenate([best_s, s], axis=1)
    cat_id = jnp.concatenate([best_id, jnp.broadcast_to(chunk_ids, s.shape)], axis=1)
    top_s, sel = lax.top_k(cat_s, k)
    return (top_s, jnp.take_along_axis(cat_id, sel, axis=1)), None

  nq = queries.shape[0]
  init = (jnp.full((nq, k), -1.0, jnp.float32), jnp.full((nq, k), -1, ids.dtype))
  (best_s, best_id), _ = lax.scan(
      body, init, (dbc, idc, jnp.arange(nch, dtype=jnp.int32)))
  return best_s, best_id


def _local_count(db, queries, count, base, radius, *, chunk_size):
  """Number of local rows within ``radius`` of each query: ``[nq]`` int32."""
  m = db.shape[0]
  dbc, _, c, nch = _chunked(db, jnp.zeros((m,), jnp.int32), chunk_size)
  local = jnp.arange(c, dtype=jnp.int32)

  def body(total, xs):
    chunk, j = xs
    row = j * c + local
    valid = (row < m) & (base + row < count)
    hit = (hamming_distance(queries, chunk) <= radius) & valid[None, :]
    return total + jnp.sum(hit, axis=1, dtype=jnp.int32), None

  init = jnp.zeros((queries.shape[0],), jnp.int32)
  return lax.scan(body, init, (dbc, jnp.arange(nch, dtype=jnp.int32)))[0]


def _shard_map(fn, mesh, in_specs, out_specs):
  if hasattr(jax, "shard_map"):
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map  # pylint: disable=g-import-not-at-top

  return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                   check_rep=False)


@functools.partial(jax.jit, static_argnames=("k", "bits", "chunk_size", "mesh"))
def topk_kernel(packed, ids, queries, count, *, k, bits, chunk_size, mesh):
  """Exact top-k: ``[nq, k]`` int32 distances and ids (see :func:`search`)."""
  kw = dict(k=k, bits=bits, chunk_size=chunk_size)
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
