"""Leave-one-out signals for RREH's ridge lam, scored against labelled validation mAP.

Issue 18. Label-free selection keeps the largest lam of the grid because every
retrieval criterion tried (held-out pair MRR, neighbourhood mAP, ...) prefers
smaller ridges as the paired share grows while class-level retrieval gets worse
(experiments/results/rreh_rule_study.md). lam is the ridge of the hash functions'
regression ``Phi_i W_i ~ T_i`` (the W-step), and a ridge is what leave-one-out
cross-validation was made for: with ``A = (1 + beta) Phi^T Phi + lam I`` the
fitted values are ``Y = H T``, ``H = (1 + beta) Phi A^-1 Phi^T``,
``T = (Z + beta B) / (1 + beta)``, and the prediction for row j from a fit without
row j is exactly

  y_(-j) = T_j - (T_j - y_j) / (1 - H_jj)

(no refit). From a fitted grid point (one more W-step at its final V and B, in
float64), per modality and over the real rows:

* ``flip``: share of code bits ``sign(y_(-j))`` that differ from ``sign(y_j)``
  (does an item keep its code when it is not trained on: the hash functions'
  out-of-sample stability; lower is better);
* ``press``: mean ``||T_j - y_(-j)||^2 / ||T_j||^2`` (relative PRESS; lower is better);
* ``xflip``: on the paired rows, share of bits where the two modalities'
  leave-one-out codes disagree (lower is better; instance matching again).

The folds are those of ``hashjax.rreh.select`` (same keys and held-out items as
experiments/rreh_criterion_study.py), and every STUDY_GRID point is fitted on
each. The rules compared choose theta / init_v per lam by the library's
neighbourhood score (nb@0.1, read from rreh_criterion_study.jsonl) and then lam by
a LOO signal; they are judged like the rule study: validation mAP regret (20% of
the database as queries, database labels only), test mAP reported only.

  nice python experiments/rreh_loo_study.py --ratios 0.1 --out /tmp/loo
  python experiments/rreh_loo_study.py --report --out /tmp/loo
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

NAME = "rreh_loo_study"
HERE = os.path.dirname(os.path.abspath(__file__))
CRIT = os.path.join(HERE, "results", "rreh_criterion_study.jsonl")
SIGNALS = ("flip", "press", "xflip")


def loo_signals(phi, mask, z, b, lam_abs, beta, paired_rows):
  """Leave-one-out signals of one grid point (module docstring).

  Args:
    phi: ``[M, n, k]`` centred kernel features; mask ``[M, n]``.
    z: ``[M, n, bits]`` latent targets at the final V; b: ``[M, n, bits]`` codes.
    lam_abs: ``[M]`` absolute W ridges; beta: scalar.
    paired_rows: int ``[n_p]`` rows of the paired items.

  Returns:
    dict of the signals (floats).
  """
  m = phi.shape[0]
  flips, press, loo_codes = [], [], []
  for i in range(m):
    real = mask[i] > 0
    x = phi[i][real].astype(np.float64)
    t = ((z[i] + beta * b[i]) / (1.0 + beta))[real].astype(np.float64)
    a = (1.0 + beta) * x.T @ x + lam_abs[i] * np.eye(x.shape[1])
    ainv_xt = np.linalg.solve(a, x.T)                           # [k, n]
    h = (1.0 + beta) * np.einsum("nk,kn->n", x, ainv_xt)
    y = (1.0 + beta) * x @ (ainv_xt @ t)
    loo = t - (t - y) / (1.0 - h)[:, None]
    flips.append(np.mean(np.sign(loo) != np.sign(y)))
    press.append(np.mean(np.sum((t - loo) ** 2, 1) / np.sum(t ** 2, 1)))
    full = np.zeros(z[i].shape)
    full[real] = loo
    loo_codes.append(np.sign(full[paired_rows]))
  xf = [np.mean(loo_codes[a] != loo_codes[c]) for a in range(m) for c in range(a + 1, m)]
  return dict(flip=float(np.mean(flips)), press=float(np.mean(press)),
              xflip=float(np.mean(xf)))


def fold_signals(paired, unpaired, rng, points, folds=3, holdout=0.2):
  """The folds of ``rreh.select`` (one process), LOO signals per point: ``{s: [G, folds]}``."""
  cfg = rreh.resolve_config(dict(bits=rs.BITS))
  mesh = api._resolve_mesh(None)
  paired = [np.asarray(p, np.float32) for p in paired]
  unpaired = [np.asarray(u, np.float32) for u in unpaired]
  n_p = paired[0].shape[0]
  h = max(2, int(round(holdout * n_p)))
  folds = max(1, min(folds, n_p // h))
  rng_perm, rng_fold = jax.random.split(rng)
  perm = np.asarray(jax.random.permutation(rng_perm, n_p))
  out = {s: np.full((len(points), folds), np.nan) for s in SIGNALS}
  prep = jax.jit(solver.prepare)
  targets = jax.jit(solver._targets)
  for f in range(folds):
    held = np.sort(perm[f * h:(f + 1) * h])
    keep = np.setdiff1d(np.arange(n_p), held)
    tp = [p[keep] for p in paired]
    tu = [np.concatenate([u, p[held]]) for p, u in zip(paired, unpaired)]
    rows = api._Rows(np.asarray([n_p - h]),
                     np.asarray([[u.shape[0] for u in tu]]),
                     tuple(p.shape[1] for p in paired))
    rng_anchor, rng_init = jax.random.split(jax.random.fold_in(rng_fold, f))
    problem, _ = api._build_problem(tp, tu, rows, dict(cfg, init_v="pca"),
                                    rng_anchor, mesh, None)
    phi = np.asarray(problem.phi)
    mask = np.asarray(problem.mask)
    prow = np.asarray(problem.paired_index())
    for init_v in ("gaussian", "pca"):
      idx = [j for j, p in enumerate(points) if p["init_v"] == init_v]
      hyp = solver.RREHHyper(jnp.asarray([points[j]["theta"] for j in idx], jnp.float32),
                             jnp.full(len(idx), cfg["beta"], jnp.float32),
                             jnp.asarray([points[j]["lam"] for j in idx], jnp.float32),
                             None)
      st = solver.run_grid(problem, hyp, rng_init, bits=cfg["bits"],
                           iterations=cfg["iterations"], init_v=init_v)
      for g, j in enumerate(idx):
        hg = jax.tree.map(lambda x, g=g: x[g], hyp)
        aux = prep(problem, hg)
        z = np.asarray(targets(st.V[g], aux, problem))
        if not np.all(np.isfinite(np.asarray(st.W[g]))):
          continue
        sig = loo_signals(phi, mask, z, np.asarray(st.B[g]), np.asarray(aux.lam),
                          cfg["beta"], prow)
        for s in SIGNALS:
          out[s][j, f] = sig[s]
  return out


def run_one(rec):
  name, seed, ratio = rec["dataset"], rec["seed"], rec["ratio"]
  _, paired, unpaired = rse.unit_data(name, seed, ratio)
  points = crit.grid_points(crit.STUDY_GRID)
  assert points == rec["points"], "STUDY_GRID changed since the criterion study"
  load0 = os.getloadavg()
  t0 = time.perf_counter()
  sig = fold_signals(paired, unpaired, jax.random.fold_in(jax.random.key(seed), 1),
                     points)
  return dict(dataset=name, seed=seed, ratio=ratio, points=points,
              signals={k: v.tolist() for k, v in sig.items()},
              seconds=time.perf_counter() - t0, load_before=load0,
              load_after=os.getloadavg())


def _pick(points, nb, sig, rule):
  """Index of the grid point a rule picks (``nb``, ``sig``: fold means ``[G]``)."""
  lam = np.asarray([p["lam"] for p in points])
  lams = np.unique(lam)
  per_lam = {}
  for lv in lams:   # theta / init_v by the library's score at each lam
    cand = np.flatnonzero((lam == lv) & np.isfinite(nb))
    per_lam[lv] = cand[np.argmax(nb[cand])] if cand.size else None
  if rule == "today":
    return per_lam[lams.max()]
  name, _, how = rule.partition(":")
  vals = {lv: sig[name][j] for lv, j in per_lam.items() if j is not None}
  if how == "min":
    return per_lam[min(vals, key=vals.get)]
  raise ValueError(rule)


RULES = ("today", "flip:min", "press:min", "xflip:min")


def report(path):
  lines = []
  with open(path) as f:
    recs = [json.loads(x) for x in f]
  with open(CRIT) as f:
    cs = {(r["dataset"], r["seed"], r["ratio"]): r for r in map(json.loads, f)}
  loads = [x for r in recs for x in (r["load_before"][0], r["load_after"][0])]
  lines.append("# Leave-one-out signals for RREH's lam (issue 18)\n")
  lines.append(f"Command: `python experiments/rreh_loo_study.py --ratios 0.1 "
               f"--out DIR`, then `--report --out DIR`; {len(recs)} units, load "
               f"average (1 min) {min(loads):.1f}-{max(loads):.1f}. Rules: theta / "
               "init_v per lam by nb@0.1 (the library's score, from "
               "rreh_criterion_study.jsonl), then lam as named (`today`: the largest "
               "lam). Regret = best validation mAP of the 18-point grid minus the "
               "pick's (database labels only); `within` = data sets with seed-mean "
               "regret <= 0.01; test gap = test mAP of the best-validation point "
               "minus the pick's (the issue's measure), seed mean per data set, then "
               "mean.\n")
  lines.append("| rule | ratio | val regret | within (val) | test gap | within (test gap) "
               "| lam picked (1e-4 / 1e-3 / 1e-2) |")
  lines.append("|---|---|---|---|---|---|---|")
  for ratio in sorted({r["ratio"] for r in recs}):
    rr = [r for r in recs if r["ratio"] == ratio]
    for rule in RULES:
      regs, gaps, lamc = {}, {}, {1e-4: 0, 1e-3: 0, 1e-2: 0}
      for r in rr:
        c = cs[(r["dataset"], r["seed"], r["ratio"])]
        nb = np.asarray(c["scores"]["nb@0.1"]).mean(1)
        nb[~np.isfinite(nb)] = -np.inf
        sig = {k: np.nanmean(np.asarray(v, float), 1) for k, v in r["signals"].items()}
        j = _pick(r["points"], nb, sig, rule)
        v, t = np.asarray(c["val_map"]), np.asarray(c["test_map"])
        regs.setdefault(r["dataset"], []).append(v.max() - v[j])
        gaps.setdefault(r["dataset"], []).append(t[np.argmax(v)] - t[j])
        lamc[min(lamc, key=lambda x: abs(x - r["points"][j]["lam"]))] += 1
      rm = [np.mean(x) for x in regs.values()]
      gm = [np.mean(x) for x in gaps.values()]
      lines.append(f"| {rule} | {ratio:g} | {np.mean(rm):.4f} | "
                   f"{sum(x <= 0.01 for x in rm)} of {len(rm)} | {np.mean(gm):.4f} | "
                   f"{sum(x <= 0.01 for x in gm)} of {len(gm)} | "
                   f"{lamc[1e-4]} / {lamc[1e-3]} / {lamc[1e-2]} |")
  # Does a signal order the three per-lam picks like validation mAP does?
  lines.append("\nAgreement with validation mAP on the three per-lam picks of each unit: "
               "share of unit pairs of lam values ordered alike by the signal (lower "
               "is better) and by validation mAP (higher is better); 0.5 = chance.\n")
  lines.append("| signal | ratio | pairs ordered alike |")
  lines.append("|---|---|---|")
  for ratio in sorted({r["ratio"] for r in recs}):
    rr = [r for r in recs if r["ratio"] == ratio]
    for name in SIGNALS:
      agree = total = 0
      for r in rr:
        c = cs[(r["dataset"], r["seed"], r["ratio"])]
        nb = np.asarray(c["scores"]["nb@0.1"]).mean(1)
        nb[~np.isfinite(nb)] = -np.inf
        sig = np.nanmean(np.asarray(r["signals"][name], float), 1)
        lam = np.asarray([p["lam"] for p in r["points"]])
        v = np.asarray(c["val_map"])
        picks = [np.flatnonzero(lam == lv)[np.argmax(nb[lam == lv])]
                 for lv in np.unique(lam)]
        for a in range(len(picks)):
          for b in range(a + 1, len(picks)):
            ja, jb = picks[a], picks[b]
            if v[ja] == v[jb] or sig[ja] == sig[jb]:
              continue
            total += 1
            agree += (v[ja] > v[jb]) == (sig[ja] < sig[jb])
      lines.append(f"| {name} | {ratio:g} | {agree / max(total, 1):.2f} ({agree} of "
                   f"{total}) |")
  return "\n".join(lines) + "\n"


def main():
  _common.units_main(NAME, __doc__, CRIT, run_one, report)


if __name__ == "__main__":
  main()
