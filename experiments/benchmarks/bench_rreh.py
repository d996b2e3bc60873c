"""RREH fit time and peak memory vs n: hashjax (JAX) against the NumPy reference.

Synthetic MIRFlickr-like features: image 4096-d, text 1386-d (non-negative, like
VGG fc7 and tag counts), 10% paired, the rest dealt out disjointly; k anchors
(600, 2000), 64 bits, 20 iterations. Every (implementation, n, k) runs in its own
subprocess (``nice``-able, with a wall-clock cap) that reports its fit time (first
call, including compilation, and a second warm call for JAX) and its peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The NumPy reference is the
float64 reference of tests/rreh/rreh_reference.py (it solves the V-step's
``n_p x n_p`` normal equations, so it only runs at small n). A size whose estimated
memory exceeds ``--mem-cap-gb`` is skipped and reported with the estimate.

  nice -n 10 python experiments/benchmarks/bench_rreh.py \\
      --sizes 20000,200000,1000000 --anchors 600,2000
  # -> experiments/benchmarks/results/bench_rreh.{json,md}
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DIMS = (4096, 1386)


def _data(n, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top

  rs = np.random.default_rng(seed)
  n_p = max(1, int(round(0.1 * n)))
  n_u = n - n_p
  lab = rs.integers(0, 24, n)
  views = []
  for d in DIMS:
    centers = rs.random((24, d), dtype=np.float32)
    x = centers[lab]
    x += 0.5 * rs.random((n, d), dtype=np.float32)
    views.append(x)
  half = n_p + n_u // 2
  paired = [v[:n_p] for v in views]
  unpaired = [views[0][n_p:half], views[1][half:]]
  return paired, unpaired


def _child(impl, n, k, bits, iterations):
  import resource  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  paired, unpaired = _data(n)
  out = dict(impl=impl, n=n, k=k, n_paired=paired[0].shape[0])
  hp = dict(theta=1.0, beta=0.1, lam=0.01, iterations=iterations)
  if impl == "jax":
    import jax  # pylint: disable=g-import-not-at-top

    from hashjax import rreh  # pylint: disable=g-import-not-at-top

    cfg = dict(hp, bits=bits, num_anchors=k)
    times = []
    for _ in range(2):
      t0 = time.perf_counter()
      model = rreh.fit(paired, unpaired, cfg, jax.random.key(0))
      jax.block_until_ready(model.W)
      times.append(time.perf_counter() - t0)
    out.update(fit_s_first=times[0], fit_s_warm=times[1],
               objective_last=float(model.objective[-1]),
               device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
               jax=jax.__version__)
  else:
    sys.path.insert(0, os.path.join(ROOT, "tests", "rreh"))
    from rreh_reference import fit_reference  # pylint: disable=g-import-not-at-top

    rs = np.random.default_rng(0)
    anchors = rs.choice(paired[0].shape[0], min(k, paired[0].shape[0]), replace=False)
    g = rs.normal(size=(len(anchors), bits))
    t0 = time.perf_counter()
    ref = fit_reference(paired, unpaired, anchors, g, **hp)
    out.update(fit_s_first=time.perf_counter() - t0, fit_s_warm=None,
               objective_last=float(ref["objective"][-1]))
  out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  out["numpy"] = np.__version__
  print("RESULT " + json.dumps(out), flush=True)


def _estimate_gb(impl, n, k):
  raw = n * sum(DIMS) * 4
  if impl == "jax":   # raw + padded [2, n, 4096] stack (+ its device copy) + phi, R
    return (raw + 2 * (2 * n * max(DIMS) * 4) + 2 * (2 * n * k * 4)) / 2**30
  n_p = 0.1 * n       # float64 kernel features, R, and the n_p x n_p V system
  return (raw + 3 * 2 * n * k * 8 + 2 * n_p * n_p * 8) / 2**30


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--sizes", default="20000,200000,1000000")
  ap.add_argument("--anchors", default="600,2000")
  ap.add_argument("--impls", default="jax,numpy")
  ap.add_argument("--bits", type=int, default=64)
  ap.add_argument("--iterations", type=int, default=20)
  ap.add_argument("--timeout", type=int, default=900, help="seconds per run")
  ap.add_argument("--mem-cap-gb", type=float, default=8.0)
  ap.add_argument("--ref-max-n", type=int, default=20000,
                  help="largest n for the NumPy reference (n_p x n_p V solve)")
  ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_rreh"))
  ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
  ap.add_argument("--assemble", default=None,
                  help="log of an interrupted run: reuse its measured rows (JSON lines) "
                       "and mark the missing ones 'not run (interrupted)'")
  args = ap.parse_args()
  if args.child:
    impl, n, k = args.child
    _child(impl, int(n), int(k), args.bits, args.iterations)
    return
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  done = {}
  if args.assemble:
    with open(args.assemble) as f:
      for ln in f:
        if ln.startswith("{"):
          r = json.loads(ln)
          done[(r["impl"], r["n"], r["k"])] = r
  rows = []
  for n in (int(s) for s in args.sizes.split(",")):
    for k in (int(s) for s in args.anchors.split(",")):
      for impl in args.impls.split(","):
        row = dict(impl=impl, n=n, k=k, est_gb=round(_estimate_gb(impl, n, k), 2))
        if (impl, n, k) in done:
          row = done[(impl, n, k)]
        elif impl == "numpy" and n > args.ref_max_n:
          row["status"] = f"skipped (reference only up to n={args.ref_max_n})"
        elif row["est_gb"] > args.mem_cap_gb:
          row["status"] = f"skipped (estimated {row['est_gb']} GB > cap {args.mem_cap_gb} GB)"
        elif args.assemble:
          row["status"] = "not run (interrupted run)"
        else:
          cmd = [sys.executable, os.path.abspath(__file__), "--bits", str(args.bits),
                 "--iterations", str(args.iterations), "--child", impl, str(n), str(k)]
          t0 = time.perf_counter()
          try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                               cwd=ROOT)
            res = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if res:
              row.update(json.loads(res[-1][7:]), status="ok")
            else:
              row["status"] = f"failed rc={p.returncode}: {p.stderr[-300:]}"
          except subprocess.TimeoutExpired:
            row["status"] = f"timed out after {args.timeout} s"
          row["wall_s"] = time.perf_counter() - t0
        print(json.dumps(row), flush=True)
        rows.append(row)
  report = dict(
      command="python " + " ".join(sys.argv), date=datetime.datetime.now(
          datetime.timezone.utc).isoformat(),
      data=f"synthetic, dims {DIMS}, 10% paired, disjoint unpaired halves, "
           f"{args.bits} bits, {args.iterations} iterations, theta=1, beta=0.1, lam=0.01",
      versions=dict(jax=jax.__version__, numpy=np.__version__,
                    python=platform.python_version()),
      platform=f"{platform.platform()}, {os.cpu_count()} CPUs, "
               f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
      rows=rows)
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  lines = ["# RREH fit time vs n (hashjax JAX vs NumPy float64 reference)", "",
           f"Command: `{report['command']}`  ", f"{report['date']}; {report['platform']}; "
           f"jax {jax.__version__}, numpy {np.__version__}  ", f"Data: {report['data']}", "",
           "| impl | n | n_paired | k | fit s (first, incl. compile) | fit s (warm) | "
           "peak RSS GB | status |", "|---|---|---|---|---|---|---|---|"]
  def fmt(v):
    return "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

  for r in rows:
    lines.append(f"| {r['impl']} | {r['n']} | {fmt(r.get('n_paired'))} | {r['k']} | "
                 f"{fmt(r.get('fit_s_first'))} | {fmt(r.get('fit_s_warm'))} | "
                 f"{fmt(r.get('peak_rss_gb'))} | {r['status']} |")
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
