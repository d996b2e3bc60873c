"""The one evaluation path and the one results schema, for every method.

Whatever trained the codes (RREH, a baseline, DCGH), evaluation is
:func:`evaluate_codes` (or :func:`evaluate_cross_modal`, which encodes first), the
table is :func:`format_table` and ``workdir/results.json`` is :func:`results_record`
written by :func:`write_results`.

results.json (``schema = "hashjax.results/1"``; see docs/results_schema.md)::

  {
    "schema": "hashjax.results/1",
    "method": "rreh" | "cca_itq" | "cvh" | "cmfh" | "dcgh",
    "dataset": str, "bits": int,
    "num_train": int, "num_query": int, "num_database": int,
    "train_seconds": float,           # fit / training loop of the run that trained
    "evaluation": {
      "top_k": int | null,            # K of map@K, p@K, ndcg@K (clamped to n_db)
      "ks": [int, ...],               # extra precision cut-offs p@k
      "radius": int,                  # p@r<radius>: precision within that radius
      "map_at_k_definition": "calc_map_k",
      "directions": ["image->text", "text->image", ...]  # every ordered pair a != b
    },
    "results": {
      "<query view>-><database view>": {
        "map": float,                 # mAP over the whole ranking
        "map@K": float, "p@K": float, "ndcg@K": float,   # when top_k is set
        "p@k": float, ...,            # one per ks
        "p@r2": float,
        "pr_curve": {"precision": [b + 1], "recall": [b + 1]}  # radii 0..b
      }, ...
    },
    "details": {...},                 # method-specific (semi-paired counts; DCGH's
                                      # model selection, history, steps)
    "provenance": {"versions": {"python", "jax", "jaxlib", "flax", "optax",
                                "numpy"}, "git_commit": str | null,
                   "date": ISO-8601 UTC, "command": str}
  }

``map_at_k_definition`` names how AP@K is computed (:data:`MAP_AT_K_DEFINITIONS`,
passed to :func:`hashjax.metrics.evaluate_retrieval`): ``"calc_map_k"`` (the default,
as ``calc_map_k`` of DCMH / DCHMT / DCGH, which papers of this family report) averages
the precision at the first ``min(K, #relevant)`` relevant items wherever they rank;
``"truncated"`` averages the precision at the relevant items inside the top K only.
See docs/evaluation.md.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hashjax import fileio

__all__ = [
    "MAP_AT_K_DEFINITIONS",
    "SCHEMA",
    "encode_views",
    "evaluate_codes",
    "evaluate_cross_modal",
    "format_table",
    "provenance",
    "results_record",
    "write_results",
]

SCHEMA = "hashjax.results/1"
# Names of AP@K normalisations the metrics implement; the first is the default.
MAP_AT_K_DEFINITIONS = ("calc_map_k", "truncated")
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy")

EncodeFn = Callable[[np.ndarray, int], Any]


def evaluate_codes(
    query_codes: Sequence[Any],
    db_codes: Sequence[Any],
    query_labels: Any,
    db_labels: Any,
    view_names: Sequence[str],
    *,
    top_k: int | None = None,
    ks: Sequence[int] = (),
    radius: int = 2,
    definition: str = MAP_AT_K_DEFINITIONS[0],
    pr_curve: bool = True,
) -> dict[str, dict[str, Any]]:
  """Evaluates every ordered modality pair ``a -> b`` (a != b) of given codes.

  Args:
    query_codes: M arrays ``[nq, b]`` in {-1, +1}, one per modality.
    db_codes: M arrays ``[n, b]`` in {-1, +1}.
    query_labels: ``[nq, C]`` multi-hot (or ``[nq]`` class ids).
    db_labels: ``[n, C]`` multi-hot (or ``[n]``).
    view_names: M modality names (directions are ``"a->b"``).
    top_k: K of ``map@K``, ``p@K``, ``ndcg@K`` (clamped to n; None: skipped).
    ks: extra cut-offs of ``p@k`` (each clamped to n).
    radius: Hamming radius of ``p@r<radius>``.
    definition: AP@K normalisation, one of :data:`MAP_AT_K_DEFINITIONS`.
    pr_curve: include ``pr_curve`` (precision / recall within radii 0..b).

  Returns:
    ``{"a->b": {"map", "map@K", "p@K", "ndcg@K", "p@k", "p@r2", "pr_curve"}}`` of
    Python floats (lists for the curve).
  """
  from hashjax import metrics  # pylint: disable=g-import-not-at-top

  if definition not in MAP_AT_K_DEFINITIONS:
    raise ValueError(f"map@k definition must be one of {MAP_AT_K_DEFINITIONS}, got "
                     f"{definition!r}.")
  m = len(view_names)
  if len(query_codes) != m or len(db_codes) != m:
    raise ValueError(f"{m} view names but {len(query_codes)} query and "
                     f"{len(db_codes)} database code arrays.")
  n = int(np.shape(db_codes[0])[0])
  k = None if top_k is None else min(int(top_k), n)
  kk = tuple(sorted({min(int(x), n) for x in ks} - {k}))
  out: dict[str, dict[str, Any]] = {}
  for a in range(m):
    for b in range(m):
      if a == b:
        continue
      ev = metrics.evaluate_retrieval(
          np.asarray(query_codes[a]), np.asarray(db_codes[b]), query_labels, db_labels,
          top_r=k, ks=kk, radius=radius, map_k_definition=definition)
      ev.pop("map@k_definition", None)   # named once, in record["evaluation"]
      prec, rec = ev.pop("pr_precision"), ev.pop("pr_recall")
      if pr_curve:
        ev["pr_curve"] = {"precision": prec, "recall": rec}
      out[f"{view_names[a]}->{view_names[b]}"] = ev
  return out


def encode_views(data: Any, encode_fn: EncodeFn) -> list[np.ndarray]:
  """int8 codes ``[n, b]`` of every view of ``data``, on every process.

  With more than one JAX process the items are split: each process encodes only its
  :func:`hashjax.distributed.host_rows` block of every view, and the codes (``n x b``
  int8, small) are gathered so that every process holds all of them in item order.
  The raw rows are not exchanged. One process encodes everything.

  Args:
    data: :class:`hashjax.data.MultiModalData` (``views[m]`` ``[n, d_m]``).
    encode_fn: ``encode_fn(x [n, d_m], m) -> codes [n, b]`` in {-1, +1}.

  Returns:
    M arrays ``[n, b]`` int8.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from hashjax import distributed  # pylint: disable=g-import-not-at-top

  procs = jax.process_count()
  out = []
  for m, x in enumerate(data.views):
    n = x.shape[0]
    if procs == 1:
      out.append(np.asarray(encode_fn(x, m)).astype(np.int8))
      continue
    if n < procs:
      raise ValueError(f"view {m} has {n} items, fewer than the {procs} processes that "
                       "split it.")
    block = distributed.host_rows(n)
    codes = np.asarray(encode_fn(x[block], m)).astype(np.int8)
    per = -(-n // procs)
    padded = np.zeros((per, codes.shape[1]), np.int8)
    padded[:codes.shape[0]] = codes
    every = distributed.allgather_exact(padded)                    # [P, per, b]
    sizes = [len(range(n)[distributed.host_rows(n, process_index=p)])
             for p in range(procs)]
    out.append(np.concatenate([every[p, :sizes[p]] for p in range(procs)]))
  return out


def evaluate_cross_modal(query: Any, database: Any, encode_fn: EncodeFn, *,
                         top_k: int | None = None, ks: Sequence[int] = (),
                         **kwargs: Any) -> dict[str, dict[str, Any]]:
  """Encodes every view of ``query`` / ``database`` and calls :func:`evaluate_codes`.

  Encoding is :func:`encode_views` (split over the processes when there are several).

  Args:
    query: :class:`hashjax.data.MultiModalData`; ``query.views[a]`` is ``[nq, d_a]``.
    database: the same views, ``[n, d_a]``.
    encode_fn: ``encode_fn(x [n, d_m], m) -> codes [n, b]`` in {-1, +1}.
    top_k: see :func:`evaluate_codes`.
    ks: see :func:`evaluate_codes`.
    **kwargs: ``radius``, ``definition``, ``pr_curve``.

  Returns:
    as :func:`evaluate_codes`.
  """
  if "top_r" in kwargs:   # the former name of top_k
    top_k = kwargs.pop("top_r")
  if query.view_names != database.view_names:
    raise ValueError(
        f"query views {query.view_names} differ from database views "
        f"{database.view_names}.")
  q, d = encode_views(query, encode_fn), encode_views(database, encode_fn)
  return evaluate_codes(q, d, query.labels, database.labels, query.view_names,
                        top_k=top_k, ks=ks, **kwargs)


def format_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
  """Markdown table: one row per retrieval direction, one column per scalar metric."""
  cols = sorted({c for r in results.values() for c, v in r.items()
                 if isinstance(v, (int, float))}, key=lambda c: (c != "map", c))
  lines = [title] if title else []
  lines.append("| direction | " + " | ".join(cols) + " |")
  lines.append("|---" * (len(cols) + 1) + "|")
  for d, r in results.items():
    lines.append(f"| {d} | " + " | ".join(
        f"{r[c]:.4f}" if c in r else "" for c in cols) + " |")
  return "\n".join(lines)


def _git_commit() -> str | None:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                         text=True, timeout=10, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
  """Versions (python, jax, jaxlib, flax, optax, numpy), git commit, date, command."""
  versions = {"python": platform.python_version()}
  for name in _VERSIONED:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return {"versions": versions, "git_commit": _git_commit(),
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          "command": shlex.join([os.path.basename(sys.executable), *sys.argv])}


def results_record(*, method: str, dataset: str, bits: int, num_train: int,
                   num_query: int, num_database: int, train_seconds: float,
                   results: Mapping[str, Any], top_k: int | None,
                   ks: Sequence[int] = (),
                   radius: int = 2, definition: str = MAP_AT_K_DEFINITIONS[0],
                   details: Mapping[str, Any] | None = None,
                   codes: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The results.json record (layout in the module docstring).

  ``codes`` is :func:`hashjax.diagnostics.codes_report` of the database codes (bit
  balance and distinct codes per modality).
  """
  return {
      "schema": SCHEMA, "method": method, "dataset": dataset, "bits": int(bits),
      "num_train": int(num_train), "num_query": int(num_query),
      "num_database": int(num_database), "train_seconds": float(train_seconds),
      "evaluation": {"top_k": None if top_k is None else int(top_k),
                     "ks": [int(k) for k in ks], "radius": int(radius),
                     "map_at_k_definition": definition, "directions": list(results)},
      "results": dict(results), "codes": dict(codes or {}),
      "details": dict(details or {}),
      "provenance": provenance(),
  }


def write_results(workdir: str, record: Mapping[str, Any]) -> None:
  """Writes ``workdir/results.json``."""
  fileio.makedirs(workdir)
  fileio.write_json(fileio.join(workdir, "results.json"), dict(record))
