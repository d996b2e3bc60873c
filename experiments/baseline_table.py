"""Wikipedia (or UCI) baseline table: every baseline through ``hashjax.main``'s path.

Runs ``hashjax.experiment.train_and_evaluate`` for CCA-ITQ, CVH and CMFH with
``configs/baseline_<dataset>.py`` (trained on all training pairs, seed 0 and the
given seeds) and writes ``experiments/results/baselines_<dataset>.{json,md}``.

  python experiments/baseline_table.py                  # Wikipedia, seeds 0..4
  python experiments/baseline_table.py --dataset=uci --seeds=3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="wikipedia", choices=["wikipedia", "uci"])
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--bits", default="16,32,64,128")
  parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from hashjax import experiment  # pylint: disable=g-import-not-at-top
  from hashjax.main import load_config_file  # pylint: disable=g-import-not-at-top

  cfg_path = os.path.join(ROOT, "configs", f"baseline_{args.dataset}.py")
  bits_list = [int(b) for b in args.bits.split(",")]
  rows = []
  for method in ("cca_itq", "cvh", "cmfh"):
    method_bits = bits_list
    if method == "cca_itq" and args.dataset == "wikipedia":
      method_bits = [10]  # CCA gives at most 10 directions (the text view is 10-d).
    for bits in method_bits:
      runs = []
      for seed in range(args.seeds):
        config = load_config_file(cfg_path, f"method={method},bits={bits},seed={seed}")
        runs.append(experiment.train_and_evaluate(config, None)["results"])
      row = {"method": method, "bits": bits, "seeds": args.seeds}
      for d in runs[0]:
        vals = [r[d]["map"] for r in runs]
        row[d] = {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals),
                  "values": vals}
      rows.append(row)

  dirs = [k for k in rows[0] if "->" in k]
  command = "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])
  meta = {
      "command": command, "dataset": args.dataset, "seeds": list(range(args.seeds)),
      "trained_on": "all training pairs (paired_ratio=1.0)", "metric": "mAP@all",
      "jax": jax.__version__, "numpy": np.__version__, "python": platform.python_version(),
      "platform": platform.platform(), "cpus": os.cpu_count(),
      "device": str(jax.devices()[0]),
      "date": datetime.date.today().isoformat(),
  }
  lines = [f"### Baselines on {args.dataset}: mAP@all, mean ± std over "
           f"{args.seeds} seeds (trained on all training pairs)", "",
           f"Command: `{command}`", "",
           "| method | bits | " + " | ".join(dirs) + " |",
           "|---|---|" + "---|" * len(dirs)]
  for r in rows:
    lines.append(f"| {r['method']} | {r['bits']} | " + " | ".join(
        f"{r[d]['mean']:.4f} ± {r[d]['std']:.4f}" for d in dirs) + " |")
  md = "\n".join(lines)
  print(md)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"baselines_{args.dataset}.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  with open(os.path.join(args.out, f"baselines_{args.dataset}.md"), "w") as f:
    f.write(md + "\n")


if __name__ == "__main__":
  main()
