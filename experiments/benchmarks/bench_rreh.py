"""RREH fit time and peak memory vs n: hashjax (JAX) against the NumPy reference.

Synthetic MIRFlickr-like features: image 4096-d, text 1386-d (non-negative, like
VGG fc7 and tag counts), 10% paired, the rest dealt out disjointly; k anchors
(600, 2000), 64 bits, 20 iterations. Every (implementation, n, k) runs in its own
subprocess (``nice``-able, with a wall-clock cap) that reports its fit time (first
call, including compilation, and a second warm call for JAX) and two peaks of
resident memory: all of it (``ru_maxrss``, which counts the pages of a memory-mapped
feature file that were read) and the anonymous part (``RssAnon`` of
/proc/self/status, sampled every 50 ms: the process's own arrays). From
``--memmap-from`` items on, the synthetic features are written (in row chunks) to
float32 files under ``--memmap-dir`` and passed to ``fit`` as ``np.memmap``
arrays, as a real feature file on disk would be. The NumPy reference is the float64
reference of tests/rreh/rreh_reference.py (it solves the V-step's ``n_p x n_p``
normal equations, so it only runs at small n). A size whose estimated anonymous
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
import shutil
import subprocess
import sys
import tempfile
import threading
import time

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DIMS = (4096, 1386)


def _data(n, seed=0, memmap_dir=None, block=16384, dims=DIMS):
  """Synthetic views (float32, in RAM or as ``np.memmap`` files), written in row blocks."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rs = np.random.default_rng(seed)
  n_p = max(1, int(round(0.1 * n)))
  n_u = n - n_p
  lab = rs.integers(0, 24, n)
  views = []
  for j, d in enumerate(dims):
    centers = rs.random((24, d), dtype=np.float32)
    if memmap_dir:
      x = np.memmap(os.path.join(memmap_dir, f"view{j}_{n}.f32"), np.float32, "w+",
                    shape=(n, d))
    else:
      x = np.empty((n, d), np.float32)
    for s in range(0, n, block):
      x[s:s + block] = centers[lab[s:s + block]] + 0.5 * rs.random(
          (min(block, n - s), d), dtype=np.float32)
    if memmap_dir:
      x.flush()
      x = np.memmap(x.filename, np.float32, "r", shape=(n, d))
    views.append(x)
  half = n_p + n_u // 2
  paired = [v[:n_p] for v in views]
  unpaired = [views[0][n_p:half], views[1][half:]]
  return paired, unpaired


class _AnonPeak:
  """Peak ``RssAnon`` (GB) of this process, sampled by a daemon thread."""

  def __init__(self, every=0.05):
    self.peak_kb = 0
    threading.Thread(target=self._run, args=(every,), daemon=True).start()

  @staticmethod
  def now_kb():
    with open("/proc/self/status") as f:
      for ln in f:
        if ln.startswith("RssAnon:"):
          return int(ln.split()[1])
    return 0

  def _run(self, every):
    while True:
      self.peak_kb = max(self.peak_kb, self.now_kb())
      time.sleep(every)

  @property
  def gb(self):
    return max(self.peak_kb, self.now_kb()) / 2**20


def _child(impl, n, k, bits, iterations, memmap_dir, warm_max_n, dims=DIMS):
  import resource  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  anon = _AnonPeak() if os.path.exists("/proc/self/status") else None
  t0 = time.perf_counter()
  paired, unpaired = _data(n, memmap_dir=memmap_dir, dims=dims)
  out = dict(impl=impl, n=n, k=k, n_paired=paired[0].shape[0],
             features="memmap float32 files" if memmap_dir else "in RAM float32",
             data_s=time.perf_counter() - t0)
  hp = dict(theta=1.0, beta=0.1, lam=0.01, iterations=iterations)
  if impl == "jax":
    import jax  # pylint: disable=g-import-not-at-top

    from hashjax import rreh  # pylint: disable=g-import-not-at-top

    cfg = dict(hp, bits=bits, num_anchors=k, init_v="gaussian")  # fixed: no selection
    times = []
    for _ in range(2 if n <= warm_max_n else 1):
      t0 = time.perf_counter()
      model = rreh.fit(paired, unpaired, cfg, jax.random.key(0))
      jax.block_until_ready(model.W)
      times.append(time.perf_counter() - t0)
    out.update(fit_s_first=times[0], fit_s_warm=times[1] if len(times) > 1 else None,
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
  out["peak_anon_gb"] = anon.gb if anon else None
  out["numpy"] = np.__version__
  print("RESULT " + json.dumps(out), flush=True)


def _estimate_gb(impl, n, k, in_ram, dims=DIMS):
  """Anonymous memory: features held in RAM, plus the [n, k] arrays of the fit."""
  raw = n * sum(dims) * 4 if in_ram else 0
  if impl == "jax":   # phi, R, the W-step's Q [2, n, k] and transient copies
    return (raw + 4 * (2 * n * k * 4)) / 2**30
  n_p = 0.1 * n       # float64 kernel features, R, and the n_p x n_p V system
  return (n * sum(dims) * 4 + 3 * 2 * n * k * 8 + 2 * n_p * n_p * 8) / 2**30


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--sizes", default="20000,200000,1000000")
  ap.add_argument("--anchors", default="600,2000")
  ap.add_argument("--impls", default="jax,numpy")
  ap.add_argument("--bits", type=int, default=64)
  ap.add_argument("--dims", default=",".join(map(str, DIMS)),
                  help="feature widths of the two synthetic views (default: Wikipedia-"
                       "like CNN/text widths)")
  ap.add_argument("--iterations", type=int, default=20)
  ap.add_argument("--timeout", type=int, default=900, help="seconds per run")
  ap.add_argument("--mem-cap-gb", type=float, default=20.0)
  ap.add_argument("--memmap-from", type=int, default=200000,
                  help="from this n on, JAX runs read features from np.memmap files")
  ap.add_argument("--warm-max-n", type=int, default=200000,
                  help="largest n that also gets a second (warm) JAX fit")
  ap.add_argument("--memmap-dir", default=None,
                  help="where the memmap files go (default: a temporary directory, "
                       "removed afterwards)")
  ap.add_argument("--ref-max-n", type=int, default=20000,
                  help="largest n for the NumPy reference (n_p x n_p V solve)")
  ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_rreh"))
  ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
  ap.add_argument("--assemble", default=None,
                  help="log of an interrupted run: reuse its measured rows (JSON lines) "
                       "and mark the missing ones 'not run (interrupted)'")
  args = ap.parse_args()
  try:
    dims = tuple(int(d) for d in args.dims.split(","))
    if len(dims) != 2 or min(dims) < 1:
      raise ValueError
  except ValueError:
    ap.exit(2, f"bench_rreh: --dims must be two positive widths, got {args.dims!r}.\n")
  if args.child:
    impl, n, k, mdir = args.child
    _child(impl, int(n), int(k), args.bits, args.iterations, mdir or None,
           args.warm_max_n, dims)
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
        use_mm = impl == "jax" and n >= args.memmap_from
        row = dict(impl=impl, n=n, k=k,
                   est_gb=round(_estimate_gb(impl, n, k, not use_mm, dims), 2))
        if (impl, n, k) in done:
          row = done[(impl, n, k)]
        elif impl == "numpy" and n > args.ref_max_n:
          row["status"] = f"skipped (reference only up to n={args.ref_max_n})"
        elif row["est_gb"] > args.mem_cap_gb:
          row["status"] = f"skipped (estimated {row['est_gb']} GB > cap {args.mem_cap_gb} GB)"
        elif args.assemble:
          row["status"] = "not run (interrupted run)"
        else:
          mdir = ""
          if use_mm:
            mdir = tempfile.mkdtemp(prefix="bench_rreh_", dir=args.memmap_dir)
          cmd = [sys.executable, os.path.abspath(__file__), "--bits", str(args.bits),
                 "--dims", args.dims,
                 "--iterations", str(args.iterations), "--warm-max-n",
                 str(args.warm_max_n), "--child", impl, str(n), str(k), mdir]
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
          finally:
            if mdir:
              shutil.rmtree(mdir, ignore_errors=True)
          row["wall_s"] = time.perf_counter() - t0
        print(json.dumps(row), flush=True)
        rows.append(row)
  report = dict(
      command="python " + " ".join(sys.argv), date=datetime.datetime.now(
          datetime.timezone.utc).isoformat(),
      data=f"synthetic, dims {dims}, 10% paired, disjoint unpaired halves, "
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
           "| impl | n | n_paired | k | features | fit s (first, incl. compile) | "
           "fit s (warm) | peak RSS GB | peak anon GB | status |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  def fmt(v):
    return "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

  for r in rows:
    lines.append(f"| {r['impl']} | {r['n']} | {fmt(r.get('n_paired'))} | {r['k']} | "
                 f"{fmt(r.get('features'))} | "
                 f"{fmt(r.get('fit_s_first'))} | {fmt(r.get('fit_s_warm'))} | "
                 f"{fmt(r.get('peak_rss_gb'))} | {fmt(r.get('peak_anon_gb'))} | "
                 f"{r['status']} |")
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
