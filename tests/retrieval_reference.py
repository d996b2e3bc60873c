"""Shared NumPy references for retrieval tests: one query at a time, stable sorts.

Written from the definitions (docs / the DCMH-DCHMT-DCGH ``calc_map_k``), not from
hashjax: per query the database is ordered by Hamming distance with
``np.argsort(kind="stable")`` (ties by database index), relevance is "shares a
label". Import as ``from retrieval_reference import ...`` (tests/conftest.py puts
this folder on ``sys.path``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "hamming",
    "multihot",
    "per_query",
    "retrieval_metrics",
    "stable_topk",
]


def hamming(q: np.ndarray, d: np.ndarray) -> np.ndarray:
  """All-pairs Hamming distances ``[nq, n]`` of {-1, +1} codes (entry compare)."""
  q, d = np.asarray(q), np.asarray(d)
  return np.stack([np.count_nonzero(q[i][None, :] != d, axis=1) for i in range(len(q))])


def stable_topk(q: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Per-query top-k ``(distances, rows)`` ``[nq, k]``: a stable argsort loop."""
  dist = hamming(q, d)
  rows = np.stack([np.argsort(row, kind="stable")[:k] for row in dist])
  return np.take_along_axis(dist, rows, axis=1), rows


def multihot(labels, c: int) -> np.ndarray:
  """Class ids ``[n]`` -> float64 multi-hot ``[n, c]``; multi-hot passes through."""
  labels = np.asarray(labels)
  if labels.ndim == 1:
    out = np.zeros((labels.size, c))
    out[np.arange(labels.size), labels] = 1
    return out
  return labels.astype(np.float64)


def per_query(q, d, ql, dl, ks=(), radius=2) -> dict[str, np.ndarray]:
  """Per-query metrics (float64); labels multi-hot ``[n, C]``.

  Keys: ``ap`` (AP over the whole ranking), per k ``ap@k`` (truncated: precision
  at the relevant items of the top k, divided by their number),
  ``ap_calc@k`` (``calc_map_k``: precision at the first ``min(k, #relevant)``
  relevant items wherever they rank, divided by that number), ``p@k``,
  ``ndcg@k`` (gain ``2^shared - 1``, discount ``log2(rank + 1)``); ``pr_p``,
  ``pr_r`` ``[b + 1]`` (precision / recall within radius r) and ``rad``
  (precision within ``radius``). Queries without relevant items score 0.
  """
  q, d = np.asarray(q, np.float64), np.asarray(d, np.float64)
  ql, dl = np.asarray(ql, np.float64), np.asarray(dl, np.float64)
  nq, bits = q.shape
  n = d.shape[0]
  out = {"ap": [], "pr_p": [], "pr_r": [], "rad": []}
  for k in ks:
    for key in ("ap", "ap_calc", "p", "ndcg"):
      out[f"{key}@{k}"] = []
  for i in range(nq):
    dist = np.sum(q[i][None, :] != d, axis=1)
    order = np.argsort(dist, kind="stable")
    shared_u = dl @ ql[i]
    shared = shared_u[order]
    rel = shared > 0
    hits = np.cumsum(rel)
    ranks = np.arange(1, n + 1)
    num_rel = int(rel.sum())
    out["ap"].append((hits / ranks)[rel].sum() / num_rel if num_rel else 0.0)
    rel_ranks = np.flatnonzero(rel) + 1  # ranks of the relevant items, ascending
    for k in ks:
      rk = rel[:k]
      out[f"ap@{k}"].append((hits[:k] / ranks[:k])[rk].sum() / rk.sum()
                            if rk.sum() else 0.0)
      total = min(k, num_rel)
      out[f"ap_calc@{k}"].append(
          np.mean(np.arange(1, total + 1) / rel_ranks[:total]) if total else 0.0)
      out[f"p@{k}"].append(rk.sum() / k)
      disc = 1.0 / np.log2(np.arange(2, k + 2))
      dcg = np.sum((2.0 ** shared[:k] - 1) * disc)
      ideal = np.sort(shared_u)[::-1][:k]
      idcg = np.sum((2.0 ** ideal - 1) * disc)
      out[f"ndcg@{k}"].append(dcg / idcg if idcg > 0 else 0.0)
    p_r, r_r = [], []
    for r in range(bits + 1):
      inside = dist <= r
      got = np.sum(inside & (shared_u > 0))
      p_r.append(got / inside.sum() if inside.sum() else 0.0)
      r_r.append(got / num_rel if num_rel else 0.0)
    out["pr_p"].append(p_r)
    out["pr_r"].append(r_r)
    out["rad"].append(p_r[min(radius, bits)])
  return {key: np.asarray(v) for key, v in out.items()}


def retrieval_metrics(q, d, ql, dl, ks=(), radius=2) -> dict[str, np.ndarray]:
  """Means over all queries of :func:`per_query` (curves stay ``[b + 1]``)."""
  return {key: np.mean(v, axis=0) for key, v in per_query(q, d, ql, dl, ks,
                                                          radius).items()}


def mean_ap(q, d, ql, dl) -> float:
  """mAP@all alone: Hamming ranking, ties by database index (stable), relevant = a
  shared label. Labels are multi-hot ``[n, C]`` or class ids ``[n]``."""
  q, d = np.asarray(q, np.int64), np.asarray(d, np.int64)
  ql, dl = np.asarray(ql), np.asarray(dl)
  if ql.ndim == 1:
    c = int(max(ql.max(), dl.max())) + 1
    ql, dl = multihot(ql, c), multihot(dl, c)
  ql, dl = ql.astype(np.float64), dl.astype(np.float64)
  aps = []
  for i in range(q.shape[0]):
    order = np.argsort(np.sum(q[i][None, :] != d, axis=1), kind="stable")
    ranks = np.flatnonzero(dl[order] @ ql[i] > 0) + 1
    aps.append(np.mean(np.arange(1, ranks.size + 1) / ranks) if ranks.size else 0.0)
  return float(np.mean(aps))
