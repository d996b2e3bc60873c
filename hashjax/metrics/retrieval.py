"""Retrieval metrics on {-1, +1} hash codes (docs/evaluation.md), exact and memory bounded.

Ranking: the database is ordered by Hamming distance to the query, equal
distances by database index (a stable sort), so every metric is deterministic
and equals a NumPy loop using ``np.argsort(dist, kind="stable")``. The NumPy
references of the DCMH/DCHMT/DCGH family call ``np.argsort`` (or ``torch.sort``)
without ``kind="stable"``: their tie order is arbitrary, so their numbers can
differ from these in the last digits whenever relevant and irrelevant items tie.

Relevance: a database item is relevant to a query when they share at least one
label. Conventions (all means are over *all* queries):

* AP of a query with no relevant item (in the whole database, or in the top k
  for AP@k) is 0, as in the references, which divide by the number of queries.
* mAP@k has two definitions, always named where it is reported:
  ``"calc_map_k"`` (the default; ``calc_map_k`` of DCMH / DCHMT / DCGH, which
  their papers report): the precision at each of the first ``min(k, R)``
  relevant items, *wherever they rank*, averaged over ``min(k, R)`` (``R`` =
  the query's relevant items in the whole database); ``"truncated"``: the
  precision at each relevant item inside the top k, averaged over the
  relevant items inside the top k. With ``k >= R`` calc_map_k equals AP@all.
* precision@k divides by ``k``; NDCG@k uses rel = number of shared labels, gain
  ``2^rel - 1``, discount ``log2(rank + 1)`` (rank from 1) and the ideal DCG of
  the whole database's rel sorted descending (QinLab-WFU/DNpH ``utils/NDCG.py``);
  NDCG is 0 when the ideal DCG is 0.
* within a Hamming radius r: precision = relevant / retrieved items with
  distance ``<= r``, 0 when nothing is retrieved (the usual convention for
  "precision within radius 2"); recall = relevant within r / all relevant, 0
  for a query without relevant items. Note the DCHMT ``pr_curve`` instead
  averages precision only over queries with non-zero precision.
* ``k`` (or ``top_k``) must satisfy ``1 <= k <= num_database``: larger values
  raise ``ValueError`` (callers clamp explicitly if they want to).

Codes are ``[n, b]`` arrays in {-1, +1}; labels are multi-hot ``[n, C]`` or class
ids ``[n]`` / ``[n, 1]``. The public metric functions (:func:`mean_average_precision`,
:func:`precision_at_k`, :func:`ndcg_at_k`, :func:`precision_recall_curve`,
:func:`precision_within_radius`, :func:`evaluate_retrieval`, :func:`topk_hamming`)
are **host-level**: they validate concrete values (so they raise under
``jax.jit``), pack the codes into uint32 words, loop over query chunks in Python
and call jitted kernels (:mod:`hashjax.metrics._ranking`, :mod:`hashjax.topk`)
that stream the database, so memory is ``O(query_chunk * (chunk * (1 + b / block)
+ (n / chunk) * b))`` (see :mod:`hashjax.metrics._ranking`) plus, for the rank
pass, at most ``KEEP_PAIRS_BYTES`` (64 MB) of kept per-pair values (1 byte per
query-item pair of a query chunk with ``rank_method="scan"``, 4 with
``"blocks"``; used while they fit).
Per-query values are computed in float32 and averaged in float64.

Inside a jitted step use the **jittable cores** for fixed shapes:
:func:`retrieval_core` (mAP@all, mAP@k, P@k) and :func:`topk_hamming_core`.
They check shapes at trace time only (not values: codes must be in {-1, +1},
labels multi-hot) and average in float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hashjax import checks, topk
from hashjax.codes import pack_codes, pack_host
from hashjax.data.core import to_multihot
from hashjax.metrics import _ranking

__all__ = [
    "evaluate_retrieval",
    "mean_average_precision",
    "ndcg_at_k",
    "precision_at_k",
    "precision_recall_curve",
    "precision_within_radius",
    "retrieval_core",
    "topk_hamming",
    "topk_hamming_core",
]

DEFAULT_QUERY_CHUNK = 256
DEFAULT_BLOCK = 32
DEFAULT_CHUNK = 4096
# Pass 1 keeps each pair's distance and relevance (1 byte) for pass 2 while a
# query chunk's pairs fit in this many bytes (and b <= 126, and no NDCG).
KEEP_PAIRS_BYTES = 1 << 26
MAP_K_DEFINITIONS = ("calc_map_k", "truncated")
DEFAULT_MAP_K_DEFINITION = "calc_map_k"
_AP_K_KEY = {"calc_map_k": "ap_calc_k", "truncated": "ap_k"}


# ----------------------------------------------------------------------------------
# Validation and preparation (host).
# ----------------------------------------------------------------------------------
def _codes(query_codes: Any, db_codes: Any) -> tuple[np.ndarray, np.ndarray, int]:
  q, d = np.asarray(query_codes), np.asarray(db_codes)
  checks.check_codes("query_codes", q)
  checks.check_codes("db_codes", d)
  if q.shape[1] != d.shape[1]:
    raise ValueError(f"query_codes have {q.shape[1]} bits but db_codes have "
                     f"{d.shape[1]}; both must use the same code length.")
  return q, d, int(q.shape[1])


def _is_ids(x: np.ndarray) -> bool:
  return x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)


def _labels(query_labels: Any, db_labels: Any, nq: int, ndb: int,
            num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
  """Multi-hot float32 ``[nq, C]`` and ``[ndb, C]`` from ids or multi-hot."""
  ql, dl = np.asarray(query_labels), np.asarray(db_labels)
  for name, x, rows in (("query_labels", ql, nq), ("db_labels", dl, ndb)):
    if x.ndim not in (1, 2):
      raise ValueError(f"{name} must be [n], [n, 1] or [n, C], got shape {x.shape}.")
    if x.shape[0] != rows:
      raise ValueError(f"{name} has {x.shape[0]} rows but the codes have {rows}.")
  if num_classes is not None:
    num_classes = checks.check_positive_int("num_classes", num_classes)
  c = num_classes
  for x in (ql, dl):
    if not _is_ids(x):
      if c is not None and x.shape[1] != c:
        raise ValueError(f"labels have {x.shape[1]} classes, expected {c} (from "
                         "num_classes or the other label array).")
      c = x.shape[1]
  if c is None:  # both are class ids
    both = np.concatenate([ql.reshape(-1), dl.reshape(-1)])
    if both.dtype.kind not in "iub" and not np.all(np.isfinite(both)):
      raise ValueError("class-id labels contain NaN or inf.")
    c = int(np.max(both)) + 1 if both.size else 1
  out = []
  for name, x in (("query_labels", ql), ("db_labels", dl)):
    try:
      out.append(to_multihot(x, c if _is_ids(x) else None).astype(np.float32))
    except ValueError as e:
      raise ValueError(f"{name}: {e}") from None
  return out[0], out[1]


class _Prepared:
  """Packed codes and float labels on device, database padded to whole chunks."""

  def __init__(self, query_codes, db_codes, query_labels, db_labels, *,
               num_classes=None, query_chunk=DEFAULT_QUERY_CHUNK,
               block=DEFAULT_BLOCK, chunk=DEFAULT_CHUNK, rank_method=None):
    q, d, self.bits = _codes(query_codes, db_codes)
    self.rank_method = _rank_method(rank_method)
    ql, dl = _labels(query_labels, db_labels, q.shape[0], d.shape[0], num_classes)
    self.query_chunk = checks.check_positive_int("query_chunk", query_chunk)
    self.block = checks.check_positive_int("block", block)
    if self.block > 1024:
      raise ValueError(f"block must be at most 1024, got {self.block}.")
    chunk = min(checks.check_positive_int("chunk", chunk), 1 << 14)
    self.nq, self.n = q.shape[0], d.shape[0]
    # Pass-1 chunk: a multiple of the pass-2 block, no larger than the database
    # and at most 2^14 rows (the kernel packs two counts per int32).
    blocks_n = -(-self.n // self.block)
    self.chunk = self.block * max(1, min(chunk // self.block, blocks_n))
    pad = -self.n % self.chunk
    self.dp = jnp.pad(jnp.asarray(pack_host(d)), ((0, pad), (0, 0)))
    self.dl = jnp.pad(jnp.asarray(dl), ((0, pad), (0, 0)))
    self.qp = pack_host(q)
    self.ql = ql

  def query_batches(self):
    """Yields ``(start, n_valid, packed [s, w], labels [s, C])``, s fixed."""
    size = min(self.query_chunk, 1 << max(0, (self.nq - 1).bit_length()))
    for s in range(0, self.nq, size):
      qp, ql = self.qp[s:s + size], self.ql[s:s + size]
      m = qp.shape[0]
      if m < size:
        qp = np.pad(qp, ((0, size - m), (0, 0)))
        ql = np.pad(ql, ((0, size - m), (0, 0)))
      yield s, m, jnp.asarray(qp), jnp.asarray(ql)


def _check_definition(definition: Any) -> str:
  if definition not in MAP_K_DEFINITIONS:
    raise ValueError(f"definition must be one of {MAP_K_DEFINITIONS}, got "
                     f"{definition!r}.")
  return definition


def _check_k(name: str, k: Any, n: int) -> int:
  k = checks.check_positive_int(name, k)
  if k > n:
    raise ValueError(f"{name}={k} is larger than the database ({n} items); use "
                     f"{name} <= {n}.")
  return k


def _keep_pairs(qc: int, m: int, bits: int, chunk: int, block: int, method: str,
                ndcg: bool) -> bool:
  """Whether pass 1 keeps per-pair values for pass 2 (1 byte a pair for "scan",
  4 for "blocks") within ``KEEP_PAIRS_BYTES``."""
  size = 1 if method == "scan" else 4
  return (not ndcg and _ranking.can_keep(bits, chunk, block, method)
          and size * qc * m <= KEEP_PAIRS_BYTES)


def _rank_method(method: Any) -> str:
  if method is None:
    return _ranking.default_method()
  if method not in _ranking.METHODS:
    raise ValueError(f"rank_method must be one of {_ranking.METHODS} or None, got "
                     f"{method!r}.")
  return method


def _per_query(prep: _Prepared, ks: tuple[int, ...], *, ranks: bool, ndcg: bool,
               stats: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
  """Per-query statistics (NumPy) over all query chunks (``stats``: those of the
  rank pass to compute, :func:`hashjax.metrics._ranking.ranked_stats`)."""
  n = jnp.int32(prep.n)
  parts: dict[str, list[np.ndarray]] = {}
  for _, m, qp, ql in prep.query_batches():
    keep = ranks and _keep_pairs(qp.shape[0], prep.dp.shape[0], prep.bits,
                                 prep.chunk, prep.block, prep.rank_method, ndcg)
    ta, tr, tg, per_chunk, kept = _ranking.histograms(
        qp, prep.dp, ql, prep.dl, n, bits=prep.bits, chunk=prep.chunk, gains=ndcg,
        keep=keep, block=prep.block, method=prep.rank_method)
    res = {"hist_all": ta[:, :prep.bits + 1], "hist_rel": tr[:, :prep.bits + 1]}
    if ranks:
      res.update(_ranking.ranked_stats(
          qp, prep.dp, ql, prep.dl, n, ta, tr, tg, per_chunk,
          jnp.asarray(ks, jnp.int32).reshape(-1), kept, bits=prep.bits,
          chunk=prep.chunk, block=prep.block, ndcg=ndcg, method=prep.rank_method,
          stats=stats))
    for key, v in res.items():
      parts.setdefault(key, []).append(np.asarray(v)[:m])
  return {key: np.concatenate(v) for key, v in parts.items()}


def _radius_curves(hist_all: np.ndarray, hist_rel: np.ndarray):
  """Per-query precision and recall ``[nq, b + 1]`` within radii 0..b."""
  ret = np.cumsum(hist_all, axis=1, dtype=np.float64)
  rel = np.cumsum(hist_rel, axis=1, dtype=np.float64)
  total = rel[:, -1:]
  prec = np.where(ret > 0, rel / np.maximum(ret, 1), 0.0)
  rec = np.where(total > 0, rel / np.maximum(total, 1), 0.0)
  return prec, rec


def _scalar(x: np.ndarray) -> jax.Array:
  return jnp.asarray(np.mean(x, dtype=np.float64), jnp.float32)


# ----------------------------------------------------------------------------------
# Public metrics.
# ----------------------------------------------------------------------------------
def mean_average_precision(query_codes, db_codes, query_labels, db_labels,
                           top_k=None, definition=DEFAULT_MAP_K_DEFINITION,
                           **opts) -> jax.Array:
  """mAP@all (``top_k=None``) or mAP@top_k under the stable Hamming ranking.

  Host-level (see the module docstring); :func:`retrieval_core` is the jittable
  twin.

  Args:
    query_codes: ``[nq, b]`` codes in {-1, +1}.
    db_codes: ``[n, b]`` codes in {-1, +1}.
    query_labels: ``[nq, C]`` multi-hot or ``[nq]`` class ids.
    db_labels: ``[n, C]`` multi-hot or ``[n]`` class ids.
    top_k: ``None`` (whole ranking) or ``1 <= top_k <= n``.
    definition: mAP@k definition, ``"calc_map_k"`` (default, as DCMH / DCHMT /
      DCGH report it) or ``"truncated"`` (see the module docstring); unused
      when ``top_k`` is None.
    **opts: keyword-only options: ``num_classes`` (for class ids: C, ids must
      lie in ``[0, C)``; default ``max id + 1`` or the other array's C),
      ``query_chunk`` (queries per jitted call, default 256), ``block``
      (database rows per block of the rank pass, default 32; above 32 the
      in-block counts compare pairs: memory ``query_chunk * block^2``),
      ``chunk`` (rows per pass step, default 4096), ``rank_method``
      (``"scan"`` or ``"blocks"``, see :mod:`hashjax.metrics._ranking`;
      default: ``"scan"`` on CPU, ``"blocks"`` on accelerators; same values).

  Returns:
    float32 scalar; a query without relevant items (in the top k, for
    "truncated") counts as 0.
  """
  definition = _check_definition(definition)
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  if top_k is None:
    return _scalar(_per_query(prep, (), ranks=True, ndcg=False, stats=("ap",))["ap"])
  k = _check_k("top_k", top_k, prep.n)
  key = _AP_K_KEY[definition]
  stats = _per_query(prep, (k,), ranks=True, ndcg=False, stats=(key,))
  return _scalar(stats[key][:, 0])


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k, **opts
                   ) -> jax.Array:
  """Mean over queries of (relevant items among the first k ranked) / k.

  Host-level; :func:`retrieval_core` is the jittable twin.

  Args: as :func:`mean_average_precision`, with ``1 <= k <= n`` instead of top_k.

  Returns:
    float32 scalar.
  """
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  k = _check_k("k", k, prep.n)
  stats = _per_query(prep, (k,), ranks=True, ndcg=False, stats=("hits_k",))
  return _scalar(stats["hits_k"][:, 0] / k)


def ndcg_at_k(query_codes, db_codes, query_labels, db_labels, k, **opts) -> jax.Array:
  """Mean NDCG@k: rel = shared labels, gain ``2^rel - 1``, discount ``log2(rank+1)``.

  Args: as :func:`precision_at_k`.

  Returns:
    float32 scalar (a query whose ideal DCG is 0 counts as 0).
  """
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  k = _check_k("k", k, prep.n)
  return _scalar(_per_query(prep, (k,), ranks=True, ndcg=True,
                            stats=("ndcg_k",))["ndcg_k"][:, 0])


def precision_recall_curve(query_codes, db_codes, query_labels, db_labels, **opts
                           ) -> tuple[jax.Array, jax.Array]:
  """Precision and recall of the items within Hamming radius r, r = 0..b.

  Args: as :func:`mean_average_precision` (no ``top_k``).

  Returns:
    ``(precision [b + 1], recall [b + 1])`` float32, each the mean over all
    queries (precision 0 for a query retrieving nothing within r, recall 0 for
    a query without relevant items).
  """
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  stats = _per_query(prep, (), ranks=False, ndcg=False)
  prec, rec = _radius_curves(stats["hist_all"], stats["hist_rel"])
  return (jnp.asarray(prec.mean(0), jnp.float32), jnp.asarray(rec.mean(0), jnp.float32))


def _check_radius(radius: Any, bits: int) -> int:
  if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
    raise ValueError(f"radius must be an integer >= 0, got {radius!r}.")
  return min(int(radius), bits)


def precision_within_radius(query_codes, db_codes, query_labels, db_labels,
                            radius=2, **opts) -> jax.Array:
  """Mean precision of the items within Hamming distance ``radius`` (default 2).

  Args: as :func:`mean_average_precision`; ``radius >= 0`` (values above b act
    as b).

  Returns:
    float32 scalar; a query retrieving nothing within the radius counts as 0.
  """
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  r = _check_radius(radius, prep.bits)
  stats = _per_query(prep, (), ranks=False, ndcg=False)
  return _scalar(_radius_curves(stats["hist_all"], stats["hist_rel"])[0][:, r])


def evaluate_retrieval(query_codes, db_codes, query_labels, db_labels, *,
                       top_r: int | None = None, ks=(), radius: int = 2,
                       map_k_definition: str = DEFAULT_MAP_K_DEFINITION,
                       **opts) -> dict[str, Any]:
  """Every metric of docs/evaluation.md from one histogram pass and one rank pass.

  Host-level (see the module docstring).

  Args:
    query_codes, db_codes, query_labels, db_labels: as
      :func:`mean_average_precision`.
    top_r: R for ``map@R``, ``p@R`` and ``ndcg@R`` (``<= n``); None skips them.
    ks: extra cut-offs for ``p@k`` (each ``<= n``).
    radius: Hamming radius of ``p@r<radius>`` (precision within the radius).
    map_k_definition: definition of ``map@R``: ``"calc_map_k"`` (default) or
      ``"truncated"`` (see the module docstring).
    **opts: keyword-only ``num_classes``, ``query_chunk``, ``block``, ``chunk``,
      ``rank_method``.

  Returns:
    ``{"map", "map@R", "map@k_definition", "p@R", "ndcg@R", "p@k"..., "p@r2",
    "pr_precision", "pr_recall"}``: Python floats, the definition's name (a
    string, only with ``top_r``), and lists of ``b + 1`` floats for the
    precision-recall curve over radii 0..b.
  """
  map_k_definition = _check_definition(map_k_definition)
  prep = _Prepared(query_codes, db_codes, query_labels, db_labels, **opts)
  r = _check_radius(radius, prep.bits)
  cut = []
  if top_r is not None:
    cut.append(_check_k("top_r", top_r, prep.n))
  cut += [_check_k("k", k, prep.n) for k in ks]
  cut = tuple(sorted(set(cut)))
  stats = _per_query(prep, cut, ranks=True, ndcg=top_r is not None)
  mean = lambda x: float(np.mean(x, dtype=np.float64))  # noqa: E731
  out: dict[str, Any] = {"map": mean(stats["ap"])}
  if top_r is not None:
    i = cut.index(top_r)
    out[f"map@{top_r}"] = mean(stats[_AP_K_KEY[map_k_definition]][:, i])
    out["map@k_definition"] = map_k_definition
    out[f"p@{top_r}"] = mean(stats["hits_k"][:, i] / top_r)
    out[f"ndcg@{top_r}"] = mean(stats["ndcg_k"][:, i])
  for k in ks:
    out[f"p@{k}"] = mean(stats["hits_k"][:, cut.index(k)] / k)
  prec, rec = _radius_curves(stats["hist_all"], stats["hist_rel"])
  out[f"p@r{radius}"] = mean(prec[:, r])
  out["pr_precision"] = prec.mean(0).tolist()
  out["pr_recall"] = rec.mean(0).tolist()
  return out


def topk_hamming(query_codes, db_codes, k, *, chunk_size: int = 32768,
                 query_chunk: int = 1024, method: str | None = None
                 ) -> tuple[jax.Array, jax.Array]:
  """Exact k nearest database items by Hamming distance, ties by database index.

  Host-level; :func:`topk_hamming_core` is the jittable twin. Streams the
  database (:func:`hashjax.topk.topk_kernel`, the kernel chosen by
  :func:`hashjax.topk.default_method` from k, b and n), so memory is
  ``O(query_chunk * (chunk_size + k))``. The codes are checked and packed on every
  call; to search one database many times, pack it once in a
  :class:`hashjax.index.HammingIndex`.

  Args:
    query_codes: ``[nq, b]`` codes in {-1, +1}.
    db_codes: ``[n, b]`` codes in {-1, +1}.
    k: ``1 <= k <= n``.
    chunk_size: database rows per scan step.
    query_chunk: queries per jitted call.
    method: "group", "count", "group_count" or None
      (:func:`hashjax.topk.default_method`); every method gives the same result.

  Returns:
    ``(distances, indices)``, int32 ``[nq, k]`` each: ascending distances and the
    database rows, equal distances in increasing row order.
  """
  q, d, bits = _codes(query_codes, db_codes)
  k = _check_k("k", k, d.shape[0])
  checks.check_positive_int("chunk_size", chunk_size)
  checks.check_positive_int("query_chunk", query_chunk)
  if method is not None and method not in topk.METHODS:
    raise ValueError(f"method must be one of {topk.METHODS} or None, got {method!r}.")
  # On the host: about 2.5x faster than packing on the CPU device at 1M x 128.
  dp = jnp.asarray(pack_host(d))
  qp = pack_host(q)
  ids = jnp.arange(d.shape[0], dtype=jnp.int32)
  count = jnp.int32(d.shape[0])
  size = min(query_chunk, 1 << max(0, (q.shape[0] - 1).bit_length()))
  dists, idx = [], []
  for s in range(0, q.shape[0], size):
    batch = qp[s:s + size]
    m = batch.shape[0]
    batch = np.pad(batch, ((0, size - m), (0, 0)))
    di, ii = topk.topk_kernel(dp, ids, jnp.asarray(batch), count, k=k, bits=bits,
                         chunk_size=chunk_size, mesh=None, method=method)
    dists.append(di[:m])
    idx.append(ii[:m])
  return jnp.concatenate(dists), jnp.concatenate(idx)


# ----------------------------------------------------------------------------------
# Jittable cores (fixed shapes, usable inside a jitted evaluation step).
# ----------------------------------------------------------------------------------
def _static_codes(query_codes, db_codes) -> int:
  if query_codes.ndim != 2 or db_codes.ndim != 2:
    raise ValueError(f"codes must be 2-D [n, b], got shapes {query_codes.shape} and "
                     f"{db_codes.shape}.")
  if query_codes.shape[1] != db_codes.shape[1]:
    raise ValueError(f"query_codes have {query_codes.shape[1]} bits but db_codes "
                     f"have {db_codes.shape[1]}.")
  return int(query_codes.shape[1])


def retrieval_core(query_codes: jax.Array, db_codes: jax.Array,
                   query_labels: jax.Array, db_labels: jax.Array, *, ks=(),
                   map_k_definition: str = DEFAULT_MAP_K_DEFINITION,
                   query_chunk: int = DEFAULT_QUERY_CHUNK, block: int = DEFAULT_BLOCK,
                   chunk: int = DEFAULT_CHUNK, rank_method: str | None = None
                   ) -> dict[str, jax.Array]:
  """Jittable mAP@all, mAP@k and P@k for fixed shapes (same kernels and values).

  Traceable end to end: pack, then ``lax.map`` over query chunks of the two
  kernel passes. Shapes and the static options are checked at trace time;
  values are not (use the host-level functions for validated input).

  Args:
    query_codes: ``[nq, b]`` in {-1, +1} (any numeric dtype, may be traced).
    db_codes: ``[n, b]`` in {-1, +1}.
    query_labels: ``[nq, C]`` multi-hot (0/1).
    db_labels: ``[n, C]`` multi-hot.
    ks: static cut-offs, each ``1 <= k <= n``.
    map_k_definition: ``"calc_map_k"`` (default) or ``"truncated"``.
    query_chunk, block, chunk, rank_method: as in :func:`mean_average_precision`.

  Returns:
    dict of float32 scalars (means over queries, in float32): ``"map"`` and,
    per k, ``"map@k"`` (in ``map_k_definition``) and ``"p@k"``.
  """
  bits = _static_codes(query_codes, db_codes)
  definition = _check_definition(map_k_definition)
  nq, n = query_codes.shape[0], db_codes.shape[0]
  if query_labels.ndim != 2 or db_labels.shape != (n, query_labels.shape[1]) or (
      query_labels.shape[0] != nq):
    raise ValueError(f"labels must be multi-hot [nq, C] and [n, C] matching the codes, "
                     f"got {query_labels.shape} and {db_labels.shape}.")
  ks = tuple(_check_k("k", k, n) for k in ks)
  method = _rank_method(rank_method)
  block = checks.check_positive_int("block", block)
  size = min(checks.check_positive_int("query_chunk", query_chunk), nq)
  ch = block * max(1, min(checks.check_positive_int("chunk", chunk) // block,
                          -(-n // block), (1 << 14) // block))
  pad = -n % ch
  dp = jnp.pad(pack_codes(db_codes), ((0, pad), (0, 0)))
  dl = jnp.pad(db_labels.astype(jnp.float32), ((0, pad), (0, 0)))
  qpad = -nq % size
  qp = jnp.pad(pack_codes(query_codes), ((0, qpad), (0, 0)))
  ql = jnp.pad(query_labels.astype(jnp.float32), ((0, qpad), (0, 0)))
  qp = qp.reshape(-1, size, qp.shape[1])
  ql = ql.reshape(-1, size, ql.shape[1])
  count = jnp.int32(n)
  kvec = jnp.asarray(ks, jnp.int32).reshape(-1)
  wanted = ("ap",) + ((_AP_K_KEY[definition], "hits_k") if ks else ())

  def one(args):
    q, l = args
    keep = _keep_pairs(size, dp.shape[0], bits, ch, block, method, False)
    ta, tr, tg, per_chunk, kept = _ranking.histograms(
        q, dp, l, dl, count, bits=bits, chunk=ch, gains=False, keep=keep, block=block,
        method=method)
    return _ranking.ranked_stats(q, dp, l, dl, count, ta, tr, tg, per_chunk, kvec,
                                 kept, bits=bits, chunk=ch, block=block, ndcg=False,
                                 method=method, stats=wanted)

  stats = jax.tree.map(lambda v: v.reshape((-1,) + v.shape[2:])[:nq],
                       lax.map(one, (qp, ql)))
  out = {"map": jnp.mean(stats["ap"])}
  for i, k in enumerate(ks):
    out[f"map@{k}"] = jnp.mean(stats[_AP_K_KEY[definition]][:, i])
    out[f"p@{k}"] = jnp.mean(stats["hits_k"][:, i].astype(jnp.float32) / k)
  return out


def topk_hamming_core(query_codes: jax.Array, db_codes: jax.Array, k: int, *,
                      chunk_size: int = 32768, method: str | None = None
                      ) -> tuple[jax.Array, jax.Array]:
  """Jittable twin of :func:`topk_hamming` (all queries in one kernel call).

  Args:
    query_codes: ``[nq, b]`` in {-1, +1} (may be traced).
    db_codes: ``[n, b]`` in {-1, +1}.
    k: static, ``1 <= k <= n``.
    chunk_size: database rows per scan step.
    method: "group", "count", "group_count" or None
      (:func:`hashjax.topk.default_method`).

  Returns:
    ``(distances, indices)`` int32 ``[nq, k]``, ascending, ties by row.
  """
  bits = _static_codes(query_codes, db_codes)
  n = db_codes.shape[0]
  k = _check_k("k", k, n)
  return topk.topk_kernel(pack_codes(db_codes), jnp.arange(n, dtype=jnp.int32),
                          pack_codes(query_codes), jnp.int32(n), k=k, bits=bits,
                          chunk_size=checks.check_positive_int("chunk_size",
                                                               chunk_size),
                          mesh=None, method=method)
