"""Jitted kernels of the retrieval metrics: exact stable Hamming ranks by counting.

The ranking of query ``q`` orders the database by the key ``(distance, index)``:
equal Hamming distances are broken by database index (a stable sort). With
``b``-bit codes the distance takes only ``b + 1`` values, so the rank of item ``j``
at distance ``d`` is, exactly,

  rank(j) = #{i : d_i < d} + #{i < j : d_i = d} + 1
  hits(j) = #{i relevant : d_i < d} + #{i < j relevant : d_i = d} + 1

(``hits`` counts the relevant items ranked at or before ``j`` when ``j`` is
relevant). No sort is needed:

1. pass 1 streams the database in chunks and builds, per query, the histogram
   of distances of all items and of relevant items (``[qc, b + 2]``); their
   exclusive prefix sums over distance are the first terms above;
2. pass 2 streams the database again in index order in blocks of ``block``
   items, carrying per-query running counts per distance (``[qc, b + 2]``). A
   block adds the counts of same-distance items inside the block before ``j``
   to the carried counts, which gives the exact rank and hit count of every
   item, then updates the carry. For ``block <= 32`` the in-block counts are
   bit-parallel: each bit k of the distances becomes one 32-bit plane per query
   (bit i set when item i has bit k), item j's same-distance mask is the AND
   over k of the plane or its complement (whichever matches j's bit k), and
   popcounts of that mask below j (and of its relevant part) are the counts:
   about ``2 log2(b + 2)`` word operations per item instead of a ``block``-wide
   comparison (1.75x faster rank pass, 256 x 20k x 64 bits, CPU). Larger
   blocks use the ``[qc, block, block]`` comparison.

Memory is ``O(qc * (block^2 + chunk + b))``: neither pass builds a
``[num_queries, num_database]`` matrix, except that pass 1 may keep each pair's
distance and relevance as one byte (``keep``; ``qc * m`` bytes per query chunk,
which the callers bound) so that pass 2 reads them instead of recomputing them. Database rows are padded to whole chunks
with a sentinel distance ``b + 1`` (ranked after every real item, never relevant).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from hashjax.codes import hamming_distance

__all__ = ["histograms", "ranked_stats"]

# Rank-pass scan steps per loop iteration: about 1.3x faster than 1 on CPU
# (256 queries x 20k rows x 64 bits, block 32), at some compile time.
_UNROLL = 4


def _chunks(x: jax.Array, size: int) -> jax.Array:
  """``[m, ...] -> [m / size, size, ...]`` (``m`` is a multiple of ``size``)."""
  return x.reshape((x.shape[0] // size, size) + x.shape[1:])


def _block_terms(qp, ql, p, l, j0, n, bits):
  """Distances ``[qc, c]`` int32 (padding -> bits + 1) and shared labels f32."""
  c = p.shape[0]
  valid = (j0 + jnp.arange(c, dtype=jnp.int32)) < n
  d = jnp.where(valid[None, :], hamming_distance(qp, p), bits + 1)
  shared = jnp.where(valid[None, :], ql @ l.T, 0.0)
  return d, shared


MAX_KEPT_BITS = 126  # kept pairs store d | rel << 7 in one uint8: d <= b + 1 <= 127


@functools.partial(jax.jit, static_argnames=("bits", "chunk", "gains", "keep"))
def histograms(qp: jax.Array, dp: jax.Array, ql: jax.Array, dl: jax.Array,
               n: jax.Array, *, bits: int, chunk: int, gains: bool,
               keep: bool = False):
  """Pass 1: per-query distance histograms of all and of relevant items.

  Args:
    qp: ``[qc, w]`` uint32 packed query codes.
    dp: ``[m, w]`` uint32 packed database codes, ``m`` a multiple of ``chunk``
      (rows ``>= n`` are padding).
    ql: ``[qc, C]`` float32 multi-hot query labels.
    dl: ``[m, C]`` float32 multi-hot database labels.
    n: int32 scalar, number of real database rows.
    bits: code length ``b``.
    chunk: database rows per scan step (``<= 2^14``).
    gains: also count the shared-label values (for the ideal DCG).
    keep: also return every pair's distance and relevance (``b <=
      MAX_KEPT_BITS``), so that :func:`ranked_stats` need not recompute them.

  Returns:
    ``(all, rel, shared, pairs)``: int32 ``[qc, b + 2]`` counts per distance
    (bucket ``b + 1`` holds the padding), the same for relevant items, int32
    ``[qc, C + 1]`` counts of items per number of shared labels (zeros when
    ``gains`` is False), and, when ``keep``, uint8 ``[m / chunk, qc, chunk]``
    ``d | relevant << 7`` per pair (else None).
  """
  if keep and bits > MAX_KEPT_BITS:
    raise ValueError(f"keep needs bits <= {MAX_KEPT_BITS}, got {bits}.")
  qc = qp.shape[0]
  rows = jnp.arange(qc, dtype=jnp.int32)[:, None]
  ncls = ql.shape[1]
  nb = bits + 2
  # Flat indices into [qc * (b + 2)] counts, in bounds by construction: a scatter
  # with a scalar index (faster on CPU than the 2-D index [rows, d]).
  offset = rows * nb

  def body(carry, xs):
    ta, tr, tg = carry
    p, l, j = xs
    d, shared = _block_terms(qp, ql, p, l, j * chunk, n, bits)
    # One scatter of 1 + 2^16 rel: a chunk holds <= 2^14 rows, so both counts
    # fit in one int32 without reaching the sign bit.
    both = jnp.zeros((qc * nb,), jnp.int32).at[(offset + d).reshape(-1)].add(
        (1 + ((shared > 0).astype(jnp.int32) << 16)).reshape(-1),
        mode="promise_in_bounds").reshape(qc, nb)
    ta = ta + (both & 0xFFFF)
    tr = tr + (both >> 16)
    if gains:
      tg = tg.at[rows, shared.astype(jnp.int32)].add(1)
    pairs = None
    if keep:
      pairs = d.astype(jnp.uint8) | ((shared > 0).astype(jnp.uint8) << 7)
    return (ta, tr, tg), pairs

  nch = dp.shape[0] // chunk
  init = (jnp.zeros((qc, bits + 2), jnp.int32), jnp.zeros((qc, bits + 2), jnp.int32),
          jnp.zeros((qc, ncls + 1), jnp.int32))
  (ta, tr, tg), pairs = lax.scan(body, init, (_chunks(dp, chunk), _chunks(dl, chunk),
                                              jnp.arange(nch, dtype=jnp.int32)))
  return ta, tr, tg, pairs


def _ideal_dcg(tg: jax.Array, kvec: jax.Array, m: int) -> jax.Array:
  """Ideal DCG@k ``[qc, nk]`` from counts per shared-label value ``[qc, C + 1]``.

  Sorted by relevance (descending), value ``v`` occupies ranks
  ``start_v + 1 .. end_v``; with ``H[r] = sum_{i<=r} 1 / log2(i + 1)`` (a table
  of ``m + 1`` entries, ``m >= k``) its part of IDCG@k is
  ``(2^v - 1) (H[min(end_v, k)] - H[min(start_v, k)])``.
  """
  disc = 1.0 / jnp.log2(jnp.arange(2, m + 2, dtype=jnp.float32))
  h = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(disc)])
  end = jnp.cumsum(tg[:, ::-1], axis=1)[:, ::-1]  # items with value >= v
  start = end - tg
  gain = 2.0 ** jnp.arange(tg.shape[1], dtype=jnp.float32) - 1.0
  k = kvec[None, None, :]
  part = h[jnp.minimum(end[..., None], k)] - h[jnp.minimum(start[..., None], k)]
  return jnp.sum(gain[None, :, None] * part, axis=1)


@functools.partial(jax.jit, static_argnames=("bits", "block", "ndcg"))
def ranked_stats(qp: jax.Array, dp: jax.Array, ql: jax.Array, dl: jax.Array,
                 n: jax.Array, ta: jax.Array, tr: jax.Array, tg: jax.Array,
                 kvec: jax.Array, pairs: jax.Array | None = None, *, bits: int,
                 block: int, ndcg: bool):
  """Pass 2: exact stable ranks of every item, reduced to per-query statistics.

  Args:
    qp, dp, ql, dl, n: as in :func:`histograms` (``m`` a multiple of ``block``).
    ta, tr, tg: the outputs of :func:`histograms` for the same inputs.
    kvec: int32 ``[nk]`` cut-offs ``k`` (each ``<= n``, traced: new values do not
      recompile); ``nk`` may be 0.
    pairs: None, or the kept pairs of :func:`histograms` (``keep=True``, chunk a
      multiple of ``block``): read instead of recomputing distances and labels
      (not with ``ndcg``, which needs the shared-label counts).
    bits: code length ``b``.
    block: database rows per scan step (cost ``O(block)`` per query-item pair).
    ndcg: also compute NDCG@k.

  Returns:
    dict of float32 arrays: ``ap`` ``[qc]`` (AP over the whole ranking, 0 for a
    query with no relevant item) and, per ``k`` in ``kvec`` (``[qc, nk]``),
    ``ap_k`` (truncated AP@k: precision at the relevant items of the top k,
    normalised by their number, 0 if none), ``ap_calc_k`` (``calc_map_k``:
    precision at the first ``min(k, R)`` relevant items wherever they rank,
    ``R`` the query's relevant items, normalised by ``min(k, R)``, 0 if
    ``R = 0``), ``hits_k`` (relevant items in the top k) and, when ``ndcg``,
    ``ndcg_k`` (0 when the ideal DCG is 0).
  """
  qc = qp.shape[0]
  nk = kvec.shape[0]
  rows = jnp.arange(qc, dtype=jnp.int32)[:, None]
  local = jnp.arange(block, dtype=jnp.int32)
  earlier = local[None, :] < local[:, None]  # [j, i]: i before j in the block
  bit_parallel = block <= 32
  shifts = jnp.arange(min(block, 32), dtype=jnp.uint32)
  below = (jnp.uint32(1) << shifts) - jnp.uint32(1)  # items before j, as a mask
  planes = (bits + 1).bit_length()  # bits of a distance in [0, b + 1]

  def in_block_counts(d, rel):
    """Same-distance items before j in the block: (all, relevant) ``[qc, block]``."""
    if not bit_parallel:
      same = (d[:, :, None] == d[:, None, :]) & earlier
      return (jnp.sum(same, axis=2, dtype=jnp.int32),
              jnp.sum(same & rel[:, None, :], axis=2, dtype=jnp.int32))
    du = d.astype(jnp.uint32)
    differ = jnp.zeros_like(du)  # bit i set: item i's distance differs from j's
    for k in range(planes):
      bit = (du >> k) & jnp.uint32(1)
      plane = jnp.sum(bit << shifts, axis=1, dtype=jnp.uint32)  # [qc]
      differ = differ | (plane[:, None] ^ (jnp.uint32(0) - bit))
    same = ~differ & below
    rel_mask = jnp.sum(rel.astype(jnp.uint32) << shifts, axis=1, dtype=jnp.uint32)
    return (lax.population_count(same).astype(jnp.int32),
            lax.population_count(same & rel_mask[:, None]).astype(jnp.int32))

  if pairs is not None and ndcg:
    raise ValueError("ranked_stats: pairs cannot be used with ndcg.")

  def body(carry, xs):
    sa, sr, acc, acc_k, acc_c, hit_k, dcg_k = carry
    if pairs is None:
      p, l, j = xs
      d, shared = _block_terms(qp, ql, p, l, j * block, n, bits)
      rel = shared > 0
    else:
      d = (xs & 0x7F).astype(jnp.int32)
      rel = xs >= 0x80
    w = 1 + (rel.astype(jnp.int32) << 16)  # packed (item, relevant item) count
    inner_all, inner_rel = in_block_counts(d, rel)
    flat = (offset + d).reshape(-1)
    if packed:
      before = sa[flat].reshape(d.shape) + inner_all + (inner_rel << 16)
      rank = (before & 0xFFFF) + 1
      hits = (before >> 16) + 1
    else:
      rank = sa[flat].reshape(d.shape) + inner_all + 1
      hits = sr[flat].reshape(d.shape) + inner_rel + 1
    prec = jnp.where(rel, hits.astype(jnp.float32) / rank.astype(jnp.float32), 0.0)
    acc = acc + jnp.sum(prec, axis=1)
    if nk:
      in_k = rank[:, :, None] <= kvec  # [qc, c, nk]
      acc_k = acc_k + jnp.sum(jnp.where(in_k, prec[:, :, None], 0.0), axis=1)
      first = hits[:, :, None] <= first_rel[:, None, :]  # [qc, c, nk]
      acc_c = acc_c + jnp.sum(jnp.where(first, prec[:, :, None], 0.0), axis=1)
      hit_k = hit_k + jnp.sum(in_k & rel[:, :, None], axis=1, dtype=jnp.int32)
      if ndcg:
        g = (2.0 ** shared - 1.0) / jnp.log2(rank.astype(jnp.float32) + 1.0)
        dcg_k = dcg_k + jnp.sum(jnp.where(in_k, g[:, :, None], 0.0), axis=1)
    if packed:
      sa = sa.at[flat].add(w.reshape(-1), mode="promise_in_bounds")
    else:
      sa = sa.at[flat].add(1, mode="promise_in_bounds")
      sr = sr.at[flat].add(rel.astype(jnp.int32).reshape(-1), mode="promise_in_bounds")
    return (sa, sr, acc, acc_k, acc_c, hit_k, dcg_k), None

  # Running counts start at the number of (relevant) items at smaller distances.
  # Below 2^15 rows both counts share one int32 (count + 2^16 relevant count,
  # below the sign bit): one gather and one scatter per item instead of two.
  packed = dp.shape[0] < (1 << 15)
  sa0 = jnp.cumsum(ta, axis=1) - ta
  sr0 = jnp.cumsum(tr, axis=1) - tr
  if packed:
    sa0, sr0 = sa0 + (sr0 << 16), jnp.zeros((qc, 1), jnp.int32)
  sa0, sr0 = sa0.reshape(-1), sr0.reshape(-1)  # flat: indexed by offset + d
  offset = rows * (bits + 2)
  num_rel = jnp.sum(tr, axis=1)
  # calc_map_k counts the relevant items ranked 1..min(k, R) among relevant ones.
  first_rel = jnp.minimum(kvec[None, :], num_rel[:, None])  # [qc, nk]
  zk = jnp.zeros((qc, max(nk, 1)), jnp.float32)
  init = (sa0, sr0, jnp.zeros((qc,), jnp.float32), zk, zk,
          jnp.zeros((qc, max(nk, 1)), jnp.int32), zk)
  nb = dp.shape[0] // block
  if pairs is None:
    xs = (_chunks(dp, block), _chunks(dl, block), jnp.arange(nb, dtype=jnp.int32))
  else:  # [nch, qc, chunk] -> [nb, qc, block], blocks in database order
    nch, _, ch = pairs.shape
    xs = pairs.reshape(nch, qc, ch // block, block).transpose(0, 2, 1, 3)
    xs = xs.reshape(nb, qc, block)
  (_, _, acc, acc_k, acc_c, hit_k, dcg_k), _ = lax.scan(body, init, xs, unroll=_UNROLL)
  out = {"ap": jnp.where(num_rel > 0, acc / jnp.maximum(num_rel, 1), 0.0)}
  if nk:
    out["ap_k"] = jnp.where(hit_k > 0, acc_k / jnp.maximum(hit_k, 1), 0.0)
    out["ap_calc_k"] = jnp.where(first_rel > 0, acc_c / jnp.maximum(first_rel, 1), 0.0)
    out["hits_k"] = hit_k
    if ndcg:
      idcg = _ideal_dcg(tg, kvec, dp.shape[0])
      out["ndcg_k"] = jnp.where(idcg > 0, dcg_k / jnp.where(idcg > 0, idcg, 1.0), 0.0)
  return out
