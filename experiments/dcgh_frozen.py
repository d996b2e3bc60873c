"""Frozen-feature DCGH on Wikipedia and UCI: bits x seeds -> JSON + markdown table.

DCGH's loss, optimiser and schedule (docs/dcgh.md) with MLP towers on each data set's fixed
features (configs/dcgh_wikipedia_features.py, configs/dcgh_uci_features.py). Each run
selects its evaluation (every 5 epochs) on validation queries held out of training
and reports query mAP@all there; the best query mAP over all evaluations (what papers
report) is listed separately, labelled. The markdown puts DCGH next to RREH and the
baselines trained on all training pairs (read from results/baselines_<data>.json,
written by experiments/baseline_table.py; same queries and database).

  nice -n 10 python experiments/dcgh_frozen.py            # full study
  python experiments/dcgh_frozen.py --seeds=2 --epochs=20  # quicker
  python experiments/dcgh_frozen.py --render               # markdown from the JSON

Writes <out>/dcgh_frozen.{json,md} (default /tmp/hashjax-experiments/dcgh_frozen;
``--out experiments/results`` for the committed ones), rewritten after every run, so
an interrupted study leaves its finished runs on disk. The baseline rows are read from
``--baselines`` (default experiments/results).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time

import _common

CONFIGS = {"wikipedia": "dcgh_wikipedia_features", "uci_mfeat": "dcgh_uci_features"}
BASELINES = {"wikipedia": "wikipedia", "uci_mfeat": "uci"}   # baselines_<name>.json


def run_one(dataset: str, bits: int, seed: int, epochs: int | None) -> dict:
  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  arg = f"bits={bits},seed={seed}" + (f",epochs={epochs}" if epochs else "")
  cfg = load_config_file(os.path.join(_common.ROOT, "configs", f"{CONFIGS[dataset]}.py"),
                         arg)
  cfg.progress_bar = False
  workdir = tempfile.mkdtemp(prefix=f"dcgh_{dataset}_{bits}_{seed}_")
  try:
    t0 = time.perf_counter()
    res = train.train_and_evaluate(cfg, workdir)
    seconds = time.perf_counter() - t0
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  det = res["details"]   # results.json's layout (docs/results_schema.md)
  i2t, t2i = res["results"]["image->text"], res["results"]["text->image"]
  return {
      "dataset": dataset, "bits": bits, "seed": seed, "epochs": int(cfg.num_epochs),
      "selected_epoch": det["selected"]["epoch"],
      "val_mean_map": det["selected"]["validation"]["mean_map"],
      "i2t_map": i2t["map"], "t2i_map": t2i["map"],
      "i2t_map@100": i2t.get("map@100"), "t2i_map@100": t2i.get("map@100"),
      "best_on_query_i2t": det["best_on_query"]["i2t"]["map"],
      "best_on_query_t2i": det["best_on_query"]["t2i"]["map"],
      "num_train": res["num_train"], "num_validation": det["num_validation"],
      "num_query": res["num_query"], "num_database": res["num_database"],
      "train_seconds": res["train_seconds"],
      "seconds": seconds,
  }


def table(runs: list[dict]) -> str:
  """DCGH per (data set, bits): selected and best-on-query mAP, epoch, seconds."""
  ms = _common.mean_std
  lines = [
      "| data set | bits | seeds | I->T mAP (selected) | T->I mAP (selected) | "
      "I->T best-on-query | T->I best-on-query | selected epoch | s/run |",
      "|---|---|---|---|---|---|---|---|---|"]
  for ds, b in sorted({(r["dataset"], r["bits"]) for r in runs}):
    rs = [r for r in runs if r["dataset"] == ds and r["bits"] == b]
    col = lambda k, rs=rs: [r[k] for r in rs]  # noqa: E731
    lines.append(
        f"| {ds} | {b} | {len(rs)} | {ms(col('i2t_map'))} | {ms(col('t2i_map'))} | "
        f"{ms(col('best_on_query_i2t'))} | {ms(col('best_on_query_t2i'))} | "
        f"{statistics.mean(col('selected_epoch')):.0f} | "
        f"{statistics.mean(col('seconds')):.1f} |")
  return "\n".join(lines)


def comparison(runs: list[dict], results: str) -> str:
  """DCGH (selected epoch) next to RREH and the baselines trained on all pairs.

  One table per data set and direction, rows = methods, columns = bits. The
  unsupervised rows come from ``baselines_<data>.json`` under ``results`` (their
  first direction is DCGH's I->T: image / first view as query).
  """
  out = []
  for ds in sorted({r["dataset"] for r in runs}):
    path = os.path.join(results, f"baselines_{BASELINES[ds]}.json")
    base = None
    if os.path.exists(path):
      with open(path) as f:
        base = json.load(f)
    dcgh = [r for r in runs if r["dataset"] == ds]
    bits = sorted({r["bits"] for r in dcgh})
    dirs = ([k for k in base["rows"][0] if "->" in k] if base
            else ["I->T", "T->I"])
    head = (f"Unsupervised rows: `{base['meta']['command']}` ({base['meta']['date']})."
            if base else f"(no {os.path.basename(path)}: run experiments/baseline_table.py)")
    if ds == "wikipedia":
      head += " CCA-ITQ at 10 bits only (the text view is 10-d)."
    out += [f"**{ds}**, mAP@all, mean ± std over seeds. {head}", ""]
    for d, key in zip(dirs, ("i2t_map", "t2i_map")):
      out += [f"{d} | " + " | ".join(str(b) for b in bits) + " |",
              "|---|" + "---|" * len(bits)]
      out[-2] = "| " + out[-2]
      out.append("| DCGH, frozen features (supervised, selected epoch) | " + " | ".join(
          _common.mean_std([r[key] for r in dcgh if r["bits"] == b]) for b in bits) + " |")
      for method in dict.fromkeys(r["method"] for r in (base["rows"] if base else [])):
        rows = [r for r in base["rows"] if r["method"] == method]
        label = {"rreh": "RREH, all pairs, init_v='pca' (unsupervised)",
                 "rreh_gaussian": "RREH, all pairs, init_v='gaussian' (unsupervised)"}.get(
                     method, f"{method.upper().replace('_', '-')} (unsupervised)")
        cells = {r["bits"]: _common.mean_std(r[d]["values"]) for r in rows}
        if len(rows) == 1 and rows[0]["bits"] not in bits:   # CCA-ITQ at 10 bits
          label += f" [{rows[0]['bits']} bits]"
          cells = {bits[0]: cells[rows[0]["bits"]]}
        out.append(f"| {label} | " + " | ".join(cells.get(b, "") for b in bits) + " |")
      out.append("")
  return "\n".join(out)


def render(meta: dict, runs: list[dict], results: str) -> str:
  return "\n".join([
      "# DCGH, frozen-feature variant (MLP towers on shipped features)",
      "",
      f"Command: `{meta['command']}` ({meta['devices']}, {meta['cpu_count']} cores, "
      f"{meta['total_seconds'] / 60:.1f} min in all, "
      f"{meta['finished_runs']}/{meta['planned_runs']} runs, {meta['epochs']} epochs, "
      f"{meta['date']}).",
      "mAP@all on the query set, mean ± std (ddof 1) over seeds.",
      "'selected' = the evaluation with the best validation mAP (validation queries held",
      "out of training); 'best-on-query' = the best query mAP over all evaluations",
      "(every 5 epochs), per direction, as papers report it (optimistic).",
      "",
      table(runs),
      "",
      "## Next to RREH and the baselines (all training pairs, same queries and database)",
      "",
      "DCGH uses the labels; RREH and the baselines do not. DCGH trains on the training",
      "items minus its validation queries (" + ", ".join(sorted({
          f"{r['dataset']} {r['num_train']} + {r['num_validation']}" for r in runs}))
      + "); the others train on every training item.",
      "",
      comparison(runs, results),
  ])


def main(argv: list[str] | None = None):
  ap = _common.parser("dcgh_frozen", __doc__)
  ap.add_argument("--datasets", default="wikipedia,uci_mfeat")
  ap.add_argument("--bits", default="16,32,64,128")
  ap.add_argument("--seeds", type=int, default=5)
  ap.add_argument("--epochs", type=int, default=None, help="default: the config's (100)")
  ap.add_argument("--baselines", default=_common.RESULTS,
                  help="folder holding baselines_<data>.json (default: the committed)")
  ap.add_argument("--render", action="store_true",
                  help="only rewrite the markdown from <out>/dcgh_frozen.json")
  args = ap.parse_args(argv)
  if args.render:
    with open(os.path.join(args.out, "dcgh_frozen.json")) as f:
      saved = json.load(f)
    md = render(saved["meta"], saved["runs"], args.baselines)
    _common.write_results("dcgh_frozen", saved, md, args.out)
    print(md)
    return
  meta = _common.environment(
      datasets=args.datasets.split(","), bits=[int(x) for x in args.bits.split(",")],
      seeds=list(range(args.seeds)), epochs=args.epochs or 100)
  meta["planned_runs"] = len(meta["datasets"]) * len(meta["bits"]) * args.seeds
  runs = []
  t0 = time.perf_counter()
  bar = _common.sweep_bar(meta["planned_runs"], "dcgh_frozen")
  for s in meta["seeds"]:   # seeds outermost: a cut-short study still covers every cell
    for ds in meta["datasets"]:
      for b in meta["bits"]:
        r = run_one(ds, b, s, args.epochs)
        runs.append(r)
        bar.update(1)
        print(json.dumps(r), flush=True)
        meta["total_seconds"] = time.perf_counter() - t0
        meta["finished_runs"] = len(runs)
        md = render(meta, runs, args.baselines)
        _common.write_results("dcgh_frozen", {"meta": meta, "runs": runs}, md, args.out)
  bar.close()
  print(md)


if __name__ == "__main__":
  main()
