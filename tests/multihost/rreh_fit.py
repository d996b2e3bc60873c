"""RREH fitted from process-local rows: ``python -m tests.multihost.rreh_fit OUT CASE [REF]``.

Started once per process by :mod:`tests.multihost.launch` (the ``HASHJAX_*``
variables of experiments/CLUSTER.md), or as one process for the reference. Every
process builds the same synthetic semi-paired data set (so the test can compare with
one process), keeps only its :func:`hashjax.distributed.host_rows` block of the
paired items and of each modality's unpaired items, and passes only those rows to
``rreh.fit(..., process_local=True)``.

CASE:

* ``fit``: fit (label-free selection of lam on a 3-point grid), then
  encode the database with it split over the processes
  (:func:`hashjax.evaluation.encode_views`) and evaluate. Process 0 writes
  ``OUT/model.npz`` (every model leaf), ``OUT/codes.npz`` (database codes),
  ``OUT/results.json`` (mAPs); every process writes ``OUT/rows<i>.json`` (the rows it
  was given). With ``REF`` (a ``model.npz`` of the one-process run) the reference
  model is evaluated with the database split too: ``OUT/ref_codes.npz``,
  ``OUT/ref_results.json``.
* ``no_paired``: process 1 passes no paired rows (a user mistake);
* ``widths``: process 1 passes its text view one column short;
* ``rows``: process 1's text view has one paired row fewer than its image view;
* ``key``: process 1 fits with another PRNG key.

On ``ValueError`` a process writes ``OUT/error<i>.txt`` and exits with status 3.
"""

import json
import os
import sys

import numpy as np

from hashjax import distributed

M_DIMS = (24, 16)
N_PAIRED, N_UNPAIRED, N_QUERY, N_DB, CLASSES = 90, (160, 140), 60, 300, 5
# lam is chosen by the label-free selection (3 points x 3 folds); theta, init_v fixed.
CONFIG = dict(bits=16, num_anchors=40, iterations=8, theta=0.3, beta=0.1, init_v="pca")


def data(seed: int = 0):
  """Clustered views: ``(paired, unpaired, query, database, q_labels, db_labels)``."""
  rs = np.random.default_rng(seed)
  centers = [rs.normal(size=(CLASSES, d)) for d in M_DIMS]

  def items(labels):
    return [(centers[i][labels] + 0.8 * rs.normal(size=(len(labels), d))
             ).astype(np.float32) for i, d in enumerate(M_DIMS)]

  paired = items(rs.integers(0, CLASSES, N_PAIRED))
  unpaired = [items(rs.integers(0, CLASSES, n))[i] for i, n in enumerate(N_UNPAIRED)]
  q_lab, db_lab = rs.integers(0, CLASSES, N_QUERY), rs.integers(0, CLASSES, N_DB)
  return paired, unpaired, items(q_lab), items(db_lab), q_lab, db_lab


def _evaluate(model, views, labels_q, labels_db, query):
  import jax  # pylint: disable=g-import-not-at-top

  from hashjax import evaluation, rreh  # pylint: disable=g-import-not-at-top
  from hashjax.data import MultiModalData  # pylint: disable=g-import-not-at-top

  def encode_fn(x, m):
    return rreh.encode(model, x, m)

  names = ("image", "text")
  db = MultiModalData(tuple(views), labels_db, names)
  q = MultiModalData(tuple(query), labels_q, names)
  db_codes = evaluation.encode_views(db, encode_fn)     # split over the processes
  res = evaluation.evaluate_codes(evaluation.encode_views(q, encode_fn), db_codes,
                                  q.labels, db.labels, names, pr_curve=False)
  maps = {d: r["map"] for d, r in res.items()}
  return db_codes, maps, jax.process_index()


def main(out: str, case: str, ref: str | None = None) -> None:
  distributed.initialize()
  import jax  # pylint: disable=g-import-not-at-top

  from hashjax import rreh  # pylint: disable=g-import-not-at-top

  me = jax.process_index()
  paired, unpaired, query, database, q_lab, db_lab = data()
  block = distributed.host_rows(N_PAIRED)
  mine_p = [p[block] for p in paired]
  mine_u = [u[distributed.host_rows(u.shape[0])] for u in unpaired]
  if case == "no_paired" and me == 1:
    mine_p = [p[:0] for p in mine_p]
  if case == "widths" and me == 1:
    mine_p[1], mine_u[1] = mine_p[1][:, :-1], mine_u[1][:, :-1]
  with open(os.path.join(out, f"rows{me}.json"), "w") as f:
    json.dump({"paired": [int(block.start), int(block.stop)],
               "unpaired": [int(u.shape[0]) for u in mine_u],
               "devices": jax.device_count(), "processes": jax.process_count()}, f)
  if case == "rows" and me == 1:
    mine_p[1] = mine_p[1][:-1]
  key = jax.random.key(1 if case == "key" and me == 1 else 0)
  try:
    model = rreh.fit(mine_p, mine_u, CONFIG, key, process_local=True)
  except ValueError as e:
    with open(os.path.join(out, f"error{me}.txt"), "w") as f:
      f.write(str(e))
    print(f"ValueError: {e}", flush=True)
    sys.exit(3)
  codes, maps, _ = _evaluate(model, database, q_lab, db_lab, query)
  if me == 0:
    np.savez(os.path.join(out, "model.npz"),
             **{k: np.asarray(v) for k, v in model._asdict().items()})
    np.savez(os.path.join(out, "codes.npz"), *codes)
    with open(os.path.join(out, "results.json"), "w") as f:
      json.dump(maps, f)
  if ref:
    with np.load(ref) as z:
      ref_model = rreh.RREHModel(**{k: z[k] for k in rreh.RREHModel._fields})
    codes, maps, _ = _evaluate(ref_model, database, q_lab, db_lab, query)
    if me == 0:
      np.savez(os.path.join(out, "ref_codes.npz"), *codes)
      with open(os.path.join(out, "ref_results.json"), "w") as f:
        json.dump(maps, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
