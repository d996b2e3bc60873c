"""What the ridge cap in the selection grid costs: ``rreh.fit`` with the defaults
(the cap searched, 12 grid points per fold) against ``ridge_cap=0`` (the former
default's grid, 6 points), side by side in one process.

Cases (``--cases``): a UCI view pair of the evaluation at 10% paired, seed 0
(``uci_<a>+<b>``: 1600 training items), and ``mirflickr_top32`` (MIRFlickr's 32 most
frequent tags against the other tags, experiments/rreh_mirflickr_tagsplit.py: 10,000
training items). Per case both fits are compiled by one untimed call each, then
timed alternately ``--reps`` times with ``_load.measure`` (load average before and
after, host-speed probe, repeated while either is off); the ratio is the median of
the per-rep ratios.

  python experiments/benchmarks/bench_select_cost.py --out experiments/benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _common  # noqa: E402
import _load  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import rreh  # noqa: E402

CONFIGS = {"defaults": {}, "ridge_cap=0": {"ridge_cap": 0.0}}


def case_data(name: str, tmp: str):
  """``(paired, unpaired)`` of a case at 10% paired, seed 0."""
  if name.startswith("uci_"):
    import rreh_select_eval as rse  # pylint: disable=g-import-not-at-top
    _, paired, unpaired = rse.unit_data(name, 0, 0.1)
    return paired, unpaired
  if name == "mirflickr_top32":
    import rreh_mirflickr_tagsplit as ts  # pylint: disable=g-import-not-at-top
    import rreh_select as rs  # pylint: disable=g-import-not-at-top
    from hashjax import data as hdata  # pylint: disable=g-import-not-at-top
    from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top
    path = ts.make_file(os.path.join(tmp, "top32_views.npz"), "top:32")
    cfg = load_config_file(os.path.join(rs.ROOT, "configs", "rreh_mirflickr.py"),
                           f"path={path},image_key=tags_a,text_key=tags_b,seed=0,bits=64")
    tr = hdata.get_retrieval_split(cfg.data).train
    os.remove(path)
    sp = hdata.semi_paired_split(tr.num_items, 0.1, tr.num_modalities, "disjoint", 0)
    return hdata.apply_semi_paired(tr, sp)
  raise SystemExit(f"unknown case {name!r}: uci_<a>+<b> or mirflickr_top32")


def run_case(name: str, reps: int, gate: dict, tmp: str) -> dict:
  paired, unpaired = case_data(name, tmp)
  key = jax.random.key(0)
  fits = {k: (lambda c=c: jax.block_until_ready(
      rreh.fit(paired, unpaired, dict(bits=64, **c), key).W)) for k, c in CONFIGS.items()}
  for fn in fits.values():
    fn()                                   # compiles
  runs = {k: [] for k in fits}
  for _ in range(reps):
    for k, fn in fits.items():
      runs[k].append(_load.measure(fn, **gate))
  secs = {k: [m["seconds"] for m in v] for k, v in runs.items()}
  per = [a / b for a, b in zip(secs["defaults"], secs["ridge_cap=0"])]
  loads = [x for v in runs.values() for m in v for x in (m["load_before"], m["load_after"])]
  return {"case": name, "seconds": secs, "ratio_per_rep": per,
          "ratio": float(np.median(per)), "load_min": min(loads), "load_max": max(loads),
          "host": _load.host_summary([m for v in runs.values() for m in v]),
          "timings": {k: [_load.summary(m) for m in v] for k, v in runs.items()}}


def to_markdown(res: dict) -> str:
  m = res["meta"]
  lines = ["# Cost of the ridge cap in RREH's selection grid", "",
           f"Command: `{m['command']}` ({m['date']}); `rreh.fit` with the defaults against "
           "`ridge_cap=0`, 10% paired, seed 0, 64 bits, alternated in one process after "
           "compilation; ratio = median of the per-rep ratios. The load average is the "
           "1-minute one before and after each timing: on these 2 cores a run's own two "
           "XLA threads hold it near 2 when a fit lasts tens of seconds.", "",
           "| case | defaults s (median) | ridge_cap=0 s (median) | ratio | per rep | load | "
           "host probe max ratio |", "|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    lines.append(
        f"| {r['case']} | {np.median(r['seconds']['defaults']):.2f} | "
        f"{np.median(r['seconds']['ridge_cap=0']):.2f} | {r['ratio']:.2f}x | "
        f"{', '.join(f'{x:.2f}' for x in r['ratio_per_rep'])} | "
        f"{r['load_min']:.1f}-{r['load_max']:.1f} | {r['host']['max_ratio']:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--cases", default="uci_fac+zer,mirflickr_top32")
  ap.add_argument("--reps", type=int, default=3)
  ap.add_argument("--max_load", type=float, default=1.5)
  ap.add_argument("--retries", type=int, default=0,
                  help="repeats of a loaded timing (0: a long fit raises the load itself)")
  ap.add_argument("--out", default="/tmp/hashjax_bench")
  a = ap.parse_args(argv)
  gate = dict(max_load=a.max_load, retries=a.retries, wait_s=10.0)
  os.makedirs(a.out, exist_ok=True)
  res = {"meta": _common.environment(), "config": vars(a), "results": []}
  for name in a.cases.split(","):
    res["results"].append(run_case(name, a.reps, gate, a.out))
    print(res["results"][-1]["case"], f"{res['results'][-1]['ratio']:.2f}x", flush=True)
  md = to_markdown(res)
  _common.write_results("bench_select_cost", res, md, out=a.out)
  print(md)


if __name__ == "__main__":
  main()
