"""Headline table: RREH at 10% paired vs baselines on the paired 10%, 64 bits, 5 seeds.

Everything through ``hashjax.experiment.train_and_evaluate`` with the shipped configs
(``configs/rreh_<data>.py``, ``configs/baseline_<data>.py:paired_ratio=0.1``); mAP@all
on the test queries, mean ± std over seeds 0-4 (seed = split + anchors + init).

  python experiments/rreh_headline.py                           # -> /tmp/...
  python experiments/rreh_headline.py --out experiments/results  # committed table

Writes <out>/rreh_headline.{json,md}.
"""

from __future__ import annotations

import os

import _common

from hashjax import experiment
from hashjax.configs_io import load_config_file

SEEDS = range(5)
RUNS = [("rreh", "rreh_{d}", ""), ("cmfh", "baseline_{d}", "method=cmfh,paired_ratio=0.1,"),
        ("cvh", "baseline_{d}", "method=cvh,paired_ratio=0.1,"),
        ("cca_itq", "baseline_{d}", "method=cca_itq,paired_ratio=0.1,")]


def main(argv: list[str] | None = None) -> None:
  args = _common.parser("rreh_headline", __doc__).parse_args(argv)
  rows = []
  bar = _common.sweep_bar(2 * len(RUNS) * len(SEEDS), "rreh_headline")
  for dataset in ("wikipedia", "uci"):
    for method, cfg_name, arg in RUNS:
      bits = 10 if (method == "cca_itq" and dataset == "wikipedia") else 64
      res = []
      for seed in SEEDS:
        path = os.path.join(_common.ROOT, "configs", cfg_name.format(d=dataset) + ".py")
        cfg = load_config_file(path, f"{arg}bits={bits},seed={seed}")
        res.append(experiment.train_and_evaluate(cfg, None)["results"])
        bar.update(1)
      row = dict(dataset=dataset, method=method, bits=bits)
      for d in res[0]:
        row[d] = _common.summary([r[d]["map"] for r in res])
      rows.append(row)
  bar.close()
  meta = _common.environment(seeds=list(SEEDS), paired_ratio=0.1, metric="mAP@all")
  command = meta["command"]
  lines = ["### RREH (10% paired + unpaired) vs baselines trained on the paired 10%",
           "", f"Command: `{command}`; mAP@all, mean ± std (ddof 1) over seeds 0-4; "
           "CCA-ITQ on Wikipedia at 10 bits (its text view is 10-d).", ""]
  for dataset in ("wikipedia", "uci"):
    sub = [r for r in rows if r["dataset"] == dataset]
    dirs = [k for k in sub[0] if "->" in k]
    lines += [f"**{dataset}**", "", "| method | bits | " + " | ".join(dirs) + " |",
              "|---|---|" + "---|" * len(dirs)]
    lines += [f"| {r['method']} | {r['bits']} | " + " | ".join(
        _common.mean_std(r[d]["values"]) for d in dirs) + " |" for r in sub]
    lines.append("")
  _common.write_results("rreh_headline", dict(meta=meta, rows=rows), "\n".join(lines),
                        args.out)
  print("\n".join(lines))

if __name__ == "__main__":
  main()
