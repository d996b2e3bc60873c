"""Does a spectrum-aware scale for RREH's W ridge make one lam hold across views?

Issue 18. ``lam`` is relative: modality i's W ridge is ``lam * tr(Phi_i^T Phi_i) /
k``, the mean eigenvalue of the system it regularises. The labelled picks of
experiments/results/rreh_select_eval.md prefer smaller lam on data sets with a
low-rank view (UCI zer and mor, Wikipedia's 10-d text), where the mean
eigenvalue is set by a few directions and a ridge of 1% of it wipes out the rest
of the code's ``bits`` directions. This study scales the ridge instead by the
``bits``-th largest eigenvalue of ``Phi_i^T Phi_i`` (the weakest direction a
``bits``-bit code can use; floored at ``FLOOR`` times the mean eigenvalue), so a
view keeps the directions it has. For every unit of the evaluation (data set,
seed) at 10% paired it fits the whole STUDY_GRID with ``lam`` in ``LAMS``
under that scale (the keys of ``rreh.fit``), and scores each model on test and
validation (database labels only) exactly as experiments/rreh_select_eval.py does.
The report compares, at the library's label-free theta / init_v pick
(``rreh_select_eval_now.jsonl``), every fixed lam of either scale with the
labelled pick of the original grid.

Variants (``--combine``): ``spectral`` (the ridge is ``lam`` times that eigenvalue),
``min`` (the smaller of it and the library's ridge at lam 1e-2: only views whose
spectrum falls off within ``bits`` directions get a smaller ridge; this is the
library's option ``ridge_cap``, docs/rreh.md#ridge-cap) and ``max``. Findings
(experiments/results/rreh_ridge_scale_study_*.md): at 10% paired both help (mean
gap to the labelled pick 0.0087 -> 0.0031 spectral, 0.0045 min; 10 -> 11 / 13 of 16
data sets within 0.01), smoothly in the constants; at 100% paired Wikipedia loses
0.03 (spectral) and 0.0125 (min), so neither became the default.

  nice python experiments/rreh_ridge_scale_study.py --out /tmp/rs
  python experiments/rreh_ridge_scale_study.py --report --out /tmp/rs
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

from hashjax import experiment, rreh
from hashjax.rreh import solver, steps

NAME = "rreh_ridge_scale_study"
HERE = os.path.dirname(os.path.abspath(__file__))
EVAL = os.path.join(HERE, "results", "rreh_select_eval.jsonl")
NOW = os.path.join(HERE, "results", "rreh_select_eval_now.jsonl")
LAMS = (0.1, 0.3, 1.0, 3.0)
LAMS_RUN = LAMS   # --lams
FLOOR = 1e-4      # --floor
COMBINE = "spectral"  # --combine


def spectral_scale(phi: jax.Array, bits: int, floor: float | None = None) -> jax.Array:
  """The ``bits``-th largest eigenvalue of ``phi^T phi`` (``[n, k]``), floored at
  ``FLOOR`` times the mean eigenvalue (``bits > k``: the smallest)."""
  ev = jnp.linalg.eigvalsh(steps.gram(phi))[::-1]
  mean = steps.relative_scale(phi)
  return jnp.maximum(ev[min(bits, ev.shape[0]) - 1], (FLOOR if floor is None else floor)
                     * mean)


def patched_prepare(bits, combine="spectral"):
  """``solver.prepare`` with the W ridge scaled by :func:`spectral_scale`.

  ``combine``: ``"spectral"`` (``lam * spectral_scale``), or, to take the two
  effects apart, ``"min"`` / ``"max"``: the smaller / larger of that ridge and the
  library's at lam 1e-2 (``0.01 * mean eigenvalue``): ``"min"`` only lowers the
  ridge of views whose spectrum falls off before ``bits`` directions, ``"max"``
  only raises it where it does not.
  """
  real = solver.prepare

  def prepare(problem, hyper, **kw):   # kw: the library's bits (unused: no cap)
    aux = real(problem, hyper, **kw)
    m = problem.phi.shape[0]
    lam = jnp.stack([hyper.lam * spectral_scale(problem.phi[i], bits, FLOOR)
                     for i in range(m)])
    if combine != "spectral":
      library = jnp.stack([1e-2 * steps.relative_scale(problem.phi[i])
                           for i in range(m)])
      lam = (jnp.minimum if combine == "min" else jnp.maximum)(lam, library)
    factors = [steps.w_factor(problem.phi[i], beta=hyper.beta, lam=lam[i],
                              mesh=problem.mesh) for i in range(m)]
    return aux._replace(w_q=jnp.stack([f[0] for f in factors]),
                        w_p=jnp.stack([f[1] for f in factors]), lam=lam)
  return prepare


def run_one(rec):
  name, seed, ratio = rec["dataset"], rec["seed"], rec["ratio"]
  split, paired, unpaired = rse.unit_data(name, seed, ratio)
  vq, vdb = rse._val_split(split.database, seed)
  key = jax.random.key(seed)
  cfg = rreh.resolve_config(dict(bits=rs.BITS))
  load0 = os.getloadavg()
  t0 = time.perf_counter()
  rng_anchor, rng_init = jax.random.split(key)
  problem, feats = rreh.make_problem(paired, unpaired, cfg, rng_anchor)
  grid = []
  for init_v in rreh.criterion.STUDY_GRID["init_v"]:
    pts = [dict(theta=t, lam=lv, init_v=init_v)
           for t in rreh.criterion.STUDY_GRID["theta"] for lv in LAMS_RUN]
    hyp = rreh.RREHHyper(jnp.asarray([p["theta"] for p in pts], jnp.float32),
                         jnp.full(len(pts), cfg["beta"], jnp.float32),
                         jnp.asarray([p["lam"] for p in pts], jnp.float32))
    st = rreh.run_grid(problem, hyp, rng_init, bits=rs.BITS,
                       iterations=cfg["iterations"], init_v=init_v)
    for g, pt in enumerate(pts):
      model = rreh.RREHModel(**feats._asdict(), W=st.W[g], objective=st.objective[g])
      enc = lambda x, m, model=model: rreh.encode(model, x, m)
      test = experiment.evaluate_cross_modal(split.query, split.database, enc)
      val = experiment.evaluate_cross_modal(vq, vdb, enc)
      grid.append(dict(pt, map=rs._mean_map(test), val_map=rs._mean_map(val),
                       finite=bool(np.all(np.isfinite(np.asarray(st.W[g]))))))
  return dict(dataset=name, seed=seed, ratio=ratio, scale=COMBINE, floor=FLOOR,
              grid=grid, seconds=time.perf_counter() - t0, load_before=load0,
              load_after=os.getloadavg())


def reselect_one(rec, lam):
  """``rreh.select`` (theta x init_v, the library's criterion and folds, same key)
  with the W ridge on the spectral scale and ``lam`` fixed."""
  name, seed, ratio = rec["dataset"], rec["seed"], rec["ratio"]
  _, paired, unpaired = rse.unit_data(name, seed, ratio)
  t0 = time.perf_counter()
  chosen, table = rreh.select(
      paired, unpaired, rreh.resolve_config(dict(bits=rs.BITS, lam=lam)),
      jax.random.fold_in(jax.random.key(seed), 1))
  return dict(dataset=name, seed=seed, ratio=ratio, lam=lam, floor=FLOOR,
              chosen=chosen, criterion=table, seconds=time.perf_counter() - t0)


def report(path):
  with open(path) as f:
    recs = [json.loads(x) for x in f]
  with open(EVAL) as f:
    ev = {(r["dataset"], r["seed"], r["ratio"]): r for r in map(json.loads, f)}
  with open(NOW) as f:
    now = {(r["dataset"], r["seed"], r["ratio"]): r for r in map(json.loads, f)}
  picks = {}
  ppath = path.replace(".jsonl", "_picks.jsonl")
  if os.path.exists(ppath):
    with open(ppath) as f:
      for r in map(json.loads, f):
        picks[(r["dataset"], r["seed"], r["ratio"], r["lam"])] = r["chosen"]
  loads = [x for r in recs for x in (r["load_before"][0], r["load_after"][0])]
  ratios = ",".join(f"{x:g}" for x in sorted({r["ratio"] for r in recs}))
  lams = ",".join(f"{x:g}" for x in sorted({g["lam"] for r in recs for g in r["grid"]}))
  combine, floor = recs[0].get("scale", "spectral"), recs[0].get("floor", FLOOR)
  tag = os.path.basename(path)[len(NAME):-len(".jsonl")].lstrip("_")
  flags = f"--ratios {ratios} --lams {lams} --combine {combine} --floor {floor:g}" + (
      f" --tag {tag}" if tag else "")
  lines = ["# A spectrum-aware scale for RREH's W ridge (issue 18)\n",
           f"Variant: `{combine}`, floor {floor:g} (see `patched_prepare`"
           + ("; the `bits-th eigenvalue` rows' lam is the cap kappa: the ridge is the "
              f"{combine} of 0.01 x the mean eigenvalue and kappa x the bits-th "
              "eigenvalue, which for `min` is the library's `ridge_cap=kappa` at lam "
              "1e-2" if combine != "spectral" else "")
           + "). Command (the units of a file may come from several runs of the same "
           "variant, one per ratio or lam set; the JSON lines hold each unit's grid): "
           f"`python experiments/rreh_ridge_scale_study.py {flags} --out DIR`"
           + (f" and `--reselect {', '.join(f'{x:g}' for x in sorted({k[3] for k in picks}))}`"
              if picks else "")
           + f", then `--report` with the same `--tag`; {len(recs)} units, load average "
           f"(1 min) {min(loads):.1f}-{max(loads):.1f}, {min(r['seconds'] for r in recs):.0f}-"
           f"{max(r['seconds'] for r in recs):.0f} s per unit. theta / init_v: the "
           "library's label-free pick (`rreh_select_eval_now.jsonl`; `own selection`: "
           "`rreh.select` rerun with this ridge and lam); lam fixed as "
           "named. `gap` = test mAP of the labelled pick of the ORIGINAL grid "
           "(best validation mAP; rreh_select_eval.md's (c)) minus the row's, mean over "
           "seeds per data set; `within` = data sets with gap <= 0.01; `(union)`: "
           "the labelled pick over both grids; `val regret (union)`: its validation mAP "
           "minus the row's (the evidence for choosing a constant; the test gap is only "
           "reported).\n",
           ]
  for ratio in sorted({r["ratio"] for r in recs}):
    rr = [r for r in recs if r["ratio"] == ratio]
    lams = sorted({g["lam"] for r in rr for g in r["grid"]})
    lines += _ratio_tables(rr, ev, now, ratio, lams, picks)
  return "\n".join(lines) + "\n"


def _ratio_tables(recs, ev, now, ratio, lams, picks):
  lines = [f"\n## {ratio:g} paired\n",
           "| ridge | lam | mean gap | within 0.01 | mean gap (union) | within (union) "
           "| test mAP (mean) | val regret (union) | within (val) |",
           "|---|---|---|---|---|---|---|---|---|"]
  rows = [("mean eigenvalue (library)", lv) for lv in (1e-4, 1e-3, 1e-2)] + [
      ("bits-th eigenvalue", lv) for lv in lams]
  units = {(r["dataset"], r["seed"], r["ratio"]) for r in recs}
  rows += [("bits-th eigenvalue, own selection", lv) for lv in lams
           if all((*u, lv) in picks for u in units)]
  per_set = {}
  for scale, lv in rows:
    gaps, ugaps, maps, vreg = {}, {}, [], {}
    for r in recs:
      u = (r["dataset"], r["seed"], r["ratio"])
      e, pick = ev[u], now[u]["chosen"]
      if scale.endswith("own selection"):
        pick = picks[(*u, lv)]
      c = _common.labelled_pick(e["grid"])
      cu = _common.labelled_pick(e["grid"] + r["grid"])
      grid = e["grid"] if scale.startswith("mean") else r["grid"]
      g = next(g for g in grid if g["theta"] == pick["theta"]
               and g["init_v"] == pick["init_v"] and np.isclose(g["lam"], lv))
      gaps.setdefault(u[0], []).append(c["map"] - g["map"])
      ugaps.setdefault(u[0], []).append(cu["map"] - g["map"])
      maps.append(g["map"])
      vreg.setdefault(u[0], []).append(cu["val_map"] - g["val_map"])
      per_set.setdefault((scale, lv), {}).setdefault(u[0], []).append(g["map"])
    gm = [np.mean(v) for v in gaps.values()]
    um = [np.mean(v) for v in ugaps.values()]
    lines.append(f"| {scale} | {lv:g} | {np.mean(gm):.4f} | {sum(x <= 0.01 for x in gm)} "
                 f"of {len(gm)} | {np.mean(um):.4f} | {sum(x <= 0.01 for x in um)} of "
                 f"{len(um)} | {np.mean(maps):.4f} | "
                 f"{np.mean([np.mean(v) for v in vreg.values()]):.4f} | "
                 f"{sum(np.mean(v) <= 0.01 for v in vreg.values())} of {len(vreg)} |")
  lines += ["\nPer data set (test mAP, mean over seeds; theta / init_v as above):\n",
            "| data set | " + " | ".join(
                f"{s.split()[0]}{' sel' if s.endswith('selection') else ''} {lv:g}"
                for s, lv in rows)
            + " | labelled pick (c) |",
            "|---|" + "---|" * (len(rows) + 1)]
  for ds in sorted({r["dataset"] for r in recs}):
    c = [_common.labelled_pick(ev[(ds, r["seed"], r["ratio"])]["grid"])["map"]
         for r in recs if r["dataset"] == ds]
    lines.append(f"| {ds} | " + " | ".join(f"{np.mean(per_set[k][ds]):.4f}" for k in rows)
                 + f" | {np.mean(c):.4f} |")
  return lines


def main():
  global LAMS_RUN, FLOOR, COMBINE  # pylint: disable=global-statement
  ap = _common.units_parser(NAME, __doc__)
  ap.add_argument("--lams", default=",".join(f"{x:g}" for x in LAMS))
  ap.add_argument("--floor", type=float, default=FLOOR)
  ap.add_argument("--combine", default=COMBINE, choices=("spectral", "min", "max"),
                  help="see patched_prepare")
  ap.add_argument("--tag", default="", help="suffix of the output file names")
  ap.add_argument("--reselect", type=float, default=None,
                  help="run rreh.select on the spectral scale with this lam fixed "
                       "(theta / init_v picks to <out>/..._picks.jsonl), no grid fits")
  a = ap.parse_args()
  LAMS_RUN = tuple(float(x) for x in a.lams.split(","))
  FLOOR = a.floor
  COMBINE = a.combine
  os.makedirs(a.out, exist_ok=True)
  name = NAME + (f"_{a.tag}" if a.tag else "")
  path = os.path.join(a.out, name + ".jsonl")
  picks_path = os.path.join(a.out, name + "_picks.jsonl")
  if a.report:
    _common.write_report(report(path), a.out, name)
    return
  solver.prepare = patched_prepare(rs.BITS, COMBINE)
  units = dict(ratios=[float(x) for x in a.ratios.split(",")],
               seeds=[int(x) for x in a.seeds.split(",")], datasets=a.datasets)
  if a.reselect is not None:
    _common.run_units(EVAL, picks_path, lambda rec: reselect_one(rec, a.reselect),
                      done_if=lambda r: r["lam"] == a.reselect,
                      describe=lambda out: f"{out['chosen']} {out['seconds']:.1f}s",
                      **units)
    return
  _common.run_units(EVAL, path, run_one, **units)


if __name__ == "__main__":
  main()
