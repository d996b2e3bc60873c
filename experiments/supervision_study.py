"""When does supervision beat RREH? Frozen-feature DCGH with 1-100% of the labels vs RREH.

Issue 18, item 6 (the paper's open question 3). For each data set (Wikipedia, UCI
fac+pix), seed and label fraction f, frozen-feature DCGH (configs/dcgh_<data>_features.py,
64 bits) trains with ``label_fraction=f``: only a seeded f of the training items keep
their labels (hashjax.data.labelled_positions: a prefix of
``default_rng(seed).permutation(n)``, so for one seed the 1% set lies inside the 5%
set, ...). DCGH trains on the labelled items only and selects its epoch on validation
queries drawn from the labelled items (their number scaled by f), so no run sees more
labels than f allows (docs/dcgh.md#labels). RREH (configs/rreh_<data>.py: 10% paired,
library defaults, no labels) runs with the same seeds; both use the same test queries
and database (every training item). Both go through the method registry
(``hashjax.methods.get(name).train_and_evaluate_fn()``).

  nice -n 10 python experiments/supervision_study.py --out experiments/results
  python experiments/supervision_study.py --seeds 3 --epochs 50   # quicker
  python experiments/supervision_study.py --render --out experiments/results
  python experiments/supervision_study.py --redo rreh --out experiments/results  # new RREH

Writes <out>/supervision_study.{json,md} after every run and, at the end (or with
``--render``), <out>/plots/supervision_study.png (mAP vs label fraction, RREH as a
band). Resumable: runs already in <out>/supervision_study.json are skipped, so a killed
study continues where it stopped (the epochs must match the saved ones).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time

import _common

NAME = "supervision_study"
DCGH_CONFIGS = {"wikipedia": "dcgh_wikipedia_features", "uci": "dcgh_uci_features"}
RREH_CONFIGS = {"wikipedia": "rreh_wikipedia", "uci": "rreh_uci"}
DIRECTIONS = {"wikipedia": ("I->T", "T->I"), "uci": ("fac->pix", "pix->fac")}
FRACTIONS = "0.01,0.05,0.1,0.2,0.5,1.0"


def _config(name: str, arg: str):
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  return load_config_file(os.path.join(_common.ROOT, "configs", f"{name}.py"), arg)


def _load() -> list[float]:
  return [round(x, 2) for x in os.getloadavg()]


def _maps(results: dict) -> tuple[float, float]:
  """(first view -> second, second -> first) mAP@all of a results record."""
  first, second = list(results)[:2]   # image->text / fac->pix first, as configured
  return float(results[first]["map"]), float(results[second]["map"])


def labelled_classes(dataset: str, fraction: float, seed: int) -> tuple[int, int]:
  """(labelled items, classes among them), from the documented draw (for the table)."""
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top

  cfg = _config(DCGH_CONFIGS[dataset], f"seed={seed}")
  train = hdata.get_retrieval_split(cfg.data).train
  pos = hdata.labelled_positions(train.num_items, fraction, seed=int(cfg.labels.seed))
  return int(pos.size), int((train.labels[pos].sum(0) > 0).sum())


def run_dcgh(dataset: str, fraction: float, seed: int, bits: int,
             epochs: int | None) -> dict:
  from hashjax import methods  # pylint: disable=g-import-not-at-top

  arg = f"bits={bits},seed={seed},label_fraction={fraction}" + (
      f",epochs={epochs}" if epochs else "")
  cfg = _config(DCGH_CONFIGS[dataset], arg)
  cfg.progress_bar = False
  workdir = tempfile.mkdtemp(prefix=f"superv_{dataset}_{fraction}_{seed}_")
  load0 = _load()
  try:
    t0 = time.perf_counter()
    res = methods.get("dcgh").train_and_evaluate_fn()(cfg, workdir)
    seconds = time.perf_counter() - t0
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  det = res["details"]
  i2t, t2i = _maps(res["results"])
  num_labelled, classes = labelled_classes(dataset, fraction, seed)
  assert num_labelled == res["num_train"] + det["num_validation"], (num_labelled, res)
  return {
      "method": "dcgh", "dataset": dataset, "fraction": fraction, "seed": seed,
      "bits": bits, "epochs": int(cfg.num_epochs), "label_seed": int(cfg.labels.seed),
      "num_labelled": num_labelled, "labelled_classes": classes,
      "num_train": res["num_train"], "num_validation": det["num_validation"],
      "num_query": res["num_query"], "num_database": res["num_database"],
      "selected_epoch": det["selected"]["epoch"],
      "val_mean_map": det["selected"]["validation"]["mean_map"],
      "i2t_map": i2t, "t2i_map": t2i,
      "best_on_query_i2t": det["best_on_query"]["i2t"]["map"],
      "best_on_query_t2i": det["best_on_query"]["t2i"]["map"],
      "seconds": seconds, "load_before": load0, "load_after": _load(),
  }


def run_rreh(dataset: str, seed: int, bits: int) -> dict:
  from hashjax import methods  # pylint: disable=g-import-not-at-top

  cfg = _config(RREH_CONFIGS[dataset], f"bits={bits},seed={seed}")
  load0 = _load()
  t0 = time.perf_counter()
  res = methods.get("rreh").train_and_evaluate_fn()(cfg, None)
  seconds = time.perf_counter() - t0
  i2t, t2i = _maps(res["results"])
  return {
      "method": "rreh", "dataset": dataset, "fraction": None, "seed": seed, "bits": bits,
      "paired_ratio": float(cfg.semi_paired.paired_ratio),
      "num_train": res["num_train"], "num_query": res["num_query"],
      "num_database": res["num_database"], "i2t_map": i2t, "t2i_map": t2i,
      "chosen": res.get("details", {}).get("hyper_selection", {}).get("chosen"),
      "seconds": seconds, "load_before": load0, "load_after": _load(),
  }


def key(r: dict) -> tuple:
  return (r["method"], r["dataset"], r["fraction"], r["seed"])


# ----------------------------------------------------------------------------- report


def _cells(runs: list[dict], dataset: str) -> tuple[dict, list[dict]]:
  rreh = [r for r in runs if r["method"] == "rreh" and r["dataset"] == dataset]
  dcgh = [r for r in runs if r["method"] == "dcgh" and r["dataset"] == dataset]
  by_f: dict = {}
  for r in dcgh:
    by_f.setdefault(r["fraction"], []).append(r)
  return dict(sorted(by_f.items())), rreh


def answer(runs: list[dict], dataset: str, k: str) -> str:
  """The smallest label fraction from which DCGH's mean beats RREH's (and stays ahead)."""
  by_f, rreh = _cells(runs, dataset)
  if not by_f or not rreh:
    return "n/a"
  r = _common.summary([x[k] for x in rreh])
  stats = {f: _common.summary([x[k] for x in rs]) for f, rs in by_f.items()}
  fs = sorted(stats)
  ahead = [f for f in fs if stats[f]["mean"] > r["mean"]]
  clear = [f for f in fs
           if stats[f]["mean"] - stats[f]["std"] > r["mean"] + r["std"]]

  def first_from(sel):
    """The smallest f such that every fraction >= f is in ``sel``."""
    out = None
    for f in reversed(fs):
      if f not in sel:
        break
      out = f
    return out

  a, c = first_from(ahead), first_from(clear)

  def pct(f):
    return f"{100 * f:g}%"

  if a is None:
    return "never (up to 100%)"
  text = f"from {pct(a)} (mean above RREH's)"
  if c is not None:
    text += f"; clearly (mean - std > RREH mean + std) from {pct(c)}"
  else:
    text += "; never clearly (within one std)"
  below = [f for f in fs if f < a]
  if below:
    text += f"; below at {', '.join(pct(f) for f in below)}"
  return text


def render(meta: dict, runs: list[dict]) -> str:
  ms = _common.mean_std
  sess = meta.get("sessions", [])
  total = sum(s["seconds"] for s in sess)
  loads = [x for s in sess for x in (s.get("load_before"), s.get("load_after")) if x]
  run_loads = [r["load_before"][0] for r in runs] + [r["load_after"][0] for r in runs]
  n_dcgh = sum(r["method"] == "dcgh" for r in runs)
  n_rreh = sum(r["method"] == "rreh" for r in runs)
  epochs = sorted({r["epochs"] for r in runs if r["method"] == "dcgh"})
  lines = [
      "# When does supervision beat RREH? (issue 18, item 6; open question 3)",
      "",
      "Commands: " + "; ".join(
          f"`{s['command']}` ({s['date']}, {s['seconds'] / 60:.1f} min)" for s in sess)
      + ".",
      (f"{meta['devices']}, {meta['cpu_count']} cores; {total / 60:.1f} min in all; "
       f"{n_dcgh}/{meta['planned_dcgh']} DCGH and {n_rreh}/{meta['planned_rreh']} RREH "
       f"runs; 1-min load average per run {min(run_loads, default=0):.2f}-"
       f"{max(run_loads, default=0):.2f} (before / after each session: "
       + ", ".join(f"{a[0]:.2f}" for a in loads) + ")."),
      "",
      (f"DCGH: frozen-feature configs, {meta['bits']} bits, "
       f"{', '.join(map(str, epochs))} epochs, trained on the labelled items only, epoch "
       "selected on validation queries drawn from the labelled items "
       "(docs/dcgh.md#labels). RREH: 10% paired + unpaired items, library defaults "
       "(theta, lam, init_v chosen without labels), no labels. Same seeds, same test "
       "queries and database. mAP@all, mean ± std (ddof 1) over seeds. 'labelled' = "
       "labelled items (train + validation) and the classes among them (range over "
       "seeds)."),
      "",
  ]
  for ds in meta["datasets"]:
    by_f, rreh = _cells(runs, ds)
    d1, d2 = DIRECTIONS[ds]
    lines += [f"**{ds}** ({meta['bits']} bits)", "",
              (f"| method | label fraction | labelled (classes) | seeds | {d1} | {d2} | "
               "selected epoch | s/run |"),
              "|---|---|---|---|---|---|---|---|"]
    for f, rs in by_f.items():
      cls = sorted({r["labelled_classes"] for r in rs})
      cls_s = str(cls[0]) if len(cls) == 1 else f"{cls[0]}-{cls[-1]}"
      lines.append(
          f"| DCGH | {100 * f:g}% | {rs[0]['num_labelled']} ({cls_s}) | {len(rs)} | "
          f"{ms([r['i2t_map'] for r in rs])} | {ms([r['t2i_map'] for r in rs])} | "
          f"{statistics.mean(r['selected_epoch'] for r in rs):.0f} | "
          f"{statistics.mean(r['seconds'] for r in rs):.1f} |")
    if rreh:
      lines.append(
          f"| RREH (no labels, 10% paired) | 0 | 0 | {len(rreh)} | "
          f"{ms([r['i2t_map'] for r in rreh])} | {ms([r['t2i_map'] for r in rreh])} | "
          f"- | {statistics.mean(r['seconds'] for r in rreh):.1f} |")
    lines += ["", f"Supervision beats RREH on {ds}:",
              f"- {d1}: {answer(runs, ds, 'i2t_map')}",
              f"- {d2}: {answer(runs, ds, 't2i_map')}", ""]
  return "\n".join(lines)


def plot(runs: list[dict], meta: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  dss = [d for d in meta["datasets"] if any(r["dataset"] == d for r in runs)]
  fig = Figure(figsize=(5.2 * len(dss), 3.8))
  for i, ds in enumerate(dss):
    ax = fig.add_subplot(1, len(dss), i + 1)
    by_f, rreh = _cells(runs, ds)
    fs = list(by_f)
    for k, d, color in (("i2t_map", DIRECTIONS[ds][0], "C0"),
                        ("t2i_map", DIRECTIONS[ds][1], "C1")):
      if fs:
        st = [_common.summary([r[k] for r in by_f[f]]) for f in fs]
        ax.errorbar(fs, [s["mean"] for s in st], yerr=[s["std"] for s in st],
                    marker="o", capsize=3, color=color, label=f"DCGH {d}")
      if rreh:
        s = _common.summary([r[k] for r in rreh])
        ax.axhspan(s["mean"] - s["std"], s["mean"] + s["std"], color=color, alpha=0.15)
        ax.axhline(s["mean"], color=color, ls="--", lw=1,
                   label=f"RREH {d} (no labels, 10% paired; band ± std)")
    ax.set_xscale("log")
    ax.set_xticks(fs or [0.01, 1.0])
    ax.set_xticklabels([f"{100 * f:g}%" for f in (fs or [0.01, 1.0])])
    ax.set_xlabel("fraction of training labels (DCGH)")
    ax.set_ylabel("mAP@all")
    ax.set_title(f"{ds}, {meta['bits']} bits (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=120)


def _write(payload: dict, out: str, with_plot: bool) -> str:
  md = render(payload["meta"], payload["runs"])
  if with_plot:
    plot(payload["runs"], payload["meta"], os.path.join(out, "plots", f"{NAME}.png"))
  _common.write_results(NAME, payload, md, out)
  return md


def main(argv: list[str] | None = None):
  ap = _common.parser(NAME, __doc__)
  ap.add_argument("--datasets", default="wikipedia,uci")
  ap.add_argument("--fractions", default=FRACTIONS)
  ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
  ap.add_argument("--bits", type=int, default=64)
  ap.add_argument("--epochs", type=int, default=None,
                  help="DCGH epochs (default: the config's, 100)")
  ap.add_argument("--redo", default="", choices=("", "rreh", "dcgh"),
                  help="drop the saved runs of this method first and run them again "
                       "(e.g. after RREH's defaults changed)")
  ap.add_argument("--render", action="store_true",
                  help="only rewrite the markdown and the plot from <out>/" + NAME + ".json")
  args = ap.parse_args(argv)
  path = os.path.join(args.out, f"{NAME}.json")
  saved = None
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
  if args.render:
    if saved is None:
      ap.error(f"--render: {path} does not exist")
    print(_write(saved, args.out, True))
    return
  datasets = args.datasets.split(",")
  unknown = [d for d in datasets if d not in DCGH_CONFIGS]
  if unknown:
    ap.error(f"unknown data sets {unknown}; known: {list(DCGH_CONFIGS)}")
  fractions = [float(x) for x in args.fractions.split(",")]
  if any(not 0 < f <= 1 for f in fractions):
    ap.error(f"--fractions must lie in (0, 1], got {fractions}")
  epochs = args.epochs or 100
  if saved is not None:
    meta, runs = saved["meta"], saved["runs"]
    if meta["epochs"] != epochs or meta["bits"] != args.bits:
      ap.error(f"{path} holds epochs={meta['epochs']}, bits={meta['bits']}; asked "
               f"epochs={epochs}, bits={args.bits} (use another --out)")
  else:
    meta = _common.environment(bits=args.bits, epochs=epochs, sessions=[])
    runs = []
  if args.redo:
    dropped = [r for r in runs if r["method"] == args.redo]
    runs = [r for r in runs if r["method"] != args.redo]
    print(f"--redo {args.redo}: dropped {len(dropped)} saved runs", flush=True)
  meta["datasets"] = list(dict.fromkeys(meta.get("datasets", []) + datasets))
  meta["fractions"] = sorted(set(meta.get("fractions", [])) | set(fractions))
  meta["seeds"] = sorted(set(meta.get("seeds", [])) | set(range(args.seeds)))
  meta["planned_dcgh"] = len(meta["datasets"]) * len(meta["fractions"]) * len(meta["seeds"])
  meta["planned_rreh"] = len(meta["datasets"]) * len(meta["seeds"])
  done = {tuple(key(r)) for r in runs}
  todo = []
  for s in range(args.seeds):   # seeds outermost: a cut-short study covers every cell
    for ds in datasets:
      todo.append(("rreh", ds, None, s))
      todo += [("dcgh", ds, f, s) for f in fractions]
  todo = [t for t in todo if t not in done]
  print(f"{len(done)} runs on disk, {len(todo)} to go", flush=True)
  if not todo:
    return
  session = {"command": _common.command(), "date": _common.environment()["date"],
             "seconds": 0.0, "load_before": _load(), "load_after": None}
  meta["sessions"].append(session)
  t0 = time.perf_counter()
  bar = _common.sweep_bar(len(todo), NAME)
  payload = {"meta": meta, "runs": runs}
  for method, ds, f, s in todo:
    r = (run_rreh(ds, s, args.bits) if method == "rreh"
         else run_dcgh(ds, f, s, args.bits, args.epochs))
    runs.append(r)
    bar.update(1)
    print(json.dumps(r), flush=True)
    session["seconds"] = time.perf_counter() - t0
    session["load_after"] = _load()
    _write(payload, args.out, False)
  bar.close()
  session["seconds"] = time.perf_counter() - t0
  session["load_after"] = _load()
  print(_write(payload, args.out, True))


if __name__ == "__main__":
  main()
