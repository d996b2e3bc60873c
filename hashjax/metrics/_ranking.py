"""Jitted kernels of the retrieval metrics: exact stable Hamming ranks by counting.

The ranking of query ``q`` orders the database by the key ``(distance, index)``:
equal Hamming distances are broken by database index (a stable sort). With
``b``-bit codes the distance takes only ``b + 1`` values, so the rank of item ``j``
at distance ``d`` is, exactly,

  rank(j) = #{i : d_i < d} + #{i < j : d_i = d} + 1
  hits(j) = #{i relevant : d_i < d} + #{i < j relevant : d_i = d} + 1

(``hits`` counts the relevant items ranked at or before ``j`` when ``j`` is
relevant). No sort is needed. Pass 1 (:func:`histograms`) streams the database
in chunks of ``chunk`` rows and builds, per query, the histograms of distances of
all and of relevant items (``[qc, b + 2]``; their exclusive prefix sums over
distance are the first terms above) and the same per chunk (``[m / chunk, qc, b +
2]``). Pass 2 (:func:`ranked_stats`) finds the second terms in one of two ways,
``method`` (same values; :func:`default_method` picks by backend):

``"blocks"`` (accelerators): the database is cut into chunks and every chunk
into blocks of ``block`` rows, and the second term splits by where ``i`` lies,

  #{i < j : d_i = d} = #{i in earlier chunks : d_i = d}                    (C)
                     + #{i in earlier blocks of j's chunk : d_i = d}       (B)
                     + #{i < j in j's block : d_i = d}                     (I)

so every chunk, and every block of a chunk, is ranked independently:

1. exclusive prefix sums of pass 1's total histogram over distance and of its
   per-chunk histograms over chunks give, for every (chunk, distance), the
   first term plus (C): ``start[chunk, d]``, the items ranked before the
   chunk's first item at ``d``;
2. inside a chunk (:func:`_in_chunk_before`), per-block histograms
   ``[qc, chunk / block, b + 2]`` (one scatter-add), their exclusive cumulative
   sum over blocks (a log-depth scan) and a gather at ``(block of j, d_j)``
   give (B); (I) are the in-block counts below;
3. ``rank(j) = start[chunk, d_j] + (B) + (I) + 1`` (a gather from ``[qc, b +
   2]``), reduced to per-query statistics. The loop over chunks carries only
   those sums: no scatter across steps, no per-item dependency; every step is
   parallel over the queries and the whole chunk.

With ``keep`` pass 1 computes (B) + (I) itself, while the distances are at
hand, and stores one uint32 word per pair, ``(B+I) | (B+I over relevant items)
<< 12 | d << 24 | relevant << 31`` (``chunk <= 4096``, ``b <= 126``); pass 2
then only unpacks, gathers and reduces. Without it (NDCG, which needs the
shared-label counts, or too many pairs) pass 2 recomputes the distances and
step 2. A chunk's items are handled position-major (:func:`_position_major`) so
that the in-block reductions run along a major axis.

``"scan"`` (CPU): pass 2 streams the database again in index order, one block
per step, carrying per-query running counts per distance (``[qc, b + 2]``,
starting at the first terms); a block gathers the carried counts at each item's
distance, adds (I), and scatters its items into the carry. The carry stays in
L1, which makes this about 3.5x faster than ``"blocks"`` on CPU (mAP@all of
5000 x 20000 x 64 bits: 1.0-1.2 s against 3.7-4.2 s, 2 cores at load 8-10; XLA's
CPU scatter, gather and scan over the ``[qc, chunk / block, b + 2]`` tables cost
several ns per pair), but its ``m / block`` small sequential steps starve an
accelerator. ``keep`` stores ``d | relevant << 7`` (one byte a pair).

(I), the same-distance items before ``j`` inside its block, is bit-parallel for
``block <= 32``: each bit k of the distances becomes one 32-bit plane per query
and block (bit i set when item i has bit k), item j's same-distance mask is the
AND over k of the plane or its complement (whichever matches j's bit k), and
popcounts of that mask below j (and of its relevant part) are the counts, about
``2 log2(b + 2)`` word operations per item. Larger blocks compare ``[block,
block]`` pairs.

Memory per query chunk is ``O(qc * (chunk + (m / chunk) * b + block^2))``
int32, plus ``O(qc * chunk * (b + 2) / block)`` for the per-block histograms of
``"blocks"`` (``4 * qc * chunk * (b + 2) / block`` bytes: 8.7 MB at 256 queries,
chunk 4096, 64 bits, block 32). Neither pass builds a ``[num_queries,
num_database]`` matrix, except the kept values (``keep``: ``qc * m`` bytes for
``"scan"``, ``4 * qc * m`` for ``"blocks"``, which the callers bound). Database
rows are padded to whole chunks with a sentinel distance ``b + 1`` (ranked after
every real item, never relevant).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from hashjax.codes import hamming_distance

__all__ = ["METHODS", "STATS", "can_keep", "default_method", "histograms", "ranked_stats"]

MAX_KEPT_BITS = 126  # a kept word holds d in 7 bits: d <= b + 1 <= 127
MAX_KEPT_CHUNK = 4096  # ... and in-chunk counts in 12 bits: <= chunk - 1
_HIGH = 16  # packed counts: all + relevant << 16 (both < 2^15 within a chunk)
METHODS = ("scan", "blocks")
# "scan" steps per loop iteration: about 1.3x faster than 1 on CPU (256 queries x
# 20k rows x 64 bits, block 32), at some compile time.
_UNROLL = 4


def default_method(backend: str | None = None) -> str:
  """The rank pass for a backend (default: JAX's default backend).

  ``"scan"`` on CPU, where its running counts stay in L1 and it is about 3.5x
  faster than ``"blocks"`` (5000 x 20000 x 64 bits, see the module docstring);
  ``"blocks"`` elsewhere: its steps are whole chunks with no carried counts, where
  ``"scan"``'s thousands of small sequential steps starve an accelerator.
  """
  return "scan" if (backend or jax.default_backend()) == "cpu" else "blocks"


def can_keep(bits: int, chunk: int, block: int, method: str) -> bool:
  """Whether :func:`histograms` can keep per-pair values for ``method``."""
  if bits > MAX_KEPT_BITS:
    return False
  return method == "scan" or (chunk <= MAX_KEPT_CHUNK and chunk % block == 0)


def _chunks(x: jax.Array, size: int) -> jax.Array:
  """``[m, ...] -> [m / size, size, ...]`` (``m`` is a multiple of ``size``)."""
  return x.reshape((x.shape[0] // size, size) + x.shape[1:])


def _block_terms(qp, ql, p, l, j0, n, bits, block=None):
  """Distances ``[qc, c]`` int32 (padding -> bits + 1) and shared labels f32.

  With ``block``, the chunk's columns are position-major (:func:`_position_major`).
  """
  c = p.shape[0]
  row = jnp.arange(c, dtype=jnp.int32)
  if block is not None:
    row = _position_major(row, block)
    p, l = _position_major(p, block), _position_major(l, block)
  valid = (j0 + row) < n
  d = jnp.where(valid[None, :], hamming_distance(qp, p), bits + 1)
  shared = jnp.where(valid[None, :], ql @ l.T, 0.0)
  return d, shared


def _position_major(x: jax.Array, block: int) -> jax.Array:
  """Rows ``[c, ...]`` in order ``(position in block, block)``: row ``pos * (c /
  block) + blk`` of the result is row ``blk * block + pos`` of ``x``.

  A chunk's per-item values then reshape to ``[qc, block, c / block]``, so the
  reductions over a block's items run along a major axis (vectorised adds):
  along the minor axis XLA's CPU code is about 4x slower.
  """
  c = x.shape[0]
  return x.reshape((c // block, block) + x.shape[1:]).swapaxes(0, 1).reshape(x.shape)


def _bit_masks(block: int, ndim: int):
  """``(shifts, below)`` uint32 ``[block, 1...]`` (``ndim - 2`` ones): position
  ``i`` and the mask of the positions before it."""
  shifts = jnp.arange(block, dtype=jnp.uint32).reshape((block,) + (1,) * (ndim - 2))
  return shifts, (jnp.uint32(1) << shifts) - jnp.uint32(1)


def _in_block_counts(d: jax.Array, rel: jax.Array, bits: int, masks=None):
  """Same-distance items before each item inside its block, (I) of the docstring.

  Args:
    d: ``[qc, block, ...]`` int32 distances in ``[0, b + 1]``: ``[qc, block]``
      (one block) or ``[qc, block, nblk]``, ``[:, pos, blk]`` the item at
      position ``pos`` of block ``blk``.
    rel: bool relevance, shaped like ``d``.
    bits: code length ``b``.
    masks: None or ``_bit_masks(block, d.ndim)`` made outside a loop body (as
      loop invariants the ``"scan"`` pass is about 20% faster on CPU).

  Returns:
    ``(all, relevant)`` int32 shaped like ``d``: items ``i < j`` of j's block
    with ``d_i = d_j`` (and those of them that are relevant). Blocks above 32
    compare ``[qc, block, block]`` pairs, one block at a time.
  """
  block = d.shape[1]
  if block > 32:
    if d.ndim == 3:  # one block at a time: memory O(qc * block^2), not * chunk
      counts = lax.map(lambda x: _in_block_counts(x[0], x[1], bits),
                       (jnp.moveaxis(d, 2, 0), jnp.moveaxis(rel, 2, 0)))
      return tuple(jnp.moveaxis(x, 0, 2) for x in counts)
    local = jnp.arange(block, dtype=jnp.int32)
    earlier = local[None, :] < local[:, None]  # [j, i]: i before j in the block
    same = (d[:, :, None] == d[:, None, :]) & earlier  # [qc, j, i]
    return (jnp.sum(same, axis=2, dtype=jnp.int32),
            jnp.sum(same & rel[:, None, :], axis=2, dtype=jnp.int32))
  shifts, below = _bit_masks(block, d.ndim) if masks is None else masks
  du = d.astype(jnp.uint32)
  differ = jnp.zeros_like(du)  # bit i set: item i's distance differs from j's
  for k in range((bits + 1).bit_length()):  # bits of a distance in [0, b + 1]
    bit = (du >> k) & jnp.uint32(1)
    plane = jnp.sum(bit << shifts, axis=1, keepdims=True, dtype=jnp.uint32)
    differ = differ | (plane ^ (jnp.uint32(0) - bit))
  same = ~differ & below
  rel_mask = jnp.sum(rel.astype(jnp.uint32) << shifts, axis=1, keepdims=True,
                     dtype=jnp.uint32)
  return (lax.population_count(same).astype(jnp.int32),
          lax.population_count(same & rel_mask).astype(jnp.int32))


def _in_chunk_before(d: jax.Array, rel: jax.Array, *, block: int, bits: int):
  """Same-distance items before each item inside its chunk, (B) + (I).

  Args:
    d: ``[qc, c]`` int32 distances in ``[0, b + 1]`` of one chunk, columns
      position-major (:func:`_position_major`; ``c`` a multiple of ``block``,
      ``c <= 2^14``).
    rel: ``[qc, c]`` bool relevance, same order.
    block: rows per block.
    bits: code length ``b``.

  Returns:
    ``(before, hist)``: int32 ``[qc, c]`` (same order) counts of the chunk's
    items ``i < j`` with ``d_i = d_j``, packed ``all + relevant << 16`` (one
    array: XLA's CPU code would recompute the whole computation once per output
    array), and the chunk's histogram int32 ``[qc, b + 2]``, packed alike.
  """
  qc, c = d.shape
  nblk, nb = c // block, bits + 2
  # Flat index of (query, block, distance) into the per-block histograms, in
  # bounds by construction; packed weights: both counts are < 2^15 per chunk.
  blk = jnp.arange(c, dtype=jnp.int32) % nblk
  idx = ((jnp.arange(qc, dtype=jnp.int32)[:, None] * nblk + blk) * nb + d).reshape(-1)
  w = 1 + (rel.astype(jnp.int32) << _HIGH)
  hist = jnp.zeros((qc * nblk * nb,), jnp.int32).at[idx].add(
      w.reshape(-1), mode="promise_in_bounds").reshape(qc, nblk, nb)
  # Same distance, earlier blocks: (B). A log-depth scan: XLA's CPU cumsum is a
  # reduce_window, quadratic in the number of blocks (5x slower at 128 blocks).
  excl = lax.associative_scan(jnp.add, hist, axis=1) - hist
  earlier = excl.reshape(-1).at[idx].get(mode="promise_in_bounds").reshape(qc, c)
  in_all, in_rel = _in_block_counts(d.reshape(qc, block, nblk),
                                    rel.reshape(qc, block, nblk), bits)
  before = earlier + (in_all + (in_rel << _HIGH)).reshape(qc, c)
  return before, excl[:, -1] + hist[:, -1]


@functools.partial(jax.jit, static_argnames=("bits", "chunk", "gains", "keep", "block",
                                             "method"))
def histograms(qp: jax.Array, dp: jax.Array, ql: jax.Array, dl: jax.Array,
               n: jax.Array, *, bits: int, chunk: int, gains: bool,
               keep: bool = False, block: int = 32, method: str = "scan"):
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
    keep: also return what :func:`ranked_stats` with the same ``method`` reads
      instead of recomputing it (:func:`can_keep` says when allowed).
    block: rows per block (``"blocks"`` with ``keep``: of the in-chunk counts).
    method: the rank pass that reads the kept values, ``"scan"`` or ``"blocks"``.

  Returns:
    ``(all, rel, shared, per_chunk, kept)``: int32 ``[qc, b + 2]`` counts per
    distance (bucket ``b + 1`` holds the padding), the same for relevant items,
    int32 ``[qc, C + 1]`` counts of items per number of shared labels (zeros
    when ``gains`` is False), int32 ``[m / chunk, qc, b + 2]`` each chunk's
    counts packed ``all + relevant << 16``, and, when ``keep``, per pair in
    ``[m / chunk, qc, chunk]``: ``"scan"``: uint8 ``d | relevant << 7``
    (database order); ``"blocks"``: uint32 ``(B+I) | (B+I relevant) << 12 | d <<
    24 | relevant << 31`` (position-major in each chunk, see the module
    docstring). Else None.
  """
  if keep and not can_keep(bits, chunk, block, method):
    raise ValueError(f"keep needs bits <= {MAX_KEPT_BITS} (and, for 'blocks', chunk "
                     f"<= {MAX_KEPT_CHUNK} a multiple of block), got bits={bits}, "
                     f"chunk={chunk}, block={block}, method={method!r}.")
  blocks = keep and method == "blocks"
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
    # Position-major columns when keeping words (their order).
    d, shared = _block_terms(qp, ql, p, l, j * chunk, n, bits,
                             block if blocks else None)
    rel = shared > 0
    kept = None
    if blocks:
      before, both = _in_chunk_before(d, rel, block=block, bits=bits)
      before = before.astype(jnp.uint32)
      kept = ((before & 0xFFF) | ((before >> _HIGH) << 12)
              | (d.astype(jnp.uint32) << 24) | (rel.astype(jnp.uint32) << 31))
    else:
      # One scatter of 1 + 2^16 rel: a chunk holds <= 2^14 rows, so both counts
      # fit in one int32 without reaching the sign bit.
      both = jnp.zeros((qc * nb,), jnp.int32).at[(offset + d).reshape(-1)].add(
          (1 + (rel.astype(jnp.int32) << _HIGH)).reshape(-1),
          mode="promise_in_bounds").reshape(qc, nb)
      if keep:
        kept = d.astype(jnp.uint8) | (rel.astype(jnp.uint8) << 7)
    ta = ta + (both & 0xFFFF)
    tr = tr + (both >> _HIGH)
    if gains:
      tg = tg.at[rows, shared.astype(jnp.int32)].add(1)
    return (ta, tr, tg), (both, kept)

  nch = dp.shape[0] // chunk
  init = (jnp.zeros((qc, nb), jnp.int32), jnp.zeros((qc, nb), jnp.int32),
          jnp.zeros((qc, ncls + 1), jnp.int32))
  (ta, tr, tg), (per_chunk, kept) = lax.scan(
      body, init, (_chunks(dp, chunk), _chunks(dl, chunk),
                   jnp.arange(nch, dtype=jnp.int32)))
  return ta, tr, tg, per_chunk, kept


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


def _accumulate(sums, rank, hits, rel, shared, kvec, first_rel, ndcg, sums_wanted):
  """Adds a step's items to the per-query sums of :func:`ranked_stats`.

  Args:
    sums: ``(ap [qc], ap_k, ap_calc_k, hits_k, dcg_k [qc, max(nk, 1)])`` so far.
    rank, hits: int32 ``[qc, c]`` stable rank of each item and relevant items
      ranked at or before it (meaningful where ``rel``).
    rel: bool ``[qc, c]``; shared: float32 ``[qc, c]`` shared labels (``ndcg``).
    kvec: int32 ``[nk]``; first_rel: int32 ``[qc, nk]`` = ``min(k, R)``.
    ndcg: also accumulate the DCG@k.
    sums_wanted: the names of the sums to accumulate (the others stay as they
      are): a subset of ``("ap", "ap_k", "ap_calc_k", "hits_k")``.

  Returns:
    the updated ``sums``.
  """
  acc, acc_k, acc_c, hit_k, dcg_k = sums
  prec = jnp.where(rel, hits.astype(jnp.float32) / rank.astype(jnp.float32), 0.0)
  if "ap" in sums_wanted:
    acc = acc + jnp.sum(prec, axis=1)
  if kvec.shape[0]:
    in_k = rank[:, :, None] <= kvec  # [qc, c, nk]
    if "ap_k" in sums_wanted:
      acc_k = acc_k + jnp.sum(jnp.where(in_k, prec[:, :, None], 0.0), axis=1)
    if "ap_calc_k" in sums_wanted:
      first = hits[:, :, None] <= first_rel[:, None, :]  # [qc, c, nk]
      acc_c = acc_c + jnp.sum(jnp.where(first, prec[:, :, None], 0.0), axis=1)
    if "hits_k" in sums_wanted:
      hit_k = hit_k + jnp.sum(in_k & rel[:, :, None], axis=1, dtype=jnp.int32)
    if ndcg:
      g = (2.0 ** shared - 1.0) / jnp.log2(rank.astype(jnp.float32) + 1.0)
      dcg_k = dcg_k + jnp.sum(jnp.where(in_k, g[:, :, None], 0.0), axis=1)
  return acc, acc_k, acc_c, hit_k, dcg_k


def _sums_blocks(qp, dp, ql, dl, n, ta, tr, per_chunk, kept, kvec, first_rel, init,
                 *, bits, chunk, block, ndcg, sums_wanted):
  """``"blocks"``: every chunk ranked independently (steps 1-3 of the docstring)."""
  # start[c, q, d]: items (relevant items) ranked before chunk c's first item at
  # distance d: those at smaller distances plus those at d in earlier chunks.
  chunk_all, chunk_rel = per_chunk & 0xFFFF, per_chunk >> _HIGH
  start_all = ((jnp.cumsum(ta, axis=1) - ta)[None]
               + jnp.cumsum(chunk_all, axis=0) - chunk_all)
  start_rel = ((jnp.cumsum(tr, axis=1) - tr)[None]
               + jnp.cumsum(chunk_rel, axis=0) - chunk_rel)

  def body(sums, xs):
    if kept is None:
      s_all, s_rel, p, l, j = xs
      d, shared = _block_terms(qp, ql, p, l, j * chunk, n, bits, block)
      rel = shared > 0
      before, _ = _in_chunk_before(d, rel, block=block, bits=bits)
      before_all, before_rel = before & 0xFFFF, before >> _HIGH
    else:
      s_all, s_rel, wd = xs
      shared = None
      before_all = (wd & 0xFFF).astype(jnp.int32)
      before_rel = ((wd >> 12) & 0xFFF).astype(jnp.int32)
      d = ((wd >> 24) & 0x7F).astype(jnp.int32)
      rel = wd >= jnp.uint32(1 << 31)
    rank = jnp.take_along_axis(s_all, d, axis=1) + before_all + 1
    hits = jnp.take_along_axis(s_rel, d, axis=1) + before_rel + 1
    return _accumulate(sums, rank, hits, rel, shared, kvec, first_rel, ndcg,
                       sums_wanted), None

  nch = dp.shape[0] // chunk
  if kept is None:
    xs = (start_all, start_rel, _chunks(dp, chunk), _chunks(dl, chunk),
          jnp.arange(nch, dtype=jnp.int32))
  else:
    xs = (start_all, start_rel, kept)
  return lax.scan(body, init, xs)[0]


def _sums_scan(qp, dp, ql, dl, n, ta, tr, kept, kvec, first_rel, init, *, bits,
               block, ndcg, sums_wanted):
  """``"scan"``: blocks in database order with running counts per distance."""
  qc = qp.shape[0]
  offset = jnp.arange(qc, dtype=jnp.int32)[:, None] * (bits + 2)
  # Running counts start at the number of (relevant) items at smaller distances.
  # Below 2^15 rows both counts share one int32 (count + 2^16 relevant count,
  # below the sign bit): one gather and one scatter per item instead of two.
  packed = dp.shape[0] < (1 << 15)
  sa0 = jnp.cumsum(ta, axis=1) - ta
  sr0 = jnp.cumsum(tr, axis=1) - tr
  if packed:
    sa0, sr0 = sa0 + (sr0 << _HIGH), jnp.zeros((qc, 1), jnp.int32)
  sa0, sr0 = sa0.reshape(-1), sr0.reshape(-1)  # flat: indexed by offset + d
  masks = _bit_masks(block, 2) if block <= 32 else None

  def body(carry, xs):
    sa, sr, sums = carry
    shared = None
    if kept is None:
      p, l, j = xs
      d, shared = _block_terms(qp, ql, p, l, j * block, n, bits)
      rel = shared > 0
    else:
      d = (xs & 0x7F).astype(jnp.int32)
      rel = xs >= 0x80
    inner_all, inner_rel = _in_block_counts(d, rel, bits, masks)
    flat = (offset + d).reshape(-1)
    if packed:
      before = sa[flat].reshape(d.shape) + inner_all + (inner_rel << _HIGH)
      rank = (before & 0xFFFF) + 1
      hits = (before >> _HIGH) + 1
    else:
      rank = sa[flat].reshape(d.shape) + inner_all + 1
      hits = sr[flat].reshape(d.shape) + inner_rel + 1
    sums = _accumulate(sums, rank, hits, rel, shared, kvec, first_rel, ndcg,
                       sums_wanted)
    if packed:
      sa = sa.at[flat].add((1 + (rel.astype(jnp.int32) << _HIGH)).reshape(-1),
                           mode="promise_in_bounds")
    else:
      sa = sa.at[flat].add(1, mode="promise_in_bounds")
      sr = sr.at[flat].add(rel.astype(jnp.int32).reshape(-1), mode="promise_in_bounds")
    return (sa, sr, sums), None

  nb = dp.shape[0] // block
  if kept is None:
    xs = (_chunks(dp, block), _chunks(dl, block), jnp.arange(nb, dtype=jnp.int32))
  else:  # [nch, qc, chunk] -> [nb, qc, block], blocks in database order
    nch, _, ch = kept.shape
    xs = kept.reshape(nch, qc, ch // block, block).transpose(0, 2, 1, 3)
    xs = xs.reshape(nb, qc, block)
  return lax.scan(body, (sa0, sr0, init), xs, unroll=_UNROLL)[0][2]


STATS = ("ap", "ap_k", "ap_calc_k", "hits_k", "ndcg_k")


@functools.partial(jax.jit,
                   static_argnames=("bits", "chunk", "block", "ndcg", "method", "stats"))
def ranked_stats(qp: jax.Array, dp: jax.Array, ql: jax.Array, dl: jax.Array,
                 n: jax.Array, ta: jax.Array, tr: jax.Array, tg: jax.Array,
                 per_chunk: jax.Array, kvec: jax.Array, kept: jax.Array | None = None,
                 *, bits: int, chunk: int, block: int, ndcg: bool,
                 method: str = "scan", stats: tuple[str, ...] | None = None):
  """Pass 2: exact stable ranks of every item, reduced to per-query statistics.

  Args:
    qp, dp, ql, dl, n: as in :func:`histograms` (``m`` a multiple of ``chunk``,
      ``chunk`` a multiple of ``block``).
    ta, tr, tg, per_chunk: the outputs of :func:`histograms` for the same inputs
      and ``chunk``.
    kvec: int32 ``[nk]`` cut-offs ``k`` (each ``<= n``, traced: new values do not
      recompile); ``nk`` may be 0.
    kept: None, or the kept values of :func:`histograms` (``keep=True``, same
      ``block`` and ``method``): read instead of recomputed (not with ``ndcg``,
      which needs the shared-label counts).
    bits: code length ``b``.
    chunk: database rows per step of ``"blocks"`` (memory ``O(qc * chunk * (b +
      2) / block)``).
    block: rows per block (in-block counts cost ``O(log b)`` per pair up to 32,
      ``O(block)`` above; ``"scan"`` takes one block per step).
    ndcg: also compute NDCG@k.
    method: ``"blocks"`` (every chunk independent: no carry, no scatter across
      steps; for accelerators) or ``"scan"`` (running counts, one block per
      step; faster on CPU). Both give the same values.
    stats: the statistics to compute and return (static), a subset of
      :data:`STATS`; None: every one that ``kvec`` and ``ndcg`` allow. The rank
      pass accumulates only what they need (mAP@k alone: about 1.4x faster than
      all of them on CPU).

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
  if kept is not None and ndcg:
    raise ValueError("ranked_stats: kept values cannot be used with ndcg.")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  qc = qp.shape[0]
  nk = kvec.shape[0]
  if stats is None:
    stats = ("ap",) + (("ap_k", "ap_calc_k", "hits_k") if nk else ()) + (
        ("ndcg_k",) if nk and ndcg else ())
  stats = tuple(stats)
  bad = [x for x in stats if x not in STATS]
  if bad or (not nk and set(stats) - {"ap"}) or ("ndcg_k" in stats and not ndcg):
    raise ValueError(f"ranked_stats: stats must be among {STATS} (those with k need "
                     f"kvec, ndcg_k needs ndcg), got {stats!r}.")
  # ap_k is normalised by the relevant items in the top k.
  sums_wanted = set(stats) | ({"hits_k"} if "ap_k" in stats else set())
  ndcg = ndcg and "ndcg_k" in stats
  num_rel = jnp.sum(tr, axis=1)
  # calc_map_k counts the relevant items ranked 1..min(k, R) among relevant ones.
  first_rel = jnp.minimum(kvec[None, :], num_rel[:, None])  # [qc, nk]
  zk = jnp.zeros((qc, max(nk, 1)), jnp.float32)
  init = (jnp.zeros((qc,), jnp.float32), zk, zk, jnp.zeros((qc, max(nk, 1)), jnp.int32),
          zk)
  if method == "blocks":
    sums = _sums_blocks(qp, dp, ql, dl, n, ta, tr, per_chunk, kept, kvec, first_rel,
                        init, bits=bits, chunk=chunk, block=block, ndcg=ndcg,
                        sums_wanted=sums_wanted)
  else:
    sums = _sums_scan(qp, dp, ql, dl, n, ta, tr, kept, kvec, first_rel, init,
                      bits=bits, block=block, ndcg=ndcg, sums_wanted=sums_wanted)
  acc, acc_k, acc_c, hit_k, dcg_k = sums
  out = {"ap": jnp.where(num_rel > 0, acc / jnp.maximum(num_rel, 1), 0.0)}
  if nk:
    out["ap_k"] = jnp.where(hit_k > 0, acc_k / jnp.maximum(hit_k, 1), 0.0)
    out["ap_calc_k"] = jnp.where(first_rel > 0, acc_c / jnp.maximum(first_rel, 1), 0.0)
    out["hits_k"] = hit_k
    if ndcg:
      idcg = _ideal_dcg(tg, kvec, dp.shape[0])
      out["ndcg_k"] = jnp.where(idcg > 0, dcg_k / jnp.where(idcg > 0, idcg, 1.0), 0.0)
  return {key: v for key, v in out.items() if key in stats}
