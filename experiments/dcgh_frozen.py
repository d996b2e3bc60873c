"""Frozen-feature DCGH on Wikipedia and UCI: bits x seeds -> JSON + markdown table.

DCGH's loss, optimiser and schedule (SPEC §2) with MLP towers on each data set's fixed
features (configs/dcgh_wikipedia_features.py, configs/dcgh_uci_features.py). Each run
selects its evaluation (every 5 epochs) on validation queries held out of training
and reports query mAP@all there; the best query mAP over all evaluations (what papers
report) is listed separately, labelled.

  nice -n 10 python experiments/dcgh_frozen.py            # full study
  python experiments/dcgh_frozen.py --seeds=2 --epochs=20  # quicker

Writes experiments/results/dcgh_frozen.{json,md} (rewritten after every run, so an
interrupted study leaves its finished runs on disk).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import shutil
import statistics
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = {"wikipedia": "dcgh_wikipedia_features", "uci_mfeat": "dcgh_uci_features"}


def _get_config(name: str, arg: str):
  spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def run_one(dataset: str, bits: int, seed: int, epochs: int | None) -> dict:
  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top

  arg = f"bits={bits},seed={seed}" + (f",epochs={epochs}" if epochs else "")
  cfg = _get_config(CONFIGS[dataset], arg)
  cfg.progress_bar = False
  workdir = tempfile.mkdtemp(prefix=f"dcgh_{dataset}_{bits}_{seed}_")
  try:
    t0 = time.perf_counter()
    res = train.train_and_evaluate(cfg, workdir)
    seconds = time.perf_counter() - t0
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  sel = res["selected"]
  return {
      "dataset": dataset, "bits": bits, "seed": seed, "epochs": int(cfg.num_epochs),
      "selected_epoch": sel["epoch"], "val_mean_map": sel["validation"]["mean_map"],
      "i2t_map": sel["query"]["i2t_map"], "t2i_map": sel["query"]["t2i_map"],
      "i2t_map@100": sel["query"].get("i2t_map@100"),
      "t2i_map@100": sel["query"].get("t2i_map@100"),
      "best_on_query_i2t": res["best_on_query"]["i2t"]["map"],
      "best_on_query_t2i": res["best_on_query"]["t2i"]["map"],
      "num_train": res["num_train"], "num_validation": res["num_validation"],
      "num_query": res["num_query"], "num_database": res["num_database"],
      "seconds": seconds,
  }


def _ms(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.4f}"
  return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(runs: list[dict]) -> str:
  lines = [
      "| data set | bits | seeds | I->T mAP (selected) | T->I mAP (selected) | "
      "I->T best-on-query | T->I best-on-query | selected epoch | s/run |",
      "|---|---|---|---|---|---|---|---|---|"]
  keys = sorted({(r["dataset"], r["bits"]) for r in runs})
  for ds, b in keys:
    rs = [r for r in runs if r["dataset"] == ds and r["bits"] == b]
    col = lambda k, rs=rs: [r[k] for r in rs]  # noqa: E731
    lines.append(
        f"| {ds} | {b} | {len(rs)} | {_ms(col('i2t_map'))} | {_ms(col('t2i_map'))} | "
        f"{_ms(col('best_on_query_i2t'))} | {_ms(col('best_on_query_t2i'))} | "
        f"{statistics.mean(col('selected_epoch')):.0f} | "
        f"{statistics.mean(col('seconds')):.1f} |")
  return "\n".join(lines)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--datasets", default="wikipedia,uci_mfeat")
  ap.add_argument("--bits", default="16,32,64,128")
  ap.add_argument("--seeds", type=int, default=5)
  ap.add_argument("--epochs", type=int, default=None, help="default: the config's (100)")
  ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
  args = ap.parse_args()
  import jax  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  meta = {
      "command": "python experiments/dcgh_frozen.py " + " ".join(
          f"--{k}={v}" for k, v in vars(args).items() if k != "out" and v is not None),
      "datasets": args.datasets.split(","), "bits": [int(x) for x in args.bits.split(",")],
      "seeds": list(range(args.seeds)), "epochs": args.epochs or 100,
      "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
      "cpu_count": os.cpu_count(), "platform": platform.platform(),
      "python": platform.python_version(), "jax": jax.__version__,
      "numpy": np.__version__,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
  runs = []
  t0 = time.perf_counter()
  for s in meta["seeds"]:   # seeds outermost: a cut-short study still covers every cell
    for ds in meta["datasets"]:
      for b in meta["bits"]:
        r = run_one(ds, b, s, args.epochs)
        runs.append(r)
        print(json.dumps(r), flush=True)
        meta["total_seconds"] = time.perf_counter() - t0
        meta["finished_runs"] = len(runs)
        meta["planned_runs"] = len(meta["datasets"]) * len(meta["bits"]) * args.seeds
        md = write(args.out, meta, runs)
  print(md)


def write(out: str, meta: dict, runs: list[dict]) -> str:
  """Writes ``dcgh_frozen.json`` and ``dcgh_frozen.md`` under ``out``; returns the md."""
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "dcgh_frozen.json"), "w") as f:
    json.dump({"meta": meta, "runs": runs}, f, indent=2)
  md = [
      "# DCGH, frozen-feature variant (MLP towers on shipped features)",
      "",
      f"Command: `{meta['command']}` ({meta['devices']}, {meta['cpu_count']} cores, "
      f"shared machine, {meta['total_seconds'] / 60:.1f} min in all, "
      f"{meta['finished_runs']}/{meta['planned_runs']} runs, {meta['date']}).",
      "mAP@all on the query set, mean ± std over seeds.",
      "'selected' = the evaluation with the best validation mAP (validation queries held",
      "out of training); 'best-on-query' = the best query mAP over all evaluations",
      "(every 5 epochs), per direction, as papers report it (optimistic).",
      "",
      table(runs),
      "",
  ]
  md = "\n".join(md)
  with open(os.path.join(out, "dcgh_frozen.md"), "w") as f:
    f.write(md)
  return md


if __name__ == "__main__":
  main()
