"""Chooses RREH's initial V ('gaussian' vs 'pca') on a validation split of TRAINING data.

For Wikipedia and UCI (fac+pix) with the config's other hyper-parameters: 10% of the
training items become validation queries (seed 123), RREH is fitted on the rest
(10% paired, 64 bits, seeds 0-2) and validation queries retrieve the remaining
training items of the other modality. The test queries are never used.

  python experiments/rreh_select_init.py                           # -> /tmp/...
  python experiments/rreh_select_init.py --out experiments/results  # committed table

Writes <out>/rreh_select_init.{json,md}.
"""

from __future__ import annotations

import os

import _common
import jax
import numpy as np

from hashjax import data as hd
from hashjax import metrics, rreh
from hashjax.configs_io import load_config_file

SEEDS = (0, 1, 2)


def _subset(d: hd.MultiModalData, idx: np.ndarray) -> hd.MultiModalData:
  return hd.MultiModalData(views=tuple(np.asarray(v)[idx] for v in d.views),
                           labels=np.asarray(d.labels)[idx], view_names=d.view_names)


def main(argv: list[str] | None = None) -> None:
  args = _common.parser("rreh_select_init", __doc__).parse_args(argv)
  rows = []
  for name in ("wikipedia", "uci"):
    cfg = load_config_file(os.path.join(_common.ROOT, "configs", f"rreh_{name}.py"))
    train = hd.get_retrieval_split(cfg.data).train
    perm = np.random.RandomState(123).permutation(train.num_items)
    nv = train.num_items // 10
    val, fit_part = _subset(train, perm[:nv]), _subset(train, perm[nv:])
    for init_v in ("gaussian", "pca"):
      res = []
      for seed in SEEDS:
        sp = hd.semi_paired_split(fit_part.num_items, 0.1, 2, "disjoint", seed)
        paired, unpaired = hd.apply_semi_paired(fit_part, sp)
        model = rreh.fit(paired, unpaired,
                         dict(cfg.rreh.to_dict(), bits=64, init_v=init_v),
                         jax.random.key(seed))
        res.append([float(metrics.mean_average_precision(
            rreh.encode(model, val.views[a], a),
            rreh.encode(model, fit_part.views[1 - a], 1 - a),
            val.labels, fit_part.labels)) for a in (0, 1)])
      r = np.asarray(res)
      rows.append(dict(dataset=name, init_v=init_v, values=res,
                       a2b=float(r[:, 0].mean()), b2a=float(r[:, 1].mean()),
                       mean=float(r.mean())))
      print(rows[-1], flush=True)
  meta = _common.environment(seeds=list(SEEDS), bits=64, paired_ratio=0.1,
                             validation="10% of training items (seed 123) as queries")
  command = meta["command"]
  lines = ["### RREH initial V chosen on a validation split of the training data", "",
           f"Command: `{command}`; 64 bits, 10% paired, seeds {list(SEEDS)}; "
           "mAP@all of validation queries against the other training items.", "",
           "| data set | init_v | first->second | second->first | mean |",
           "|---|---|---|---|---|"]
  lines += [f"| {r['dataset']} | {r['init_v']} | {r['a2b']:.4f} | {r['b2a']:.4f} | "
            f"{r['mean']:.4f} |" for r in rows]
  _common.write_results("rreh_select_init", dict(meta=meta, rows=rows),
                        "\n".join(lines), args.out)
  print("\n".join(lines))

if __name__ == "__main__":
  main()
