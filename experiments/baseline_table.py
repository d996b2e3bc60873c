"""RREH and the baselines trained on all training pairs (Wikipedia or UCI), 16-128 bits.

Runs ``hashjax.experiment.train_and_evaluate`` (``hashjax.main``'s path) for RREH
(``configs/rreh_<dataset>.py:paired_ratio=1.0``: every training item paired, none
unpaired; ``rreh`` with the config's initial V, 'pca', which was validated at 10%
paired, and ``rreh_gaussian`` with the paper's (docs/rreh.md) Gaussian start) and CCA-ITQ, CVH, CMFH
(``configs/baseline_<dataset>.py``, all training pairs) over seeds 0..n-1, and writes
``<out>/baselines_<dataset>.{json,md}`` (``--out experiments/results`` for the
committed tables; default /tmp/hashjax-experiments/baseline_table).
These are the unsupervised rows next to supervised DCGH in
``experiments/results/dcgh_frozen.md`` (same queries and database).

  python experiments/baseline_table.py                  # Wikipedia, seeds 0..4
  python experiments/baseline_table.py --dataset=uci
  python experiments/baseline_table.py --dataset=uci --methods=cmfh --seeds=2
"""

from __future__ import annotations

import os

import _common

METHODS = ("rreh", "rreh_gaussian", "cca_itq", "cvh", "cmfh")


def main(argv: list[str] | None = None) -> None:
  parser = _common.parser("baseline_table", __doc__)
  parser.add_argument("--dataset", default="wikipedia", choices=["wikipedia", "uci"])
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--bits", default="16,32,64,128")
  args = parser.parse_args(argv)
  methods = args.methods.split(",")
  if set(methods) - set(METHODS):
    parser.error(f"--methods must be drawn from {METHODS}, got {methods}")

  from hashjax import experiment  # pylint: disable=g-import-not-at-top
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  bits_list = [int(b) for b in args.bits.split(",")]
  rows = []
  for method in methods:
    if method == "rreh":
      cfg_path, arg0 = f"rreh_{args.dataset}.py", "paired_ratio=1.0,"
    elif method == "rreh_gaussian":
      cfg_path, arg0 = f"rreh_{args.dataset}.py", "paired_ratio=1.0,init_v=gaussian,"
    else:
      cfg_path, arg0 = f"baseline_{args.dataset}.py", f"method={method},"
    method_bits = bits_list
    if method == "cca_itq" and args.dataset == "wikipedia":
      method_bits = [10]  # CCA gives at most 10 directions (the text view is 10-d).
    for bits in method_bits:
      runs = []
      for seed in range(args.seeds):
        config = load_config_file(os.path.join(_common.ROOT, "configs", cfg_path),
                                  f"{arg0}bits={bits},seed={seed}")
        runs.append(experiment.train_and_evaluate(config, None)["results"])
      row = {"method": method, "bits": bits, "seeds": args.seeds}
      for d in runs[0]:
        row[d] = _common.summary([r[d]["map"] for r in runs])
      rows.append(row)
      print(row, flush=True)

  dirs = [k for k in rows[0] if "->" in k]
  meta = _common.environment(
      dataset=args.dataset, seeds=list(range(args.seeds)),
      trained_on="all training pairs (paired_ratio=1.0)", metric="mAP@all")
  lines = [f"### RREH and baselines on {args.dataset}, trained on all training pairs: "
           f"mAP@all, mean ± std (ddof 1) over {args.seeds} seeds", "",
           f"Command: `{meta['command']}` ({meta['date']}); RREH with "
           f"`configs/rreh_{args.dataset}.py:paired_ratio=1.0` (init_v='pca'; "
           "rreh_gaussian: `init_v=gaussian`).", "",
           "| method | bits | " + " | ".join(dirs) + " |",
           "|---|---|" + "---|" * len(dirs)]
  for r in rows:
    lines.append(f"| {r['method']} | {r['bits']} | " + " | ".join(
        _common.mean_std(r[d]["values"]) for d in dirs) + " |")
  md = "\n".join(lines)
  print(md)
  _common.write_results(f"baselines_{args.dataset}", {"meta": meta, "rows": rows}, md,
                        args.out)


if __name__ == "__main__":
  main()
