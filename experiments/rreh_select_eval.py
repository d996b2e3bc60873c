"""RREH selection, evaluated honestly: label-free default vs a labelled validation pick.

Issue 18. experiments/rreh_select.py compared the library default with the grid
point of best TEST mAP on one seed: an oracle (winner's curse, seed noise included),
not something a user with labels could reach. Here, per (data set, seed, paired
ratio), every point of hashjax.rreh.criterion.STUDY_GRID is fitted once (the keys of
``rreh.fit(..., key)``) and each fitted model is scored twice:

* test mAP: the standard query / database protocol (mAP@all, mean of both
  directions);
* validation mAP: 20% of the DATABASE items (seeded) as queries against the other
  80% of the database, with the database labels only; no test query is touched.

and the report compares

* (a) ``default``: the label-free pick among the grid's (uncapped) points
  (``hashjax.rreh.select`` with ``ridge_cap=0``, no labels; the library default
  until 2026-12-06, when the default grid gained the spectral ridge cap);
* (b) ``fixed``: ``select=False`` (hashjax.rreh.criterion.FIXED);
* (c) ``labels (val)``: the grid point with the best validation mAP, evaluated on
  test (what a researcher with database labels gets);
* (d) ``oracle (test)``: the grid point with the best test mAP (no method can use it);
* (e) the seed-noise floor: std over seeds of the test mAP of one grid point;
* (f) CCA-ITQ, CVH, CMFH trained on the paired part (10% runs only; the
  rreh_select.py settings).

One JSON line per finished (data set, seed, ratio) in ``<out>/rreh_select_eval.jsonl``
(resumable; several processes may append to separate files that are then
concatenated); it holds the grid's models' mAP and the held-out pair MRR table (the
former default's criterion). ``--reselect`` runs today's ``rreh.select`` (the
default criterion, the grid without the ridge cap, the same key) on every stored unit
into ``<out>/rreh_select_eval_now.jsonl`` (seconds per unit: no grid fits),
``--fit CONFIG`` fits what a user gets, ``rreh.fit`` with the library defaults
plus CONFIG (``""``: the defaults, label-free selection included; ``ridge_cap=0``:
the former default), on every stored unit into ``<out>/rreh_select_eval_fit.jsonl``,
scored like the grid's models, and ``--report`` writes ``rreh_select_eval.{json,md}``
from all three.

  nice python experiments/rreh_select_eval.py --datasets wikipedia,uci_pairs \\
      --seeds 0,1,2 --ratios 0.1 --out experiments/results
  nice python experiments/rreh_select_eval.py --datasets uci_fac+kar,uci_fou+zer,\\
uci_kar+pix --seeds 0,1,2 --ratios 0.3,1.0 --out experiments/results
  python experiments/rreh_select_eval.py --reselect --ratios 0.1,0.3,1.0 \\
      --out experiments/results
  python experiments/rreh_select_eval.py --fit "" --ratios 0.1,0.3,1.0 \
      --out experiments/results
  python experiments/rreh_select_eval.py --fit ridge_cap=0 --ratios 0.1,0.3,1.0 \
      --out experiments/results
  python experiments/rreh_select_eval.py --report --out experiments/results
"""

from __future__ import annotations

import datetime
import json
import os
import time

import jax
import numpy as np

import _common
import rreh_select as rs
from hashjax import data as hdata
from hashjax import experiment, rreh
from hashjax.configs_io import load_config_file

NAME = "rreh_select_eval"
VAL_SHARE = 0.2
BASELINES = ("cca_itq", "cvh", "cmfh")


def _val_split(database, seed):
  """(queries, rest) of the database: VAL_SHARE of its items, seeded, and the others."""
  n = database.num_items
  perm = np.random.default_rng(10_000 + seed).permutation(n)
  h = round(VAL_SHARE * n)
  return database.subset(np.sort(perm[:h])), database.subset(np.sort(perm[h:]))


def _point(grid, point):
  return next(g for g in grid if all(g.get(k) == v for k, v in point.items()))


def unit_data(name, seed, ratio):
  """``(split, paired, unpaired)`` of one unit: the data set's retrieval split and
  its training items at paired share ``ratio`` (disjoint unpaired parts, ``seed``)."""
  _, path, arg = {d[0]: d for d in rs._datasets("wikipedia,uci_pairs")}[name][:3]
  cfg0 = load_config_file(os.path.join(rs.ROOT, path),
                          (arg + "," if arg else "") + f"seed={seed},bits={rs.BITS}")
  split = hdata.get_retrieval_split(cfg0.data)
  tr = split.train
  sp = hdata.semi_paired_split(tr.num_items, ratio, tr.num_modalities, "disjoint", seed)
  paired, unpaired = hdata.apply_semi_paired(tr, sp)
  return split, paired, unpaired


def run_one(name, path, arg, bpath, barg, seed, ratio, baselines=True):
  del path, arg   # unit_data finds them by name
  split, paired, unpaired = unit_data(name, seed, ratio)
  vq, vdb = _val_split(split.database, seed)
  key = jax.random.key(seed)
  base = rreh.resolve_config(dict(bits=rs.BITS))
  rec = dict(dataset=name, seed=seed, ratio=ratio, num_paired=int(paired[0].shape[0]),
             num_val_query=vq.num_items, num_val_db=vdb.num_items,
             load_before=os.getloadavg())
  t0 = time.perf_counter()
  # The held-out pair MRR of every STUDY_GRID point (the former default's table; the
  # default now comes from --reselect), with the key of rreh.fit(..., key).
  chosen, table = rreh.select(paired, unpaired, base, jax.random.fold_in(key, 1),
                              grid=rreh.criterion.STUDY_GRID, criterion="pair")
  rec["select_seconds"] = time.perf_counter() - t0
  rec["chosen"], rec["criterion"] = chosen, table
  t0 = time.perf_counter()
  grid = [None] * len(table)
  for j, pt, model in rs.grid_models(paired, unpaired, key, base):
    enc = lambda x, m, model=model: rreh.encode(model, x, m)
    test = experiment.evaluate_cross_modal(split.query, split.database, enc)
    val = experiment.evaluate_cross_modal(vq, vdb, enc)
    grid[j] = dict(pt, map=rs._mean_map(test), val_map=rs._mean_map(val),
                   dirs={k: v["map"] for k, v in test.items()})
  rec["grid_seconds"] = time.perf_counter() - t0
  rec["grid"] = grid
  rec["baselines"] = {}
  t0 = time.perf_counter()
  for method in BASELINES if baselines else ():
    widths = [p.shape[1] for p in paired]
    b = min(rs.BITS, min(widths) if method == "cca_itq" else
            sum(widths) if method == "cvh" else rs.BITS)
    bc = load_config_file(os.path.join(rs.ROOT, bpath),
                          f"{barg}method={method},paired_ratio={ratio},seed={seed},"
                          f"bits={b}")
    rec["baselines"][method] = rs._mean_map(experiment.train_and_evaluate(bc, None)
                                            ["results"])
  rec["baseline_seconds"] = time.perf_counter() - t0
  rec["load_after"] = os.getloadavg()
  return rec


def reselect(rec):
  """What the library's ``rreh.select`` picks now for a record's unit (no grid fits).

  The same data, split and key as :func:`run_one`; the grid models (and so the test
  and validation mAP of every point) are the record's.
  """
  name, seed, ratio = rec["dataset"], rec["seed"], rec["ratio"]
  _, paired, unpaired = unit_data(name, seed, ratio)
  out = dict(dataset=name, seed=seed, ratio=ratio, load_before=os.getloadavg())
  t0 = time.perf_counter()
  # ridge_cap=0: the grid's points are uncapped, so the pick is one of them (the
  # default's own capped points are scored by --fit).
  out["chosen"], out["criterion"] = rreh.select(
      paired, unpaired, rreh.resolve_config(dict(bits=rs.BITS, ridge_cap=0.0)),
      jax.random.fold_in(jax.random.key(seed), 1))
  out["select_seconds"] = time.perf_counter() - t0
  out["load_after"] = os.getloadavg()
  return out


def fit_one(unit, extra):
  """What a user gets: ``rreh.fit(paired, unpaired, {"bits": 64, **extra}, key)`` on a
  unit (its label-free selection included, the same key as :func:`run_one`), scored
  like the grid's models.

  The grid's models of :func:`run_one` are fitted in batches (``run_grid``); the
  model ``fit`` returns runs alone, and float rounding differs: the alternating
  solver's discrete steps can carry a one-ulp difference into a different code, so
  the same point can score differently (see the report's "what fit returns").
  """
  name, seed, ratio = unit
  split, paired, unpaired = unit_data(name, seed, ratio)
  vq, vdb = _val_split(split.database, seed)
  out = dict(dataset=name, seed=seed, ratio=ratio, config=extra,
             load_before=os.getloadavg())
  t0 = time.perf_counter()
  model = rreh.fit(paired, unpaired, dict(bits=rs.BITS, **extra), jax.random.key(seed))
  out["fit_seconds"] = time.perf_counter() - t0
  enc = lambda x, m: rreh.encode(model, x, m)
  test = experiment.evaluate_cross_modal(split.query, split.database, enc)
  out["map"] = rs._mean_map(test)
  out["val_map"] = rs._mean_map(experiment.evaluate_cross_modal(vq, vdb, enc))
  out["dirs"] = {k: v["map"] for k, v in test.items()}
  out["load_after"] = os.getloadavg()
  return out


def _config_tag(extra):
  return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in sorted(extra.items())) or "defaults"


def _parse_extra(text):
  """``"ridge_cap=3"`` -> ``{"ridge_cap": 3.0}`` (numbers as floats)."""
  out = {}
  for part in filter(None, text.split(",")):
    k, v = part.split("=")
    try:
      out[k] = float(v)
    except ValueError:
      out[k] = v
  return out


def summarize(r):
  """The (a)-(d) picks of one record: ``{name: (point, test mAP)}``.

  ``default`` is the library's pick now (``r["now"]``, from :func:`reselect`);
  ``former`` the previous default: the held-out pair MRR (the record's stored
  table) with :func:`hashjax.rreh.criterion.choose`.
  """
  grid = r["grid"]
  strip = lambda g: {k: g[k] for k in ("theta", "lam", "init_v")}
  d = _point(grid, {k: r["now"]["chosen"][k] for k in ("theta", "lam", "init_v")})
  p = grid[rreh.criterion.choose(r["criterion"])]    # pair MRR, largest lam
  c = _common.labelled_pick(grid)
  o = max(grid, key=lambda g: g["map"])
  f = _point(grid, rreh.criterion.FIXED)
  return dict(default=(strip(d), d["map"]), former=(strip(p), p["map"]),
              fixed=(strip(f), f["map"]),
              val=(strip(c), c["map"]), oracle=(strip(o), o["map"]))


def _f(x):
  return f"{x:.4f}"


def _pt(p):
  return f"{p['theta']:g}/{p['lam']:g}/{p['init_v'][:3]}"


def _table(recs, ratio, with_baselines):
  by = {}
  for r in recs:
    if r["ratio"] == ratio:
      by.setdefault(r["dataset"], []).append(r)
  head = ("| data set | seeds | default (a) | former default | fixed (b) | "
          "labels (val) (c) | "
          "oracle (test) (d) | (c)-(a) | (d)-(a) | noise: std over seeds "
          "(fixed pt / median pt) | default's picks | val picks |")
  sep = "|---" * 12 + "|"
  if with_baselines:
    head += " CCA-ITQ | CVH | CMFH | default beats all |"
    sep += "---|---|---|---|"
  lines = [head, sep]
  stats = []
  for name, rs_ in by.items():
    rs_.sort(key=lambda r: r["seed"])
    s = [summarize(r) for r in rs_]
    m = {k: float(np.mean([x[k][1] for x in s])) for k in s[0]}
    gap_c = [x["val"][1] - x["default"][1] for x in s]
    gap_d = [x["oracle"][1] - x["default"][1] for x in s]
    maps = np.asarray([[g["map"] for g in r["grid"]] for r in rs_])   # [seeds, G]
    if len(rs_) > 1:
      sd = maps.std(axis=0, ddof=1)
      fi = rs_[0]["grid"].index(_point(rs_[0]["grid"], rreh.criterion.FIXED))
      noise = f"{sd[fi]:.4f} / {np.median(sd):.4f}"
      noise_fixed = float(sd[fi])
    else:
      noise, noise_fixed = "n/a (1 seed)", float("nan")
    row = (f"| {name} | {','.join(str(r['seed']) for r in rs_)} | "
           f"{_common.mean_std([x['default'][1] for x in s])} | {_f(m['former'])} | "
           f"{_f(m['fixed'])} | "
           f"{_common.mean_std([x['val'][1] for x in s])} | {_f(m['oracle'])} | "
           f"{_common.mean_std(gap_c)} | {_common.mean_std(gap_d)} | {noise} | "
           f"{', '.join(_pt(x['default'][0]) for x in s)} | "
           f"{', '.join(_pt(x['val'][0]) for x in s)} |")
    st = dict(dataset=name, seeds=len(rs_), default=m["default"], former=m["former"],
              gap_val_former=float(np.mean([x["val"][1] - x["former"][1] for x in s])),
              fixed=m["fixed"],
              val=m["val"], oracle=m["oracle"], gap_val=float(np.mean(gap_c)),
              gap_oracle=float(np.mean(gap_d)), noise_fixed=noise_fixed,
              fixed_minus_val=float(np.mean([x["fixed"][1] - x["val"][1] for x in s])))
    if with_baselines and all(r["baselines"] for r in rs_):
      bm = {k: float(np.mean([r["baselines"][k] for r in rs_])) for k in BASELINES}
      win = m["default"] > max(bm.values())
      per_seed = all(x["default"][1] > max(r["baselines"].values())
                     for x, r in zip(s, rs_))
      row += (f" {_f(bm['cca_itq'])} | {_f(bm['cvh'])} | {_f(bm['cmfh'])} | "
              f"{'yes' if win else 'NO'}"
              f"{'' if per_seed == win else ' (not every seed)'} |")
      st.update(baselines=bm, beats_all=win)
    lines.append(row)
    stats.append(st)
  return lines, stats


def _init_table(recs, ratios):
  """init_v gaussian vs pca at the fixed theta / lam, per (data set, ratio)."""
  fx = {k: v for k, v in rreh.criterion.FIXED.items() if k != "init_v"}
  at = f"theta {fx['theta']:g}, lam {fx['lam']:g}"
  lines = [f"| data set | ratio | seeds | gaussian ({at}) | pca | pca - gaussian |",
           "|---|---|---|---|---|---|"]
  by = {}
  for r in recs:
    if r["ratio"] in ratios:
      by.setdefault((r["dataset"], r["ratio"]), []).append(r)
  for (name, ratio), rs_ in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    g = [_point(r["grid"], dict(fx, init_v="gaussian"))["map"] for r in rs_]
    p = [_point(r["grid"], dict(fx, init_v="pca"))["map"] for r in rs_]
    lines.append(f"| {name} | {ratio:g} | {len(rs_)} | {_common.mean_std(g)} | "
                 f"{_common.mean_std(p)} | "
                 f"{_common.mean_std([b - a for a, b in zip(g, p)])} |")
  return lines


def _fit_table(recs, fits, ratio):
  """What ``rreh.fit`` returns (``--fit`` records, one column per config) against the
  labelled pick (c), per data set at ``ratio``; and how far the default's fitted
  model is from the grid's model of the same point (float rounding alone)."""
  tags = sorted({_config_tag(f["config"]) for f in fits})
  by = {}
  for r in recs:
    if r["ratio"] == ratio:
      by.setdefault(r["dataset"], []).append(r)
  fit = {(f["dataset"], f["seed"], f["ratio"], _config_tag(f["config"])): f
         for f in fits}
  head = "| data set | labels (val) (c) | default (a), grid model |"
  for t in tags:
    head += f" fit: {t} | (c) - fit: {t} |"
  lines = [head, "|---" * (3 + 2 * len(tags)) + "|"]
  within = dict.fromkeys(tags, 0)
  beats = dict.fromkeys(tags, 0)
  gaps = {t: [] for t in tags}
  # (a) is the pick among uncapped points: the fit that selects among the same
  # points is ridge_cap=0 (before 2026-12-06: the defaults).
  same = "ridge_cap=0" if "ridge_cap=0" in tags else None
  rounding = []
  complete = True
  for name, rs_ in by.items():
    rs_.sort(key=lambda r: r["seed"])
    s = [summarize(r) for r in rs_]
    row = (f"| {name} | {_common.mean_std([x['val'][1] for x in s])} | "
           f"{_common.mean_std([x['default'][1] for x in s])} |")
    for t in tags:
      got = [fit.get((r["dataset"], r["seed"], ratio, t)) for r in rs_]
      if None in got:
        row += " (missing) | |"
        complete = False
        continue
      gap = [x["val"][1] - g["map"] for x, g in zip(s, got)]
      gaps[t].append(float(np.mean(gap)))
      within[t] += float(np.mean(gap)) <= 0.01
      row += f" {_common.mean_std([g['map'] for g in got])} | {_common.mean_std(gap)} |"
      if all(r["baselines"] for r in rs_):
        beats[t] += float(np.mean([g["map"] for g in got])) > max(
            float(np.mean([r["baselines"][k] for r in rs_])) for k in BASELINES)
      if t == same:
        rounding += [abs(g["map"] - x["default"][1]) for x, g in zip(s, got)]
    lines.append(row)
  lines.append("")
  n = len(by)
  for t in tags:
    if gaps[t] and complete:
      lines.append(f"- fit with {t}: within 0.01 of (c) on {within[t]} of {n} data sets "
                   f"(mean gap {np.mean(gaps[t]):.4f}, max {max(gaps[t]):.4f})" + (
                       f"; above every baseline (CCA-ITQ, CVH, CMFH on the paired "
                       f"part, mean over seeds) on {beats[t]} of {n}."
                       if all(r["baselines"] for rs_ in by.values() for r in rs_)
                       else "."))
  if rounding:
    lines.append(
        f"- `rreh.fit` with ridge_cap=0 (it selects among the grid's uncapped points, "
        f"like (a)) against the same point in the batched grid (column (a)): "
        f"|test mAP difference| median "
        f"{np.median(rounding):.4f}, max {max(rounding):.4f} over {len(rounding)} "
        f"units; only float rounding differs.")
  return lines


def _md(recs, commands, fits=()):
  ratios = sorted({r["ratio"] for r in recs})
  loads = [r["load_before"][0] for r in recs] + [r["load_after"][0] for r in recs]
  loads += [r["now"]["load_before"][0] for r in recs] + [
      r["now"]["load_after"][0] for r in recs]
  secs = [r["now"]["select_seconds"] for r in recs if r["ratio"] == 0.1]
  lines = [
      "# RREH selection, evaluated honestly (issue 18)", "",
      f"Command(s): {commands}  ",
      ("64 bits, disjoint unpaired parts, standard query/database protocol, mAP@all "
       "(mean of both directions); every grid point of "
       f"`{json.dumps(rreh.criterion.STUDY_GRID)}` fitted once per "
       "(data set, seed, ratio) "
       "with the keys of `rreh.fit(..., key)`. (a) `default` = the label-free "
       "pick among these uncapped points, the library default until 2026-12-06 "
       "(`rreh.select` with `ridge_cap=0` on the same data and key (`--reselect`): "
       "the neighbourhood criterion, 3 folds, the "
       "largest lam, then the best score; with every item paired the smallest "
       "theta, theta having no effect there: ratio-1 picks rerun 2026-12-06, the "
       "others unchanged by that rule; since 2026-12-06 the default also scores "
       "every point with the spectral ridge cap: what `rreh.fit` returns with it "
       "is in the tables 'What `rreh.fit` returns'); "
       "`former default` = the held-out pair MRR with the same rule (the stored "
       "criterion table; the default until 2026-12-05); (b) `fixed` = "
       f"`{json.dumps(rreh.criterion.FIXED)}` (select=False); "
       "(c) `labels (val)` = grid point with the best mAP on a validation split of the "
       f"DATABASE only ({VAL_SHARE:.0%} of the database items, seeded, as queries "
       "against the other database items; database labels, no test query), reported "
       "on test; (d) `oracle (test)` = grid point with the best TEST mAP (the winner "
       "of 18 noisy test scores: no method can reach it); noise = sample std over seeds "
       "of one grid point's test mAP (the fixed point / the median over the 18 "
       "points); picks are theta/lam/init. Cells `mean ± std` over seeds; gaps are "
       "per-seed differences, then mean ± std. Baselines on the paired part only "
       "(rreh_select.py settings).  "),
      (f"Load average (1 min) before/after units: {min(loads):.1f}-{max(loads):.1f} "
       f"(shared 2-core box; per-unit values in the JSON); `rreh.select` took "
       f"{np.median(secs):.0f} s median per unit at 10% paired "
       f"({min(secs):.0f}-{max(secs):.0f} s)."), ""]
  summary = {}
  for ratio in ratios:
    tl, st = _table(recs, ratio, with_baselines=ratio == 0.1)
    summary[str(ratio)] = st
    n = len(st)
    within_c = sum(s["gap_val"] <= 0.01 for s in st)
    within_d = sum(s["gap_oracle"] <= 0.01 for s in st)
    fixed_c = sum(s["fixed_minus_val"] >= -0.01 for s in st)
    former_c = sum(s["gap_val_former"] <= 0.01 for s in st)
    lines += [f"## Paired ratio {ratio:g}", ""] + tl + [""]
    lines.append(
        f"Default within 0.01 of labels (val) (c): {within_c} of {n} data sets "
        f"(mean gap {np.mean([s['gap_val'] for s in st]):.4f}, max "
        f"{max(s['gap_val'] for s in st):.4f}); within 0.01 of the test oracle (d): "
        f"{within_d} of {n} (mean gap {np.mean([s['gap_oracle'] for s in st]):.4f}); "
        f"former default within 0.01 of (c): {former_c} of {n} (mean gap "
        f"{np.mean([s['gap_val_former'] for s in st]):.4f}); "
        f"fixed (b) within 0.01 of (c): {fixed_c} of {n}.")
    if ratio == 0.1 and all("beats_all" in s for s in st):
      lines[-1] += (f" Default beats every baseline on "
                    f"{sum(s['beats_all'] for s in st)} of {n}.")
    noise = [s["noise_fixed"] for s in st if s["seeds"] > 1]
    if noise:
      lines[-1] += (f" Seed noise of the fixed point: median std "
                    f"{np.median(noise):.4f} (max {max(noise):.4f}).")
    lines.append("")
    if any(f["ratio"] == ratio for f in fits):
      lines += [f"### What `rreh.fit` returns, paired ratio {ratio:g}", "",
                ("The label-free default as a user gets it: `rreh.fit(paired, unpaired, "
                 "{\"bits\": 64, ...}, key)` (selection included, one unbatched "
                 "solve; `--fit`), mean ± std over seeds, and the per-seed gap to "
                 "the labelled pick (c)."), ""]
      lines += _fit_table(recs, [f for f in fits if f["ratio"] == ratio], ratio) + [""]
  lines += ["## Label-free rules on the stored criterion tables", "",
            ("Mean over every (data set, seed) of the picked grid point's validation "
             "mAP (the evidence for choosing a rule), its regret against the best "
             "validation mAP of the grid, and the test mAP (reported only). "
             "`within x%`: score >= (1 - x) * best, then the largest lam; `k se`: "
             "score >= best - k * se over folds, then the largest lam."), ""]
  lines += _rules_table(recs) + [""]
  if len(ratios) > 1:
    lines += (["## init_v at the fixed theta / lam", ""] + _init_table(recs, ratios)
              + [""])
  return "\n".join(lines), summary


def _pick_within(table, ok):
  """Among rows ``ok``: the largest lam, then the best score, then grid order."""
  scores = [r["score"] for r in table]
  return min(ok, key=lambda j: (-float(table[j]["lam"]), -scores[j], j))


def _rule_se(k):
  def rule(table):
    scores = np.asarray([r["score"] for r in table])
    best = int(np.argmax(scores))
    folds = np.asarray(table[best]["fold_scores"])
    se = float(np.std(folds, ddof=1) / np.sqrt(folds.size))
    return _pick_within(table, [j for j in range(len(table))
                                if scores[j] >= scores[best] - k * se])
  return rule


def _rule_rel(t):
  def rule(table):
    scores = np.asarray([r["score"] for r in table])
    return _pick_within(table, [j for j in range(len(table))
                                if scores[j] >= (1 - t) * scores.max()])
  return rule


def former_choose(table):
  """The library's rule until issue 18's evaluation: one standard error, largest lam.

  Among rows with ``score >= best - se(best)`` the largest lam, then the best score;
  what ``rreh.select`` returned when the records were made (``chosen``).
  """
  scores = np.asarray([r["score"] for r in table])
  best = int(np.argmax(scores))
  folds = np.asarray(table[best]["fold_scores"])
  se = float(np.std(folds, ddof=1) / np.sqrt(folds.size))
  return _pick_within(table, [j for j in range(len(table))
                              if scores[j] >= scores[best] - se])


def _rule_top_lam(rule):
  """``rule`` on the rows of the largest lam only (lam is not scored)."""
  def wrapped(table):
    top = max(r["lam"] for r in table)
    idx = [j for j, r in enumerate(table) if r["lam"] == top]
    return idx[rule([table[j] for j in idx])]
  return wrapped


# Candidate selection rules on the stored pair-MRR tables (label-free: each sees only
# the pair scores), and the library's default now (from --reselect). Compared on
# VALIDATION mAP; test mAP is reported alongside.
RULES = {
    "argmax": lambda t: int(np.argmax([r["score"] for r in t])),
    "1 se (library rule until 2026-12-04)": former_choose,
    "2 se": _rule_se(2),
    "within 2%": _rule_rel(0.02),
    "within 5%": _rule_rel(0.05),
    "within 10%": _rule_rel(0.10),
    "largest lam, 1 se": _rule_top_lam(former_choose),
    "largest lam, then best score (former library rule)": rreh.criterion.choose,
}


def _rules_table(recs):
  """One row per (rule, ratio): validation mAP of the pick (the evidence), test mAP."""
  lines = [("| rule | ratio | val mAP | val regret (mean) | data sets with val regret "
            "<= 0.01 | test mAP |"), "|---|---|---|---|---|---|"]
  fixed = lambda t: next(j for j, r in enumerate(t) if all(
      r.get(k) == v for k, v in rreh.criterion.FIXED.items()))
  for x in sorted({r["ratio"] for r in recs}):
    rs_ = [r for r in recs if r["ratio"] == x]
    names = sorted({r["dataset"] for r in rs_})
    rules = dict(RULES, fixed=fixed)
    rules["neighbourhood, largest lam (library default now)"] = None
    for name, rule in rules.items():
      picks = [summarize(r)["default"][0] if rule is None else
               r["grid"][rule(r["criterion"])] for r in rs_]
      picks = [_point(r["grid"], p) if rule is None else p
               for r, p in zip(rs_, picks)]
      regret = [max(g["val_map"] for g in r["grid"]) - p["val_map"]
                for r, p in zip(rs_, picks)]
      per_ds = [np.mean([g for g, r in zip(regret, rs_) if r["dataset"] == n])
                for n in names]
      lines.append(f"| {name} | {x:g} | {_f(np.mean([p['val_map'] for p in picks]))} | "
                   f"{_f(np.mean(regret))} | {sum(g <= 0.01 for g in per_ds)} of "
                   f"{len(names)} | {_f(np.mean([p['map'] for p in picks]))} |")
  return lines


def _load(path):
  recs, seen = [], set()
  if os.path.exists(path):
    with open(path) as f:
      for r in (json.loads(ln) for ln in f if ln.strip()):
        k = (r["dataset"], r["seed"], r["ratio"])
        if k not in seen:                 # first record of a unit
          seen.add(k)
          recs.append(r)
  return recs


def _stamped(out):
  """``out`` with the command and the date (UTC) of the run."""
  return dict(out, command=_common.command(),
              date=datetime.datetime.now(datetime.timezone.utc).isoformat())


def main():
  ap = _common.parser(NAME, __doc__)
  ap.add_argument("--datasets", default="wikipedia,uci_pairs")
  ap.add_argument("--seeds", default="0,1,2")
  ap.add_argument("--ratios", default="0.1")
  ap.add_argument("--no-baselines", action="store_true")
  ap.add_argument("--jsonl", default=None,
                  help="append records here (default <out>/rreh_select_eval.jsonl)")
  ap.add_argument("--report", action="store_true")
  ap.add_argument("--reselect", action="store_true",
                  help="run today's rreh.select on every stored unit (of --datasets, "
                       "--seeds, --ratios) into <out>/rreh_select_eval_now.jsonl")
  ap.add_argument("--fit", default=None, metavar="CONFIG",
                  help="run rreh.fit with the library defaults plus CONFIG ('' or "
                       "e.g. 'ridge_cap=3') on every stored unit (of --datasets, "
                       "--seeds, --ratios) into <out>/rreh_select_eval_fit.jsonl")
  args = ap.parse_args()
  os.makedirs(args.out, exist_ok=True)
  jsonl = args.jsonl or os.path.join(args.out, NAME + ".jsonl")
  now_path = os.path.join(args.out, NAME + "_now.jsonl")
  fit_path = os.path.join(args.out, NAME + "_fit.jsonl")
  units = dict(ratios=[float(x) for x in args.ratios.split(",")],
               seeds=[int(s) for s in args.seeds.split(",")],
               datasets=",".join(d[0] for d in rs._datasets(args.datasets)))
  if args.fit is not None:
    extra = _parse_extra(args.fit)
    tag = _config_tag(extra)
    _common.run_units(
        jsonl, fit_path, lambda rec: _stamped(fit_one((rec["dataset"], rec["seed"], rec["ratio"]), extra)),
        done_if=lambda r: _config_tag(r["config"]) == tag,
        describe=lambda out: f"{tag} {out['map']:.4f} {out['fit_seconds']:.1f} s",
        **units)
    return
  if args.reselect:
    _common.run_units(
        jsonl, now_path, lambda rec: _stamped(reselect(rec)),
        describe=lambda out: f"{out['chosen']} {out['select_seconds']:.1f} s", **units)
    return
  if not args.report:
    done = {(r["dataset"], r["seed"], r["ratio"]) for r in _load(jsonl)}
    for ratio in (float(x) for x in args.ratios.split(",")):
      for seed in (int(s) for s in args.seeds.split(",")):
        for ds in rs._datasets(args.datasets):
          if (ds[0], seed, ratio) in done:      # resumed run
            continue
          rec = run_one(*ds, seed, ratio,
                        baselines=ratio == 0.1 and not args.no_baselines)
          rec["command"] = _common.command()
          rec["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
          s = summarize(rec)
          print(f"{rec['dataset']} seed {seed} ratio {ratio:g}: "
                + ", ".join(f"{k} {v[1]:.4f} {_pt(v[0])}" for k, v in s.items())
                + f" base {rec['baselines']} ({rec['select_seconds']:.0f}+"
                f"{rec['grid_seconds']:.0f}+{rec['baseline_seconds']:.0f} s, load "
                f"{rec['load_before'][0]:.1f})", flush=True)
          with open(jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")
    return
  recs = _load(jsonl)
  now = {(r["dataset"], r["seed"], r["ratio"]): r for r in _load(now_path)}
  missing = [k for k in ((r["dataset"], r["seed"], r["ratio"]) for r in recs)
             if k not in now]
  if missing:
    raise SystemExit(f"no --reselect record for {len(missing)} unit(s), e.g. "
                     f"{missing[0]}: run with --reselect first")
  for r in recs:
    r["now"] = now[(r["dataset"], r["seed"], r["ratio"])]
  fits = []
  if os.path.exists(fit_path):
    with open(fit_path) as f:
      fits = [json.loads(x) for x in f if x.strip()]
  commands = "; ".join(f"`{c}`" for c in sorted({r["command"] for r in recs} |
                                                 {r["command"] for r in now.values()} |
                                                 {r["command"] for r in fits}))
  md, summary = _md(recs, commands, fits)
  _common.write_results(NAME, dict(environment=_common.environment(), summary=summary,
                                   records=recs), md, args.out)
  print(md)


if __name__ == "__main__":
  main()
