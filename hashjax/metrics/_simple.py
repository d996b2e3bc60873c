"""Straightforward chunked retrieval metrics (stable Hamming ranking per query chunk).

Used until (or alongside) the optimised implementation; exact, memory bounded by
``query_chunk x num_database``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from hashjax import checks
from hashjax.data.core import to_multihot
from hashjax.metrics.packing import hamming_distance, pack_codes

__all__ = ["mean_average_precision", "ndcg_at_k", "precision_at_k"]


def _prepare(query_codes, db_codes, query_labels, db_labels):
  checks.check_codes("query_codes", query_codes)
  checks.check_codes("db_codes", db_codes, bits=query_codes.shape[1])
  ql, dl = np.asarray(query_labels), np.asarray(db_labels)
  if ql.ndim == 1 or (ql.ndim == 2 and ql.shape[1] == 1):
    c = int(max(ql.max(), dl.max())) + 1
    ql, dl = to_multihot(ql, c), to_multihot(dl, c)
  else:
    ql, dl = to_multihot(ql), to_multihot(dl)
  checks.check_labels("query_labels", ql, rows=query_codes.shape[0])
  checks.check_labels("db_labels", dl, rows=db_codes.shape[0])
  if ql.shape[1] != dl.shape[1]:
    raise ValueError(f"query labels have {ql.shape[1]} classes, database labels "
                     f"{dl.shape[1]}.")
  return (pack_codes(jnp.asarray(query_codes)), pack_codes(jnp.asarray(db_codes)),
          jnp.asarray(ql, jnp.float32), jnp.asarray(dl, jnp.float32))


def _sorted_rel(qp, dp, ql, dl):
  """Shared-label counts of the database in stable Hamming order: [nq, ndb]."""
  ndb = dp.shape[0]
  dist = hamming_distance(qp, dp)
  idx = jnp.broadcast_to(jnp.arange(ndb, dtype=jnp.int32), dist.shape)
  shared = ql @ dl.T
  _, _, shared = jax.lax.sort((dist, idx, shared), dimension=1, num_keys=2)
  return shared


@partial(jax.jit, static_argnames=("top_k",))
def _ap_chunk(qp, dp, ql, dl, top_k):
  rel = (_sorted_rel(qp, dp, ql, dl) > 0).astype(jnp.float32)
  if top_k is not None:
    rel = rel[:, :top_k]
  hits = jnp.cumsum(rel, axis=1)
  ranks = jnp.arange(1, rel.shape[1] + 1, dtype=jnp.float32)
  num = jnp.sum(rel * hits / ranks, axis=1)
  cnt = jnp.sum(rel, axis=1)
  return jnp.where(cnt > 0, num / jnp.maximum(cnt, 1), 0.0)


@partial(jax.jit, static_argnames=("k",))
def _p_chunk(qp, dp, ql, dl, k):
  rel = (_sorted_rel(qp, dp, ql, dl)[:, :k] > 0).astype(jnp.float32)
  return jnp.mean(rel, axis=1)


@partial(jax.jit, static_argnames=("k",))
def _ndcg_chunk(qp, dp, ql, dl, k):
  shared = _sorted_rel(qp, dp, ql, dl)
  disc = 1.0 / jnp.log2(jnp.arange(2, k + 2, dtype=jnp.float32))
  dcg = jnp.sum((2.0 ** shared[:, :k] - 1.0) * disc, axis=1)
  best = jax.lax.top_k(ql @ dl.T, k)[0]
  idcg = jnp.sum((2.0 ** best - 1.0) * disc, axis=1)
  return jnp.where(idcg > 0, dcg / jnp.where(idcg > 0, idcg, 1.0), 0.0)


def _over_chunks(fn, args, query_chunk, **kw):
  qp, dp, ql, dl = args
  n = qp.shape[0]
  outs = []
  for s in range(0, n, query_chunk):
    e = min(n, s + query_chunk)
    pad = query_chunk - (e - s) if n > query_chunk else 0
    q = jnp.pad(qp[s:e], ((0, pad), (0, 0)))
    l = jnp.pad(ql[s:e], ((0, pad), (0, 0)))
    outs.append(fn(q, dp, l, dl, **kw)[:e - s])
  return jnp.mean(jnp.concatenate(outs))


def _check_k(name, k, ndb):
  k = checks.check_positive_int(name, k)
  if k > ndb:
    raise ValueError(f"{name}={k} is larger than the database ({ndb} items).")
  return k


def mean_average_precision(query_codes, db_codes, query_labels, db_labels,
                           top_k=None, *, query_chunk: int = 256) -> jax.Array:
  """mAP@all (``top_k=None``) or mAP@top_k; ties by database index; AP 0 if no hit."""
  args = _prepare(query_codes, db_codes, query_labels, db_labels)
  if top_k is not None:
    top_k = _check_k("top_k", top_k, args[1].shape[0])
  return _over_chunks(_ap_chunk, args, query_chunk, top_k=top_k)


def precision_at_k(query_codes, db_codes, query_labels, db_labels, k, *,
                   query_chunk: int = 256) -> jax.Array:
  """Mean precision of the top-k ranked database items."""
  args = _prepare(query_codes, db_codes, query_labels, db_labels)
  k = _check_k("k", k, args[1].shape[0])
  return _over_chunks(_p_chunk, args, query_chunk, k=k)


def ndcg_at_k(query_codes, db_codes, query_labels, db_labels, k, *,
              query_chunk: int = 256) -> jax.Array:
  """NDCG@k, rel = shared labels, gain 2^rel - 1, discount log2(rank + 1)."""
  args = _prepare(query_codes, db_codes, query_labels, db_labels)
  k = _check_k("k", k, args[1].shape[0])
  return _over_chunks(_ndcg_chunk, args, query_chunk, k=k)
