"""One path from config to result table for the shallow (non-deep) methods.

``train_and_evaluate(config, workdir)`` loads a data set, deals the semi-paired split
of docs/rreh.md, fits the method from the registry (:mod:`hashjax.methods`), encodes query
and database items of every modality and evaluates every ordered modality pair with
:func:`hashjax.evaluation.evaluate_cross_modal` (the evaluation DCGH uses too).
Results go to ``workdir/results.json`` (the schema of :mod:`hashjax.evaluation`), the
fitted model to ``workdir/model.npz`` (see :mod:`hashjax.encode`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from hashjax import checks, evaluation, fileio, methods
from hashjax.evaluation import evaluate_cross_modal, format_table

__all__ = [
    "SHALLOW_METHODS",
    "evaluate_cross_modal",
    "fit_method",
    "format_table",
    "train_and_evaluate",
]

SHALLOW_METHODS = methods.names("shallow")


def fit_method(method: str, paired_views: Sequence[np.ndarray],
               unpaired_views: Sequence[np.ndarray], config: Any, rng: jax.Array
               ) -> tuple[Any, Any]:
  """``(model, encode_fn)`` of a shallow method of the registry (``Method.fit``)."""
  m = methods.get(method)
  if m.family != "shallow":
    raise ValueError(f"unknown method {method!r}; shallow methods: {SHALLOW_METHODS}.")
  model = m.fit(paired_views, unpaired_views, config, rng)
  return model, lambda x, i: m.encode(model, x, i)


def _host_block(sp: Any) -> Any:
  """The semi-paired split cut to this process's block of every index list."""
  from hashjax import distributed  # pylint: disable=g-import-not-at-top

  return sp._replace(
      paired=sp.paired[distributed.host_rows(len(sp.paired))],
      unpaired=tuple(u[distributed.host_rows(len(u))] for u in sp.unpaired))


def train_and_evaluate(config: Any, workdir: str | None) -> dict[str, Any]:
  """Runs one shallow-method experiment described by ``config``.

  Args:
    config: ConfigDict with ``method``, ``seed``, ``bits``, ``data`` (see
      :func:`hashjax.data.get_retrieval_split`), ``semi_paired`` (paired_ratio, mode,
      seed), the method's sub-config (``rreh`` or ``baseline``) and ``eval``
      (top_r, ks).
    workdir: where ``config.json``, ``results.json`` and ``model.npz`` go (None: no
      files); a local path or any ``etils.epath`` URI.

  Returns:
    the results record (:func:`hashjax.evaluation.results_record`).
  """
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top
  from hashjax import validate  # pylint: disable=g-import-not-at-top

  name = config.method
  if name not in SHALLOW_METHODS:
    raise ValueError(f"unknown method {name!r}; shallow methods: {SHALLOW_METHODS}.")
  validate.validate_shallow(config)   # every field, before any work
  if jax.process_index() == 0:
    validate.check_workdir(workdir)
  method = methods.get(name)
  split = hdata.get_retrieval_split(config.data)
  train = split.train
  sp_cfg = config.semi_paired
  sp = hdata.semi_paired_split(
      train.num_items, sp_cfg.paired_ratio, train.num_modalities,
      sp_cfg.mode, sp_cfg.seed)
  # With several processes a method that fits from process-local rows (RREH) gets
  # only this process's block of the paired items and of every modality's unpaired
  # items (hashjax.distributed.host_rows): the data file is read whole, but only
  # these rows are cut out and passed on. Other methods fit on every row, the same
  # on every process.
  local = method.process_local and jax.process_count() > 1
  if local and len(sp.paired) < jax.process_count():
    raise ValueError(
        f"{len(sp.paired)} paired training items cannot be split over "
        f"{jax.process_count()} processes (each needs at least one); raise "
        "semi_paired.paired_ratio or run fewer processes.")
  paired, unpaired = hdata.apply_semi_paired(train, _host_block(sp) if local else sp)
  if not local:   # a process-local fit checks the rows of every process together
    for nm, v in zip(train.view_names, paired):
      checks.check_varies(f"the {nm!r} view of the paired training items", v)

  rng = jax.random.key(config.seed)
  # Progress by stage (the fit itself is one compiled program, no inner steps).
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=2, unit="stage", desc=f"{name}: compiling and fitting "
             f"{len(sp.paired)} paired + {sum(len(u) for u in sp.unpaired)} unpaired",
             disable=jax.process_index() != 0 or not config.get("progress_bar", True))
  t0 = time.perf_counter()
  fit_details: dict[str, Any] = {}
  model = method.fit(paired, unpaired, config, rng, details=fit_details, **(
      {"process_local": True} if local else {}))
  jax.block_until_ready(jax.tree_util.tree_leaves(model))
  fit_s = time.perf_counter() - t0
  bar.update(1)
  bar.set_description(f"{name}: fitted in {fit_s:.1f} s, evaluating")
  ev = config.get("eval", None)
  top_k = ev.get("top_r", None) if ev is not None else None
  ks = tuple(ev.get("ks", ())) if ev is not None else ()
  encode_fn = lambda x, m: method.encode(model, x, m)  # noqa: E731
  # Several processes: each encodes its block of the query and database items, and
  # the codes are gathered (evaluation.encode_views).
  db_codes = evaluation.encode_views(split.database, encode_fn)
  results = evaluation.evaluate_codes(
      evaluation.encode_views(split.query, encode_fn), db_codes, split.query.labels,
      split.database.labels, split.query.view_names, top_k=top_k, ks=ks)
  bar.update(1)
  bar.close()
  # Code health (bit balance, distinct codes) of the database, warning on collapse.
  from hashjax import diagnostics  # pylint: disable=g-import-not-at-top
  codes = diagnostics.codes_report(
      dict(zip(split.database.view_names, db_codes)), warn=jax.process_index() == 0)
  record = evaluation.results_record(
      method=name, dataset=config.data.name, bits=int(config.bits),
      num_train=train.num_items, num_query=split.query.num_items,
      num_database=split.database.num_items, train_seconds=fit_s, results=results,
      top_k=None if top_k is None else min(int(top_k), split.database.num_items),
      ks=ks, codes=codes,
      details={"paired_ratio": float(sp_cfg.paired_ratio),
               "num_paired": int(len(sp.paired)),
               "num_unpaired": [int(len(u)) for u in sp.unpaired],
               "num_processes": jax.process_count(),
               "process_local_fit": bool(local), **fit_details})
  title = (f"{name} on {config.data.name}, {config.bits} bits, "
           f"paired ratio {sp_cfg.paired_ratio}")
  print(format_table(results, title=f"### {title}"))
  if workdir and jax.process_index() == 0:
    fileio.write_config(config, workdir)
    evaluation.write_results(workdir, record)
    method.save(fileio.join(workdir, method.checkpoint), model,
                meta={"bits": int(config.bits), "view_names": list(train.view_names)})
  return record
