"""One path from config to result table for the shallow (non-deep) methods.

``train_and_evaluate(config, workdir)`` loads a data set, deals the semi-paired split
of SPEC §1, fits RREH or a baseline, encodes query and database items of every
modality, and evaluates every ordered modality pair (a query of modality a retrieves
database items encoded from modality b). Results go to ``workdir/results.json``,
the fitted model to ``workdir/model.npz`` (see :mod:`hashjax.encode`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from hashjax import checks
from hashjax.data.core import MultiModalData

__all__ = [
    "SHALLOW_METHODS",
    "evaluate_cross_modal",
    "fit_method",
    "format_table",
    "train_and_evaluate",
]

SHALLOW_METHODS = ("rreh", "cca_itq", "cvh", "cmfh")

EncodeFn = Callable[[np.ndarray, int], Any]


def _as_dict(cfg: Any) -> dict[str, Any]:
  if cfg is None:
    return {}
  if hasattr(cfg, "to_dict"):
    return cfg.to_dict()
  return dict(cfg)


def evaluate_cross_modal(
    query: MultiModalData,
    database: MultiModalData,
    encode_fn: EncodeFn,
    *,
    top_r: int | None = None,
    ks: Sequence[int] = (),
) -> dict[str, dict[str, float]]:
  """Evaluates every ordered modality pair ``a -> b`` (a != b).

  Args:
    query: query items; ``query.views[a]`` is ``[nq, d_a]``.
    database: database items, same views.
    encode_fn: ``encode_fn(x [n, d_m], m) -> codes [n, bits]`` in {-1, +1}.
    top_r: R for mAP@R, precision@R and NDCG@R (None: only mAP@all).
    ks: extra cut-offs for precision@k.

  Returns:
    ``{"image->text": {"map": ..., "map@R": ..., "p@R", "ndcg@R", "p@r2"}, ...}``
    of Python floats (one :func:`hashjax.metrics.evaluate_retrieval` pass each).
  """
  from hashjax import metrics  # pylint: disable=g-import-not-at-top

  if query.view_names != database.view_names:
    raise ValueError(
        f"query views {query.view_names} differ from database views "
        f"{database.view_names}.")
  m = query.num_modalities
  q_codes = [np.asarray(encode_fn(query.views[a], a)) for a in range(m)]
  db_codes = [np.asarray(encode_fn(database.views[b], b)) for b in range(m)]
  out: dict[str, dict[str, float]] = {}
  for a in range(m):
    for b in range(m):
      if a == b:
        continue
      r = None if top_r is None else min(int(top_r), database.num_items)
      kk = tuple(min(int(k), database.num_items) for k in ks)
      ev = metrics.evaluate_retrieval(q_codes[a], db_codes[b], query.labels,
                                      database.labels, top_r=r, ks=kk)
      res = {key: v for key, v in ev.items() if key not in ("pr_precision", "pr_recall")}
      out[f"{query.view_names[a]}->{query.view_names[b]}"] = res
  return out


def fit_method(
    method: str,
    paired_views: Sequence[np.ndarray],
    unpaired_views: Sequence[np.ndarray],
    config: Any,
    rng: jax.Array,
) -> tuple[Any, EncodeFn]:
  """Fits ``method`` on a semi-paired training set.

  RREH uses paired and unpaired items. Baselines need correspondences, so they are
  fitted on the paired items only (``config.train_on == "paired"``, the usual
  semi-paired comparison); pass ``paired_ratio=1.0`` to train them on all pairs.

  Args:
    method: one of :data:`SHALLOW_METHODS`.
    paired_views: M arrays ``[n_p, d_m]``, row i the same item in every modality.
    unpaired_views: M arrays ``[n_u_m, d_m]`` (may have 0 rows).
    config: the experiment config (``bits`` and the method's sub-config).
    rng: PRNG key.

  Returns:
    ``(model, encode_fn)``.
  """
  bits = checks.check_bits(config.bits)
  if method == "rreh":
    from hashjax import rreh  # pylint: disable=g-import-not-at-top

    cfg = dict(_as_dict(config.rreh), bits=bits)
    model = rreh.fit(list(paired_views), list(unpaired_views), cfg, rng)
    return model, lambda x, m: rreh.encode(model, x, m)
  if method in SHALLOW_METHODS:
    from hashjax import baselines  # pylint: disable=g-import-not-at-top

    impl = baselines.get_baseline(method)
    hyper = _as_dict(config.get("baseline", None))
    model = impl.fit(list(paired_views), bits=bits, rng=rng, **hyper)
    return model, lambda x, m: impl.encode(model, x, m)
  raise ValueError(f"unknown method {method!r}; shallow methods: {SHALLOW_METHODS}.")


def format_table(results: Mapping[str, Mapping[str, float]], title: str = "") -> str:
  """Markdown table: one row per retrieval direction, one column per metric."""
  cols = sorted({c for r in results.values() for c in r},
                key=lambda c: (c != "map", c))
  lines = [title] if title else []
  lines.append("| direction | " + " | ".join(cols) + " |")
  lines.append("|---" * (len(cols) + 1) + "|")
  for d, r in results.items():
    lines.append(f"| {d} | " + " | ".join(
        (f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])) if c in r else ""
        for c in cols) + " |")
  return "\n".join(lines)


def train_and_evaluate(config: Any, workdir: str | None) -> dict[str, Any]:
  """Runs one shallow-method experiment described by ``config``.

  Args:
    config: ConfigDict with ``method``, ``seed``, ``bits``, ``data`` (see
      :func:`hashjax.data.get_retrieval_split`), ``semi_paired`` (paired_ratio, mode,
      seed), the method's sub-config (``rreh`` or ``baseline``) and ``eval``
      (top_r, ks).
    workdir: where ``config.json``, ``results.json`` and ``model.npz`` go (None: no
      files).

  Returns:
    dict with ``results`` (per direction metrics), sizes and timings.
  """
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top
  from hashjax import serialization  # pylint: disable=g-import-not-at-top

  method = config.method
  if method not in SHALLOW_METHODS:
    raise ValueError(f"unknown method {method!r}; shallow methods: {SHALLOW_METHODS}.")
  split = hdata.get_retrieval_split(config.data)
  train = split.train
  sp_cfg = config.semi_paired
  sp = hdata.semi_paired_split(
      train.num_items, sp_cfg.paired_ratio, train.num_modalities,
      sp_cfg.mode, sp_cfg.seed)
  paired, unpaired = hdata.apply_semi_paired(train, sp)

  rng = jax.random.key(config.seed)
  t0 = time.perf_counter()
  model, encode_fn = fit_method(method, paired, unpaired, config, rng)
  jax.block_until_ready(jax.tree_util.tree_leaves(model))
  fit_s = time.perf_counter() - t0
  ev = config.get("eval", None)
  results = evaluate_cross_modal(
      split.query, split.database, encode_fn,
      top_r=ev.get("top_r", None) if ev is not None else None,
      ks=tuple(ev.get("ks", ())) if ev is not None else ())
  summary = {
      "method": method,
      "dataset": config.data.name,
      "bits": int(config.bits),
      "paired_ratio": float(sp_cfg.paired_ratio),
      "num_paired": int(len(sp.paired)),
      "num_unpaired": [int(len(u)) for u in sp.unpaired],
      "num_query": split.query.num_items,
      "num_database": split.database.num_items,
      "fit_seconds": fit_s,
      "results": results,
  }
  title = (f"{method} on {config.data.name}, {config.bits} bits, "
           f"paired ratio {sp_cfg.paired_ratio}")
  print(format_table(results, title=f"### {title}"))
  if workdir and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2) if hasattr(
          config, "to_json_best_effort") else json.dumps(_as_dict(config), indent=2))
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(summary, f, indent=2)
    serialization.save_pytree(
        os.path.join(workdir, "model.npz"), jax.tree_util.tree_map(np.asarray, model),
        meta={"method": method, "bits": int(config.bits),
              "view_names": list(train.view_names)})
  return summary
