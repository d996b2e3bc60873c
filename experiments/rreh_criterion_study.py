"""Label-free selection criteria for RREH, scored against labelled validation mAP.

Issue 18. ``hashjax.rreh.select`` scores grid points by held-out pair retrieval
(MRR: does a held-out item's code find its own counterpart). That measures instance
matching; class-level retrieval is what users are judged on, and the MRR cannot
choose lambda (experiments/results/rreh_select_eval.md). This study refits the
folds of ``select`` exactly (same keys, same held-out items, the whole
STUDY_GRID) for the (data set, seed, ratio) records of
``experiments/results/rreh_select_eval.jsonl`` and computes several label-free
criteria from the same fits:

* ``mrr``: the library's criterion (checked against the record's fold scores);
* ``nb@s`` (neighbourhood mAP): every held-out item queries ALL codes of the other
  modality (kept paired, unpaired and held-out rows); relevant are the rows whose
  features, in the retrieved modality, are among the ``s`` share of rows nearest
  (Euclidean, per-dimension standardised) to the query's own counterpart there.
  It uses the unpaired items and rewards codes that land in the right region
  rather than on the exact partner;
* ``nbphi@s``: ``nb@s`` with the neighbours found in the solver's own centred kernel
  features (``problem.phi``) instead of the standardised raw features;
* ``self@s``: the same within one modality (codes vs that modality's features).

Ties in Hamming distance are broken by one fixed random permutation of the rows
(the same for every grid point), so collapsed codes score like random ones.

The rules (argmax of a criterion over the grid; optionally at the largest lam
only) are compared by the validation mAP of their pick (20% of the database as
queries against the rest; database labels only, stored in the record) and, only
reported, test mAP. One JSON line per (data set, seed, ratio) in ``--out``.

  nice python experiments/rreh_criterion_study.py --ratios 0.1 --out /tmp/crit.jsonl
  python experiments/rreh_criterion_study.py --report --out /tmp/crit.jsonl
"""

from __future__ import annotations

import json
import os
import time

import _common
import jax
import jax.numpy as jnp
import numpy as np
import rreh_select as rs
import rreh_select_eval as rse

from hashjax import rreh
from hashjax.rreh import api, solver
from hashjax.rreh import criterion as crit

NAME = "rreh_criterion_study"
SHARES = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
EVAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                    "rreh_select_eval.jsonl")


def _ap_rows(dist, rel, order_key):
  """Mean AP over queries: ``dist [h, n]`` Hamming, ``rel [h, n]`` bool."""
  aps = []
  for d, r in zip(dist, rel):
    order = np.lexsort((order_key, d))
    hit = r[order]
    if not hit.any():
      continue
    ranks = np.flatnonzero(hit) + 1.0
    aps.append(np.mean(np.arange(1, ranks.size + 1) / ranks))
  return float(np.mean(aps))


def _knn_rel(feat, query_rows, share):
  """``[h, n]``: rows among the ``share`` nearest (Euclidean) to each query row."""
  k = max(2, int(round(share * feat.shape[0])))
  q = feat[query_rows]
  d2 = (q ** 2).sum(1)[:, None] - 2 * q @ feat.T + (feat ** 2).sum(1)[None, :]
  idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
  rel = np.zeros(d2.shape, bool)
  np.put_along_axis(rel, idx, True, axis=1)
  return rel


def _hamming(a, b):
  a = a.astype(np.float32)
  b = b.astype(np.float32)
  return (a.shape[1] - a @ b.T) / 2.0


def fold_criteria(paired, unpaired, rng, points, folds=3, holdout=0.2):
  """Replica of :func:`hashjax.rreh.select`'s folds (one process) with more criteria.

  Returns ``{criterion: [G, folds]}``.
  """
  cfg = rreh.resolve_config(dict(bits=rs.BITS))
  mesh = api._resolve_mesh(None)
  paired = [np.asarray(p, np.float32) for p in paired]
  unpaired = [np.asarray(u, np.float32) for u in unpaired]
  m = len(paired)
  n_p = paired[0].shape[0]
  h = max(2, int(round(holdout * n_p)))
  folds = max(1, min(folds, n_p // h))
  rng_perm, rng_fold = jax.random.split(rng)
  perm = np.asarray(jax.random.permutation(rng_perm, n_p))
  out = {}
  for f in range(folds):
    held = np.sort(perm[f * h:(f + 1) * h])
    keep = np.setdiff1d(np.arange(n_p), held)
    tp = [p[keep] for p in paired]
    tu = [np.concatenate([u, p[held]]) for p, u in zip(paired, unpaired)]
    rows = api._Rows(np.asarray([n_p - h]),
                     np.asarray([[u.shape[0] for u in tu]]),
                     tuple(p.shape[1] for p in paired))
    held_rows = [(n_p - h) + (tu[i].shape[0] - h) + np.arange(h) for i in range(m)]
    feats = []
    for i in range(m):
      x = np.concatenate([tp[i], tu[i]]).astype(np.float64)
      sd = x.std(0)
      feats.append((x - x.mean(0)) / np.where(sd > 0, sd, 1.0))
    rng_anchor, rng_init = jax.random.split(jax.random.fold_in(rng_fold, f))
    problem, _ = api._build_problem(tp, tu, rows, dict(cfg, init_v="pca"),
                                    rng_anchor, mesh, None)
    phi = np.asarray(problem.phi, np.float64)
    phis = [phi[i, :feats[i].shape[0]] for i in range(m)]
    rels = {(s, i): _knn_rel(feats[i], held_rows[i], s) for s in SHARES
            for i in range(m)}
    rels.update({("phi", s, i): _knn_rel(phis[i], held_rows[i], s) for s in SHARES
                 for i in range(m)})
    tie = {i: np.random.default_rng(f + 7 * i).permutation(feats[i].shape[0])
           for i in range(m)}
    for init_v in ("gaussian", "pca"):
      idx = [j for j, p in enumerate(points) if p["init_v"] == init_v]
      hyp = solver.RREHHyper(jnp.asarray([points[j]["theta"] for j in idx],
                                         jnp.float32),
                             jnp.full(len(idx), cfg["beta"], jnp.float32),
                             jnp.asarray([points[j]["lam"] for j in idx], jnp.float32),
                             None)
      st = solver.run_grid(problem, hyp, rng_init, bits=cfg["bits"],
                           iterations=cfg["iterations"], init_v=init_v)
      b_all = np.asarray(st.B)                                   # [G, M, n, bits]
      ok = np.asarray(jnp.all(jnp.isfinite(st.W), axis=(1, 2, 3)))
      for g, j in enumerate(idx):
        vals = {}
        if ok[g]:
          codes = [b_all[g, i, :feats[i].shape[0]] for i in range(m)]
          vals["mrr"] = crit.pair_score([c[held_rows[i]] for i, c in enumerate(codes)])
          for s in SHARES:
            nb, sf, nbp = [], [], []
            for a in range(m):
              sf.append(_ap_rows(_hamming(codes[a][held_rows[a]], codes[a]),
                                 rels[(s, a)], tie[a]))
              for b in range(m):
                if a != b:
                  dist = _hamming(codes[a][held_rows[a]], codes[b])
                  nb.append(_ap_rows(dist, rels[(s, b)], tie[b]))
                  nbp.append(_ap_rows(dist, rels[("phi", s, b)], tie[b]))
            vals[f"nb@{s:g}"] = float(np.mean(nb))
            vals[f"nbphi@{s:g}"] = float(np.mean(nbp))
            vals[f"self@{s:g}"] = float(np.mean(sf))
        for name in ["mrr"] + [f"{c}@{s:g}" for c in ("nb", "nbphi", "self")
                                  for s in SHARES]:
          out.setdefault(name, np.full((len(points), folds), -np.inf))[j, f] = vals.get(
              name, -np.inf)
  return out


def run_one(rec):
  name, seed, ratio = rec["dataset"], rec["seed"], rec["ratio"]
  _, paired, unpaired = rse.unit_data(name, seed, ratio)
  points = crit.grid_points(crit.STUDY_GRID)
  load0 = os.getloadavg()
  t0 = time.perf_counter()
  scores = fold_criteria(paired, unpaired,
                         jax.random.fold_in(jax.random.key(seed), 1), points)
  mrr_rec = np.asarray([r["fold_scores"] for r in rec["criterion"]])
  return dict(dataset=name, seed=seed, ratio=ratio, points=points,
              scores={k: v.tolist() for k, v in scores.items()},
              mrr_max_abs_diff_vs_record=float(np.max(np.abs(scores["mrr"] - mrr_rec))),
              val_map=[g["val_map"] for g in rec["grid"]],
              test_map=[g["map"] for g in rec["grid"]],
              seconds=time.perf_counter() - t0, load_before=load0,
              load_after=os.getloadavg())


def _pick(r, crit_name, top_lam):
  s = np.asarray(r["scores"][crit_name]).mean(axis=1)
  lam = np.asarray([p["lam"] for p in r["points"]])
  ok = np.isfinite(s) & ((lam == lam.max()) if top_lam else True)
  return int(np.argmax(np.where(ok, s, -np.inf)))


def report(path):
  """The markdown report of the records in ``path``."""
  lines = []

  def say(*parts):
    lines.append(" ".join(str(x) for x in parts))

  with open(path) as f:
    recs = [json.loads(x) for x in f]
  names = list(recs[0]["scores"])
  loads = [r["load_before"][0] for r in recs] + [r["load_after"][0] for r in recs]
  say("# Label-free selection criteria for RREH (issue 18)\n")
  say(f"Command: `python experiments/rreh_criterion_study.py --ratios 0.1,0.3,1.0 "
        f"--out DIR` ({len(recs)} units in `{os.path.basename(path)}`; the first run "
        "was stopped after the 10% units and a few 30% / 100% ones), then `--report "
        f"--out DIR`. Load average (1 min) {min(loads):.1f}-{max(loads):.1f}.\n")
  say("Every STUDY_GRID point (theta x lam x init_v, 18) is fitted on the 3 folds of "
        "`rreh.select` (same keys) and scored by each criterion (module docstring); a "
        "rule picks the argmax of the fold-mean score (over all 18 points, or at the "
        "largest lam only) and is judged by the VALIDATION mAP of its pick (20% of the "
        "database as queries against the rest, database labels only, from "
        "experiments/results/rreh_select_eval.jsonl); test mAP is reported only. "
        "`val regret` = best validation mAP of the grid minus the pick's, mean over "
        "units; `sets within 0.01` counts data sets whose mean regret over seeds is "
        "at most 0.01. The refitted pair MRR differs from the stored one by up to "
        f"{max(r['mrr_max_abs_diff_vs_record'] for r in recs):.2f} (another host: "
        "float rounding flips a few code bits; the criteria here are compared on the "
        "same refits).")
  for ratio in sorted({r["ratio"] for r in recs}):
    rr = [r for r in recs if r["ratio"] == ratio]
    sets = sorted({r["dataset"] for r in rr})
    say(f"\n## ratio {ratio}: {len(sets)} data sets, {len(rr)} records")
    say("| rule | val mAP | val regret | sets within 0.01 (val) | test mAP | "
          "rank corr with val (median) |")
    say("|---|---|---|---|---|---|")
    rules = [(n, t) for n in names for t in (False, True)] + [("fixed", None)]
    for n, t in rules:
      vals, regs, tests, cors, per = [], [], [], [], {}
      for r in rr:
        v = np.asarray(r["val_map"])
        if n == "fixed":
          j = next(i for i, p in enumerate(r["points"])
                   if all(p[k] == crit.FIXED[k] for k in p))
        else:
          j = _pick(r, n, t)
          s = np.asarray(r["scores"][n]).mean(1)
          okm = np.isfinite(s)
          cors.append(_spearman(s[okm], v[okm]))
        vals.append(v[j])
        regs.append(v.max() - v[j])
        tests.append(r["test_map"][j])
        per.setdefault(r["dataset"], []).append(v.max() - v[j])
      within = sum(np.mean(x) <= 0.01 for x in per.values())
      label = n if n == "fixed" else f"{n}{' (largest lam)' if t else ''}"
      cor = f"{np.median(cors):.2f}" if cors else ""
      say(f"| {label} | {np.mean(vals):.4f} | {np.mean(regs):.4f} | {within} of "
            f"{len(per)} | {np.mean(tests):.4f} | {cor} |")
  return "\n".join(lines) + "\n"


def _spearman(a, b):
  ra = np.argsort(np.argsort(a))
  rb = np.argsort(np.argsort(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def main():
  _common.units_main(NAME, __doc__, EVAL, run_one, report,
      describe=lambda out: (f"{out['seconds']:.1f}s mrr diff "
                            f"{out['mrr_max_abs_diff_vs_record']:.1e}"))


if __name__ == "__main__":
  main()
