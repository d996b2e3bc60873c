"""Summary of results/rreh_views_weighted.json: mAP over all, mor and non-mor pairs.

Reads the study's JSON (``python experiments/rreh_study.py views_weighted``) and
prints, for the uniform, weighted and pairwise fits, the mean mAP@all over the 30
ordered view pairs (per seed and over seeds), over the 20 pairs without ``mor`` and
over the 10 pairs with it, and the weights chosen per seed.

  python experiments/rreh_views_weighted_summary.py
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import _common
import numpy as np


def main(argv=None) -> None:
  first, _, rest = __doc__.strip().partition("\n")
  p = argparse.ArgumentParser(description=first, epilog=rest.strip(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--json", default=os.path.join(_common.RESULTS,
                                                "rreh_views_weighted.json"))
  args = p.parse_args(argv)
  with open(args.json) as f:
    d = json.load(f)
  names = d["views"]
  m, mor = len(names), names.index("mor")
  off = ~np.eye(m, dtype=bool)
  nomor = off.copy()
  nomor[mor, :] = nomor[:, mor] = False
  withmor = off & ~nomor
  print(f"seeds {[w['seed'] for w in d['weights']]}, load average {d['load_average']}")
  for fit in ("uniform", "weighted", "pairwise"):
    x = np.asarray(d["maps"][fit])
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)   # the NaN diagonal
      mx = np.nanmean(x, 0)
    per_seed = [round(float(s[off].mean()), 4) for s in x]
    print(f"{fit:9s} all 30 pairs {mx[off].mean():.4f} (per seed {per_seed}), "
          f"20 without mor {mx[nomor].mean():.4f}, 10 with mor {mx[withmor].mean():.4f}")
  for w in d["weights"]:
    win = max(w["candidates"], key=lambda r: r["score"])["candidate"]
    chosen = w["chosen"].get("view_weights") or [1.0] * m
    print(f"seed {w['seed']}: {win}, weights "
          + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, chosen)))


if __name__ == "__main__":
  main()
