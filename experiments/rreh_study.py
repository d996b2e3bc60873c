"""RREH experiment study (docs/rreh.md): semi-paired retrieval against CCA-ITQ, CVH, CMFH.

Studies (each writes ``<out>/rreh_<study>.{json,md}`` and plots under
``<out>/plots/rreh_<study>_*.png``, ``--out experiments/results`` for the committed
ones; mAP@all, mean +- sample std over seeds):

* ``main``: Wikipedia and UCI (fac+pix) x bits x paired ratio x seeds, RREH and the
  baselines trained on the paired part only and on all training pairs.
* ``anchors``: number of anchors k (capped at the number of paired items), 64 bits.
* ``views``: UCI, all six views: every ordered view pair, RREH fit jointly on the six
  views vs fit on the two views of the pair only.
* ``views_weighted``: UCI, all six views, 10% paired, 64 bits: the joint six-view fit
  with uniform view weights (library default) and with label-free weights
  (``view_weights="auto"``, issue 18.7) against the pairwise fits.
* ``views_subsets``: UCI, every subset of 3, 4 and 5 of the six views (41 data sets),
  10% paired, 64 bits: the joint fit with uniform weights against
  ``view_weights="auto"``. The rule, fixed before the run: ``auto`` becomes the
  library default for M >= 3 if, over the subsets (seed means, mean over the
  subset's ordered view pairs), it is higher on average, higher on at least two
  thirds of them and nowhere lower by more than 0.01.
* ``sensitivity``: kernel on/off and one-at-a-time theta / beta / lambda sweeps,
  Wikipedia 64 bits 10% paired.
* ``objective``: the RREH objective per iteration on Wikipedia and UCI.

RREH hyper-parameters come, at run time, from ``configs/rreh_<dataset>.py``
(``get_config().rreh``) when that file exists, else from ``hashjax.rreh.DEFAULTS``;
the values used are recorded in every JSON.

  python experiments/rreh_study.py main --seeds 5
  python experiments/rreh_study.py all --quick          # tiny CPU smoke run
"""

from __future__ import annotations

import itertools
import os
import time
import traceback
from typing import Any

import _common
import jax
import numpy as np

from hashjax import methods, plotting, rreh
from hashjax import data as hdata
from hashjax.configs_io import load_config_file
from hashjax.evaluation import evaluate_cross_modal

__all__ = ["DATASETS", "load_rreh_config", "run_one", "summarize", "main"]

ROOT = _common.ROOT
RESULTS = _common.RESULTS
PLOTS = os.path.join(RESULTS, "plots")
BASELINES = ("cca_itq", "cvh", "cmfh")
UCI_VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")
DATASETS: dict[str, dict[str, Any]] = {
    "wikipedia": dict(name="wikipedia"),
    "uci": dict(name="uci_mfeat", path=None, views=["fac", "pix"], num_query=400,
                num_train=None, seed=0),
    "uci6": dict(name="uci_mfeat", path=None, views=list(UCI_VIEWS), num_query=400,
                 num_train=None, seed=0),
}
_SPLITS: dict[str, Any] = {}


def load_rreh_config(dataset: str) -> tuple[dict[str, Any], str]:
  """RREH settings for ``dataset`` ('wikipedia' | 'uci') and where they came from."""
  name = "wikipedia" if dataset == "wikipedia" else "uci"
  path = os.path.join(ROOT, "configs", f"rreh_{name}.py")
  cfg = dict(rreh.DEFAULTS)
  source = "hashjax.rreh.DEFAULTS"
  if os.path.exists(path):
    sub = load_config_file(path, None).rreh
    sub = sub.to_dict() if hasattr(sub, "to_dict") else dict(sub)
    cfg.update({k: v for k, v in sub.items() if k in rreh.DEFAULTS})
    source = os.path.relpath(path, ROOT)
  return rreh.resolve_config(cfg), source


def get_split(dataset: str):
  if dataset not in _SPLITS:
    _SPLITS[dataset] = hdata.get_retrieval_split(DATASETS[dataset])
  return _SPLITS[dataset]


def semi_paired(dataset: str, ratio: float, seed: int):
  """``(paired_views, unpaired_views, n_p)`` of the seeded disjoint split."""
  train = get_split(dataset).train
  sp = hdata.semi_paired_split(train.num_items, ratio, train.num_modalities,
                               "disjoint", seed)
  paired, unpaired = hdata.apply_semi_paired(train, sp)
  return paired, unpaired, len(sp.paired)


def run_one(method: str, dataset: str, *, bits: int, ratio: float, seed: int,
            rreh_cfg: dict[str, Any] | None = None, train_on: str = "paired",
            views: tuple[int, ...] | None = None, data=None) -> dict[str, Any]:
  """Fits one method on one seeded split and evaluates it (mAP@all, every direction).

  Args:
    method: 'rreh' or a baseline name.
    dataset: key of :data:`DATASETS`.
    bits: code length.
    ratio: paired ratio of the split.
    seed: split seed and PRNG seed.
    rreh_cfg: RREH settings (``bits`` is overridden).
    train_on: baselines only: 'paired' (the paired part) or 'all' (all training pairs).
    views: keep only these view indices (fit and evaluation).
    data: precomputed ``(paired, unpaired, n_p)`` (else from :func:`semi_paired`).

  Returns:
    a record with the settings, ``map`` ({direction: mAP}), sizes, ``train_seconds``
    (the fit; ``fit_seconds`` in results written before the one results schema), and
    (not JSON) ``_model`` / ``_encode``.
  """
  split = get_split(dataset)
  paired, unpaired, n_p = data if data is not None else semi_paired(dataset, ratio, seed)
  if method != "rreh" and train_on == "all":
    paired = list(split.train.views)
    unpaired = [v[:0] for v in paired]
    n_p = split.train.num_items
  query, database = split.query, split.database
  if views is not None:
    paired = [paired[i] for i in views]
    unpaired = [unpaired[i] for i in views]
    names = [query.view_names[i] for i in views]
    query, database = query.select_views(names), database.select_views(names)
  rng = jax.random.key(seed)
  rec = dict(method=method, dataset=dataset, bits=int(bits), ratio=float(ratio),
             seed=int(seed), train_on=train_on if method != "rreh" else "semi",
             num_paired=int(n_p), num_unpaired=[int(u.shape[0]) for u in unpaired],
             views=list(query.view_names))
  t0 = time.perf_counter()
  try:
    impl = methods.get(method)
    model = impl.fit(paired, unpaired,
                     {"bits": int(bits), "rreh": dict(rreh_cfg or rreh.DEFAULTS)}, rng)
    enc = lambda x, m: impl.encode(model, x, m)  # noqa: E731
    if method == "rreh":
      rec["num_anchors_used"] = int(np.shape(model.anchor_index)[0])
      rec["objective"] = np.asarray(model.objective).tolist()
    jax.block_until_ready(jax.tree_util.tree_leaves(model))
  except (ValueError, FloatingPointError) as e:  # e.g. bits > n_p; non-finite fit
    rec.update(error=str(e), map={}, train_seconds=time.perf_counter() - t0)
    return rec
  rec["train_seconds"] = time.perf_counter() - t0
  res = evaluate_cross_modal(query, database, enc)
  rec["map"] = {d: r["map"] for d, r in res.items()}
  rec["_model"], rec["_encode"] = model, enc
  return rec


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in rec.items() if not k.startswith("_")}


def summarize(records, keys) -> dict[tuple, dict[str, tuple[float, float, int]]]:
  """Groups records by ``keys``: {group: {direction: (mean, sample std, n)}}."""
  groups: dict[tuple, dict[str, list[float]]] = {}
  for r in records:
    if not r.get("map"):
      continue
    g = groups.setdefault(tuple(r[k] for k in keys), {})
    for d, v in r["map"].items():
      g.setdefault(d, []).append(v)
  return {g: {d: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                  len(v)) for d, v in dd.items()} for g, dd in groups.items()}


def _fmt(cell, want: int | None = None) -> str:
  if cell is None:
    return "n/a"
  m, s, n = cell
  if n == 1:
    return f"{m:.4f} (1 seed)"
  return f"{m:.4f} ± {s:.4f}" + (f" ({n} seeds)" if want and n < want else "")


def _env(args, seeds) -> dict[str, Any]:
  return _common.environment(seeds=list(seeds), quick=bool(args.quick))


def _write(study: str, payload: dict[str, Any], md: str, out: str) -> None:
  _common.write_results(f"rreh_{study}", payload, md, out)
  print(md, flush=True)


def _label(method: str, train_on: str) -> str:
  if method == "rreh":
    return "RREH (semi-paired)"
  return f"{method.upper().replace('_', '-')} ({'paired part' if train_on == 'paired' else 'all pairs'})"


def _baseline_bits(method: str, dataset: str, bits: int) -> int | None:
  # Wikipedia's text view is 10-d LDA: CCA gives at most 10 directions.
  if method == "cca_itq" and dataset == "wikipedia":
    return 10
  return bits


# ----------------------------------------------------------------------------- studies
def study_main(args, seeds, out) -> None:
  bits_list = (16, 64) if args.quick else (16, 32, 64, 128)
  ratios = (0.1, 1.0) if args.quick else (0.05, 0.1, 0.2, 0.5, 1.0)
  datasets = ("wikipedia",) if args.quick else ("wikipedia", "uci")
  if args.datasets:
    datasets = tuple(args.datasets.split(","))
  all_records, cfgs = [], {}

  def report(seeds):
    records = [_clean(r) for r in all_records]
    dsets = [d for d in datasets if any(r["dataset"] == d for r in records)]
    summ = summarize(records, ("dataset", "method", "train_on", "bits", "ratio"))
    md = [f"# RREH main study (mAP@all, mean ± sample std over up to {len(seeds)} seeds;"
          " cells with fewer seeds say so)", ""]
    md.append("RREH hyper-parameters: " + "; ".join(
        f"{d}: {c['source']} {c['values']}" for d, c in cfgs.items()))
    md.append("CCA-ITQ on Wikipedia is run at 10 bits only (text view is 10-d); it "
              "appears in the 64-bit tables as its 10-bit result, marked [10b].")
    md.append("Grid: the paired-ratio sweep is run at 64 bits and the bits sweep at 10% "
              "paired (cells outside this cross are n/a). Baselines on the 'paired part' at "
              "ratio 1.0 are the 'all pairs' runs.")
    md.append("")
    focus_bits = 64
    focus_ratio = 0.1
    for ds in dsets:
      dirs = sorted({d for r in records if r["dataset"] == ds for d in r["map"]})
      md += [f"## {ds}: {focus_bits} bits, RREH at {int(focus_ratio*100)}% paired vs "
             "baselines", "", "| method | train data | " + " | ".join(dirs) + " |",
             "|---|---|" + "---|" * len(dirs)]
      for m in ("rreh",) + BASELINES:
        for to in (("semi",) if m == "rreh" else ("paired", "all")):
          bb = _baseline_bits(m, ds, focus_bits) if m != "rreh" else focus_bits
          rr = 1.0 if to == "all" else focus_ratio
          cell = summ.get((ds, m, to, bb, rr), {})
          tag = " [10b]" if bb != focus_bits else ""
          data_lbl = {"semi": f"{int(rr*100)}% paired + unpaired",
                      "paired": f"{int(rr*100)}% paired part", "all": "all pairs"}[to]
          md.append(f"| {m}{tag} | {data_lbl} | " + " | ".join(
              _fmt(cell.get(d), len(seeds)) for d in dirs) + " |")
      md.append("")
      for d in dirs:
        md += [f"### {ds} {d}: mAP vs paired ratio (rows) and bits (columns)", "",
               "| method | ratio | " + " | ".join(str(b) for b in bits_list) + " |",
               "|---|---|" + "---|" * len(bits_list)]
        for m in ("rreh",) + BASELINES:
          for to in (("semi",) if m == "rreh" else ("paired", "all")):
            for rr in (ratios if to == "semi" else (1.0,) if to == "all"
                       else [x for x in ratios if x != 1.0]):
              cells = []
              for b in bits_list:
                bb = _baseline_bits(m, ds, b) if m != "rreh" else b
                cells.append(_fmt(summ.get((ds, m, to, bb, rr), {}).get(d), len(seeds)))
              md.append(f"| {_label(m, to)} | {rr if to != 'all' else 'all'} | "
                        + " | ".join(cells) + " |")
        md.append("")
        # plots: mAP vs paired ratio at 64 bits; mAP vs bits at 10 %.
        for xname, xs, key in (("ratio", ratios, lambda x: (focus_bits, x)),
                               ("bits", bits_list, lambda x: (x, focus_ratio))):
          curves = {}
          for m in ("rreh",) + BASELINES:
            for to in (("semi",) if m == "rreh" else ("paired", "all")):
              means, stds = [], []
              for x in xs:
                b, rr = key(x)
                bb = _baseline_bits(m, ds, b) if m != "rreh" else b
                rr = 1.0 if to == "all" else rr
                c = summ.get((ds, m, to, bb, rr), {}).get(d)
                means.append(np.nan if c is None else c[0])
                stds.append(0.0 if c is None else c[1])
              if not np.all(np.isnan(means)):
                curves[_label(m, to)] = (np.asarray(means), np.asarray(stds))
          if not curves:
            continue
          plotting.map_vs(
              np.asarray(xs, float), curves,
              "paired ratio" if xname == "ratio" else "bits", logx=xname == "bits",
              title=f"{ds} {d}, " + (f"{focus_bits} bits" if xname == "ratio"
                                     else f"{int(focus_ratio*100)}% paired"),
              path=os.path.join(out, "plots", f"rreh_main{args.tag}_{ds}_"
                                f"{d.replace('->', '2')}"
                                f"_vs_{xname}.png"), figsize=(7.0, 5.0))
    _write("main" + args.tag, dict(env=_env(args, seeds), rreh_config=cfgs, bits=list(bits_list),
                        ratios=list(ratios), records=records,
                        summary=[dict(zip(("dataset", "method", "train_on", "bits",
                                           "ratio"), g), map=v) for g, v in summ.items()]),
           "\n".join(md), out)

  # A cross, not the full grid: the ratio sweep at 64 bits and the bits sweep at 10%.
  # Work units in priority order, so partial results (written after every unit) hold
  # the 64-bit 10% comparison first: (64, 10%) for every seed, then the ratio sweep,
  # then the bits sweep.
  units = [(64, 0.1)] + [(64, r) for r in ratios if r != 0.1] + [
      (b, 0.1) for b in bits_list if b != 64]
  methods = tuple(args.methods.split(","))
  if args.units == "ratio":
    units = [u for u in units if u[0] == 64]
  elif args.units == "bits":
    units = [u for u in units if u[1] == 0.1 and u[0] != 64]
  for ds in datasets:
    cfg, src = load_rreh_config(ds)
    cfgs[ds] = dict(source=src, values=cfg)
  bar = _common.sweep_bar(len(units) * len(datasets) * len(seeds), "rreh_study units")
  for bits, ratio in units:
    for ds in datasets:
      for seed in seeds:
        data = semi_paired(ds, ratio, seed)
        if "rreh" in methods:
          all_records.append(run_one("rreh", ds, bits=bits, ratio=ratio, seed=seed,
                                     rreh_cfg=cfgs[ds]["values"], data=data))
        for b in [b for b in BASELINES if b in methods]:
          bb = _baseline_bits(b, ds, bits)
          if b == "cca_itq" and ds == "wikipedia" and bits != 64:
            continue  # one 10-bit CCA-ITQ run per split is enough
          if ratio != 1.0:
            all_records.append(run_one(b, ds, bits=bb, ratio=ratio, seed=seed,
                                       train_on="paired", data=data))
          if ratio == 0.1:  # baselines on all training pairs, once per bits
            all_records.append(run_one(b, ds, bits=bb, ratio=1.0, seed=seed,
                                       train_on="all"))
        bar.update(1)
        print(f"[main] {ds} bits {bits} ratio {ratio} seed {seed} done", flush=True)
        try:  # partial results after every unit
          report(seeds)
        except Exception:  # pylint: disable=broad-except
          traceback.print_exc()


def study_anchors(args, seeds, out) -> None:
  ks = (50, 100) if args.quick else (100, 200, 400, 600, 1000, 1500, 2000)
  ratios = (1.0,) if args.quick else (1.0, 0.5)
  datasets = ("wikipedia",) if args.quick else ("wikipedia", "uci")
  if args.datasets:
    datasets = tuple(args.datasets.split(","))
  records, cfgs = [], {}

  def report():
    summ = summarize(records, ("dataset", "ratio", "num_anchors_used"))
    md = [f"# RREH: number of anchors (64 bits, mAP@all, {len(seeds)} seeds)", "",
          "k is capped at the number of paired items n_p; capped rows show the k used.",
          ""]
    for ds in [d for d in datasets if any(r["dataset"] == d for r in records)]:
      dirs = sorted({d for r in records if r["dataset"] == ds for d in r["map"]})
      md += [f"## {ds}", "", "| paired ratio | n_p | k used | " + " | ".join(dirs) + " |",
             "|---|---|---|" + "---|" * len(dirs)]
      curves = {}
      for ratio in [x for x in ratios if any(
          r["dataset"] == ds and r["ratio"] == x for r in records)]:
        n_p = next(r["num_paired"] for r in records if r["dataset"] == ds
                   and r["ratio"] == ratio)
        kus = sorted({g[2] for g in summ if g[0] == ds and g[1] == ratio})
        for ku in kus:
          md.append(f"| {ratio} | {n_p} | {ku} | " + " | ".join(
              _fmt(summ[(ds, ratio, ku)].get(d)) for d in dirs) + " |")
        for d in dirs:
          curves[f"{d}, {int(ratio*100)}% paired"] = (
              [summ[(ds, ratio, ku)][d][0] for ku in kus],
              [summ[(ds, ratio, ku)][d][1] for ku in kus], kus)
      md.append("")
      # map_vs needs one shared x: plot each ratio's curves on the union of ks (NaN gaps).
      xs = sorted({ku for c in curves.values() for ku in c[2]})
      pc = {}
      for lbl, (mu, sd, kus) in curves.items():
        mm = dict(zip(kus, mu))
        ss = dict(zip(kus, sd))
        pc[lbl] = (np.asarray([mm.get(x, np.nan) for x in xs]),
                   np.asarray([ss.get(x, 0.0) for x in xs]))
      plotting.map_vs(np.asarray(xs, float), pc, "anchors k", title=f"{ds}, 64 bits",
                      path=os.path.join(out, "plots", f"rreh_anchors_{ds}.png"),
                      figsize=(7.0, 5.0))
    _write("anchors" + args.tag, dict(env=_env(args, seeds), rreh_config=cfgs, ks=list(ks),
                           ratios=list(ratios), records=records), "\n".join(md), out)

  for ds in datasets:
    cfg, src = load_rreh_config(ds)
    cfgs[ds] = dict(source=src, values=cfg)
    for ratio in ratios:
      for seed in seeds:
        data = semi_paired(ds, ratio, seed)
        for k in ks:
          if k > data[2] and (k == ks[0] or ks[ks.index(k) - 1] >= data[2]):
            continue  # already capped at n_p by a smaller k
          r = run_one("rreh", ds, bits=64, ratio=ratio, seed=seed,
                      rreh_cfg=dict(cfg, num_anchors=k), data=data)
          r["num_anchors_requested"] = k
          records.append(_clean(r))
          try:  # partial results after every fit
            report()
          except Exception:  # pylint: disable=broad-except
            traceback.print_exc()
        print(f"[anchors] {ds} ratio {ratio} seed {seed} done", flush=True)


def study_views(args, seeds, out) -> None:
  ratio = 0.1 if not args.quick else 0.5
  cfg, src = load_rreh_config("uci")
  names = list(UCI_VIEWS)
  m = len(names)
  joint = np.full((len(seeds), m, m), np.nan)
  pair = np.full((len(seeds), m, m), np.nan)
  records = []
  pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
  if args.quick:
    pairs = pairs[:2]
  for si, seed in enumerate(seeds):
    data = semi_paired("uci6", ratio, seed)
    r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=cfg, data=data)
    for d, v in r["map"].items():
      a, b = d.split("->")
      joint[si, names.index(a), names.index(b)] = v
    records.append(dict(_clean(r), fit="joint"))
    for a, b in pairs:
      r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=cfg,
                  data=data, views=(a, b))
      pair[si, a, b] = r["map"][f"{names[a]}->{names[b]}"]
      pair[si, b, a] = r["map"][f"{names[b]}->{names[a]}"]
      records.append(dict(_clean(r), fit="pairwise"))
    print(f"[views] seed {seed} done", flush=True)
  jm, pm = np.nanmean(joint, 0), np.nanmean(pair, 0)
  md = [f"# RREH on UCI, all six views (64 bits, {int(ratio*100)}% paired, mAP@all, "
        f"mean over {len(seeds)} seeds)", "",
        "Same semi-paired split for both fits (the six-view split; a pairwise fit sees "
        "the paired rows and the two views' own unpaired rows).", ""]
  for title, mat in (("joint fit on all 6 views", jm), ("pairwise fit (2 views)", pm),
                     ("joint minus pairwise", jm - pm)):
    md += [f"## {title} (row = query view, column = database view)", "",
           "| query \\ db | " + " | ".join(names) + " |", "|---|" + "---|" * m]
    for i in range(m):
      md.append(f"| {names[i]} | " + " | ".join(
          "—" if not np.isfinite(mat[i, j]) else f"{mat[i, j]:.4f}" for j in range(m))
          + " |")
    md.append("")
  off = ~np.eye(m, dtype=bool) & np.isfinite(pm)
  md.append(f"Mean over the {int(off.sum())} evaluated ordered pairs: joint "
            f"{jm[off].mean():.4f}, pairwise {pm[off].mean():.4f}; joint better in "
            f"{int((jm[off] > pm[off]).sum())} of {int(off.sum())}.")
  plotting.map_matrix(jm, names, title="RREH joint (6 views)",
                      path=os.path.join(out, "plots", "rreh_views_joint.png"))
  plotting.map_matrix(pm, names, title="RREH pairwise (2 views)",
                      path=os.path.join(out, "plots", "rreh_views_pairwise.png"))
  _write("views", dict(env=_env(args, seeds), rreh_config=dict(source=src, values=cfg),
                       ratio=ratio, views=names, joint=joint.tolist(),
                       pairwise=pair.tolist(), records=records), "\n".join(md), out)


def _matrix_md(title: str, mat: np.ndarray, names: list[str]) -> list[str]:
  m = len(names)
  md = [f"## {title} (row = query view, column = database view)", "",
        "| query \\ db | " + " | ".join(names) + " |", "|---|" + "---|" * m]
  for i in range(m):
    md.append(f"| {names[i]} | " + " | ".join(
        "—" if not np.isfinite(mat[i, j]) else f"{mat[i, j]:.4f}" for j in range(m))
        + " |")
  return md + [""]


def study_views_weighted(args, seeds, out) -> None:
  """Joint six-view fit, uniform vs label-free view weights, vs pairwise fits."""
  ratio = 0.1 if not args.quick else 0.5
  cfg, src = load_rreh_config("uci")
  names = list(UCI_VIEWS)
  m = len(names)
  fits = ("uniform", "weighted", "pairwise")
  maps = {f: np.full((len(seeds), m, m), np.nan) for f in fits}
  records, chosen_w, load = [], [], [os.getloadavg()]
  pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
  if args.quick:
    pairs = pairs[:2]

  def put(fit, si, r):
    for d, v in r["map"].items():
      a, b = d.split("->")
      maps[fit][si, names.index(a), names.index(b)] = v

  for si, seed in enumerate(seeds):
    data = semi_paired("uci6", ratio, seed)
    r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=cfg, data=data)
    put("uniform", si, r)
    records.append(dict(_clean(r), fit="uniform"))
    # fit(view_weights="auto") = select(key fold_in(key, 1)) then the fit with the
    # chosen values; done in two calls here to record the choice and its table.
    t0 = time.perf_counter()
    auto = dict(cfg, view_weights="auto")
    chosen, table = rreh.select(data[0], data[1], dict(auto, bits=64),
                                jax.random.fold_in(jax.random.key(seed), 1))
    t_select = time.perf_counter() - t0
    wcfg = dict(cfg, **chosen)
    r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=wcfg,
                data=data)
    put("weighted", si, r)
    wrows = [t for t in table if "candidate" in t]
    records.append(dict(_clean(r), fit="weighted", select_seconds=t_select,
                        chosen={k: v for k, v in chosen.items()},
                        weight_candidates=wrows))
    chosen_w.append(dict(seed=seed, chosen=chosen, candidates=wrows,
                         select_seconds=t_select, fit_seconds=r["train_seconds"]))
    for a, b in pairs:
      r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=cfg,
                  data=data, views=(a, b))
      maps["pairwise"][si, a, b] = r["map"][f"{names[a]}->{names[b]}"]
      maps["pairwise"][si, b, a] = r["map"][f"{names[b]}->{names[a]}"]
      records.append(dict(_clean(r), fit="pairwise"))
    load.append(os.getloadavg())
    print(f"[views_weighted] seed {seed} done", flush=True)
    _views_weighted_report(args, seeds[:si + 1], out, cfg, src, ratio, names,
                           {f: x[:si + 1] for f, x in maps.items()}, records,
                           chosen_w, load)


def _views_weighted_report(args, seeds, out, cfg, src, ratio, names, maps, records,
                           chosen_w, load) -> None:
  m = len(names)
  mean = {f: np.nanmean(x, 0) for f, x in maps.items()}
  off = ~np.eye(m, dtype=bool) & np.isfinite(mean["pairwise"])
  n_off = int(off.sum())
  md = [f"# RREH on UCI, six views: uniform vs label-free view weights vs pairwise "
        f"(64 bits, {int(ratio * 100)}% paired, mAP@all, mean over {len(seeds)} "
        f"seed(s): {list(seeds)})", "",
        f"Command: `{_common.command()}`; settings {src} (theta, lam, init_v and the "
        "W ridge's cap chosen by the label-free criterion, library default). Load average (1, 5, 15 min) "
        "at the start and after each seed: "
        + ", ".join("(" + ", ".join(f"{x:.2f}" for x in la) + ")" for la in load)
        + ". The machine's 2 cores were shared with other jobs.", "",
        "Same semi-paired split for every fit (the six-view split; a pairwise fit sees "
        "the paired rows and the two views' own unpaired rows). Weighted = "
        "`view_weights=\"auto\"` (docs/rreh.md#weights).", ""]
  md += ["## Summary over the 30 ordered view pairs", "",
         "| fit | mean mAP | best of the three in | beats pairwise in |",
         "|---|---|---|---|"]
  stack = np.stack([mean[f] for f in ("uniform", "weighted", "pairwise")])
  best = np.argmax(np.where(np.isfinite(stack), stack, -np.inf), axis=0)
  for k, f in enumerate(("uniform", "weighted", "pairwise")):
    beats = "—" if f == "pairwise" else (
        f"{int((mean[f][off] > mean['pairwise'][off]).sum())} of {n_off}")
    md.append(f"| {f} | {mean[f][off].mean():.4f} | {int((best[off] == k).sum())} of "
              f"{n_off} | {beats} |")
  md.append("")
  md.append(f"Weighted vs uniform (joint fits): weighted better in "
            f"{int((mean['weighted'][off] > mean['uniform'][off]).sum())} of {n_off}, "
            f"mean difference {(mean['weighted'] - mean['uniform'])[off].mean():+.4f}.")
  md.append("")
  md += ["## Chosen weights (normalised to sum 6) and the criterion's scores", "",
         "| seed | chosen | " + " | ".join(names) + " | select s | fit s |",
         "|---|---|" + "---|" * m + "---|---|"]
  for c in chosen_w:
    w = c["chosen"].get("view_weights") or (1.0,) * m
    win = max(c["candidates"], key=lambda r: r["score"])["candidate"]
    md.append(f"| {c['seed']} | {win} | " + " | ".join(f"{x:.3f}" for x in w)
              + f" | {c['select_seconds']:.1f} | {c['fit_seconds']:.1f} |")
  md.append("")
  md += ["| seed | " + " | ".join(r["candidate"] for r in chosen_w[0]["candidates"])
         + " |", "|---|" + "---|" * len(chosen_w[0]["candidates"])]
  for c in chosen_w:
    md.append(f"| {c['seed']} | " + " | ".join(f"{r['score']:.4f}"
                                              for r in c["candidates"]) + " |")
  md += ["", "(the selection criterion (rreh.select's default, the neighbourhood "
         "score since 2026-12-05), mean over 3 folds; down_i: view i at weight 0.1 "
         "before normalising; views in order " + ", ".join(
             f"{i}={n}" for i, n in enumerate(names)) + ")", ""]
  secs = {f: [r["train_seconds"] for r in records if r.get("fit") == f]
          for f in ("uniform", "weighted", "pairwise")}
  md += ["## Timings (train_seconds: selection + final fit, per fit)", "",
         "| fit | fits | mean s | total s |", "|---|---|---|---|"]
  for f, v in secs.items():
    extra = [c["select_seconds"] for c in chosen_w] if f == "weighted" else [0] * len(v)
    tot = np.asarray(v) + np.asarray(extra)
    md.append(f"| {f} | {len(v)} | {tot.mean():.1f} | {tot.sum():.1f} |")
  md += ["", "(weighted: the `select` call with the weight search plus the final fit "
         "with the chosen values, i.e. what `fit(view_weights=\"auto\")` costs.)", ""]
  md += _matrix_md("joint, uniform weights", mean["uniform"], names)
  md += _matrix_md("joint, label-free weights", mean["weighted"], names)
  md += _matrix_md("pairwise fits (2 views)", mean["pairwise"], names)
  md += _matrix_md("weighted minus uniform", mean["weighted"] - mean["uniform"], names)
  md += _matrix_md("weighted minus pairwise", mean["weighted"] - mean["pairwise"],
                   names)
  _write("views_weighted", dict(
      env=_env(args, seeds), load_average=load,
      rreh_config=dict(source=src, values=cfg), ratio=ratio, views=names,
      maps={f: x.tolist() for f, x in maps.items()}, weights=chosen_w,
      records=records), "\n".join(md), out)


def subsets_verdict(uniform: np.ndarray, auto: np.ndarray) -> dict[str, Any]:
  """The pre-set rule of ``views_subsets`` on per-subset seed means ``[S]``:
  ``auto`` wins if its mean is higher, it is higher on >= 2/3 of the subsets and no
  subset is lower by more than 0.01."""
  diff = np.asarray(auto, np.float64) - np.asarray(uniform, np.float64)
  higher = int((diff > 0).sum())
  return dict(mean_difference=float(diff.mean()), higher=higher, subsets=int(diff.size),
              worst=float(diff.min()),
              auto_wins=bool(diff.mean() > 0 and 3 * higher >= 2 * diff.size
                             and diff.min() >= -0.01))


def study_views_subsets(args, seeds, out) -> None:
  """Uniform vs label-free view weights on every 3-, 4- and 5-view subset of UCI."""
  ratio = 0.1 if not args.quick else 0.5
  cfg, src = load_rreh_config("uci")
  names = list(UCI_VIEWS)
  subsets = [c for r in (3, 4, 5) for c in itertools.combinations(range(len(names)), r)]
  if args.quick:
    subsets = subsets[:1]
  fits = {"uniform": dict(cfg), "auto": dict(cfg, view_weights="auto")}
  scores = {f: np.full((len(seeds), len(subsets)), np.nan) for f in fits}
  records, load = [], [os.getloadavg()]
  for si, seed in enumerate(seeds):
    data = semi_paired("uci6", ratio, seed)
    for j, sub in enumerate(subsets):
      for f, c in fits.items():
        r = run_one("rreh", "uci6", bits=64, ratio=ratio, seed=seed, rreh_cfg=c,
                    data=data, views=sub)
        if r["map"]:
          scores[f][si, j] = float(np.mean(list(r["map"].values())))
        records.append(dict(_clean(r), fit=f, subset=[names[i] for i in sub]))
    load.append(os.getloadavg())
    print(f"[views_subsets] seed {seed} done", flush=True)
  mean = {f: np.nanmean(x, 0) for f, x in scores.items()}
  verdict = subsets_verdict(mean["uniform"], mean["auto"])
  md = [f"# RREH on UCI view subsets: uniform vs label-free view weights (64 bits, "
        f"{int(ratio * 100)}% paired, mAP@all averaged over each subset's ordered view "
        f"pairs, mean over {len(seeds)} seed(s): {list(seeds)})", "",
        f"Command: `{_common.command()}`; settings {src} (theta, lam, init_v and the "
        "W ridge's cap chosen by the label-free criterion, library default); the "
        "six-view semi-paired split of each seed, restricted to the subset's views. "
        "Load average (1, 5, 15 min) at the start and after each seed: "
        + ", ".join("(" + ", ".join(f"{x:.2f}" for x in la) + ")" for la in load)
        + ".", "",
        "Rule fixed before the run: `view_weights=\"auto\"` becomes the default for "
        "M >= 3 if it is higher on average, higher on at least two thirds of the "
        "subsets and nowhere lower by more than 0.01.", "",
        f"**Verdict: auto {'wins' if verdict['auto_wins'] else 'does not win'}**: mean "
        f"difference {verdict['mean_difference']:+.4f}, higher on {verdict['higher']} "
        f"of {verdict['subsets']} subsets, worst {verdict['worst']:+.4f}.", ""]
  md += ["| views | M | uniform | auto | auto - uniform |", "|---|---|---|---|---|"]
  sizes = np.asarray([len(sub) for sub in subsets])
  for r in (3, 4, 5):
    of_r = sizes == r
    if of_r.any():
      u, a = mean["uniform"][of_r], mean["auto"][of_r]
      md.append(f"| all {int(of_r.sum())} subsets of {r} | {r} | {u.mean():.4f} | "
                f"{a.mean():.4f} | {(a - u).mean():+.4f} (higher in "
                f"{int(np.sum(a > u))}) |")
  for j, sub in enumerate(subsets):
    md.append(f"| {'+'.join(names[i] for i in sub)} | {len(sub)} | "
              f"{mean['uniform'][j]:.4f} | {mean['auto'][j]:.4f} | "
              f"{mean['auto'][j] - mean['uniform'][j]:+.4f} |")
  _write("views_subsets", dict(
      env=_env(args, seeds), load_average=load, rreh_config=dict(source=src, values=cfg),
      ratio=ratio, views=names, subsets=[[names[i] for i in s] for s in subsets],
      scores={f: x.tolist() for f, x in scores.items()}, verdict=verdict,
      records=records), "\n".join(md), out)


def study_sensitivity(args, seeds, out) -> None:
  cfg, src = load_rreh_config("wikipedia")
  grid = (0.1, 1.0, 10.0) if args.quick else (0.01, 0.1, 1.0, 10.0, 100.0)
  params = ("theta", "beta", "lam")
  variants = [("chosen", {})]
  variants.append(("kernel=False", dict(kernel=False)))
  # Ablation: RREH on the paired 10% alone (unpaired items dropped).
  variants.append(("no unpaired items", dict(_paired_only=True)))
  for p in params:
    for f in grid:
      if f != 1.0:
        variants.append((f"{p}={cfg[p] * f:g}", {p: cfg[p] * f}))
  records = []
  for seed in seeds:
    data = semi_paired("wikipedia", 0.1, seed)
    for name, over in variants:
      if over.get("beta", 1.0) == 0.0:
        continue
      over = dict(over)
      d = data
      if over.pop("_paired_only", False):
        d = (data[0], [u[:0] for u in data[1]], data[2])
      r = run_one("rreh", "wikipedia", bits=64, ratio=0.1, seed=seed,
                  rreh_cfg=dict(cfg, **over), data=d)
      r["variant"] = name
      records.append(_clean(r))
    print(f"[sensitivity] seed {seed} done", flush=True)
  summ = summarize(records, ("variant",))
  dirs = sorted(records[0]["map"])
  md = [f"# RREH sensitivity, Wikipedia 64 bits 10% paired ({len(seeds)} seeds, "
        "mAP@all)", "", f"Chosen values ({src}): theta={cfg['theta']:g}, "
        f"beta={cfg['beta']:g}, lam={cfg['lam']:g}, k={cfg['num_anchors']}, "
        f"iterations={cfg['iterations']}, kernel={cfg['kernel']}.", "",
        "| variant | " + " | ".join(dirs) + " |", "|---|" + "---|" * len(dirs)]
  for name, _ in variants:
    if (name,) in summ:
      md.append(f"| {name} | " + " | ".join(_fmt(summ[(name,)].get(d)) for d in dirs)
                + " |")
  for p in params:
    xs = np.asarray([cfg[p] * f for f in grid])
    curves = {}
    for d in dirs:
      cells = [summ.get(("chosen",) if f == 1.0 else (f"{p}={cfg[p] * f:g}",), {})
               .get(d) for f in grid]
      curves[d] = (np.asarray([c[0] for c in cells]), np.asarray([c[1] for c in cells]))
    plotting.map_vs(xs, curves, p, logx=True, title=f"Wikipedia, 64 bits, 10%: {p}",
                    path=os.path.join(out, "plots", f"rreh_sensitivity_{p}.png"))
  _write("sensitivity", dict(env=_env(args, seeds), rreh_config=dict(
      source=src, values=cfg), grid_factors=list(grid), records=records),
         "\n".join(md), out)


def study_objective(args, seeds, out) -> None:
  md = ["# RREH objective per iteration (64 bits)", "",
        "| data set | paired ratio | seed | first | last | monotone non-increasing |",
        "|---|---|---|---|---|---|"]
  records = []
  datasets = ("wikipedia",) if args.quick else ("wikipedia", "uci")
  for ds in datasets:
    cfg, src = load_rreh_config(ds)
    for ratio in (0.1, 1.0):
      r = run_one("rreh", ds, bits=64, ratio=ratio, seed=seeds[0], rreh_cfg=cfg)
      obj = np.asarray(r["objective"])
      mono = bool(np.all(np.diff(obj) <= 1e-5 * np.abs(obj[:-1])))
      md.append(f"| {ds} | {ratio} | {seeds[0]} | {obj[0]:.6g} | {obj[-1]:.6g} | "
                f"{mono} |")
      records.append(dict(_clean(r), monotone=mono, config_source=src))
      plotting.objective_curve(obj, title=f"RREH objective, {ds}, {int(ratio*100)}% "
                               "paired, 64 bits",
                               path=os.path.join(out, "plots",
                                                 f"rreh_objective_{ds}_{ratio:g}.png"))
  _write("objective", dict(env=_env(args, seeds), records=records), "\n".join(md), out)


STUDIES = dict(main=study_main, anchors=study_anchors, views=study_views,
               views_weighted=study_views_weighted, views_subsets=study_views_subsets,
               sensitivity=study_sensitivity, objective=study_objective)


def main(argv=None) -> None:
  p = _common.parser("rreh_study", __doc__)
  p.add_argument("study", choices=tuple(STUDIES) + ("all",))
  p.add_argument("--seeds", type=int, default=None,
                 help="number of seeds (default: 5 for main, 3 otherwise; 1 quick)")
  p.add_argument("--quick", action="store_true", help="tiny smoke run")
  p.add_argument("--datasets", default=None,
                 help="main / anchors only: comma-separated subset of wikipedia,uci")
  p.add_argument("--tag", default="", help="suffix of the output file names")
  p.add_argument("--methods", default="rreh,cca_itq,cvh,cmfh",
                 help="main only: comma-separated methods to run")
  p.add_argument("--units", default="all", choices=("all", "ratio", "bits"),
                 help="main only: all units, the 64-bit ratio sweep (with 64-bit 10%%), "
                 "or the 10%% bits sweep without 64 bits")
  args = p.parse_args(argv)
  names = tuple(STUDIES) if args.study == "all" else (args.study,)
  for name in names:
    n = args.seeds or (1 if args.quick else (5 if name == "main" else 3))
    t0 = time.perf_counter()
    STUDIES[name](args, list(range(n)), args.out)
    print(f"[{name}] {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
  main()
