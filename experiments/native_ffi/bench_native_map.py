"""Experiment (issue 16.3): mAP statistics as one native CPU kernel behind jax.ffi.

Builds ``hj_rank.cc`` with the system C++ compiler against the XLA FFI headers
that jaxlib ships (``jax.ffi.include_dir()``), registers it as a JAX custom call
and times it side by side with hashjax's XLA kernels in one run: the distances
alone, the histogram pass (the first of mAP's two passes) and the full
``metrics.mean_average_precision`` (mAP@all and mAP@k, ``calc_map_k``). Values
are checked against a per-query NumPy loop with the stable order (ties by
database index) to 1e-6, on a subset of queries. Every timing records the load
average before and after and is repeated while it is above ``--max_load``.

Not part of the library: it measures what a native kernel would gain, so that
its build and install cost can be weighed (README.md next to this file).

  python experiments/native_ffi/bench_native_map.py                  # 5000 x 20000 x 64
  python experiments/native_ffi/bench_native_map.py --n=200000 --bits=128
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "benchmarks"))

import _common  # noqa: E402
import _load  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import codes, metrics  # noqa: E402
from hashjax.metrics import _ranking, retrieval  # noqa: E402

TARGET = "hj_rank_stats"
CXXFLAGS = ("-O3", "-mpopcnt", "-std=c++17", "-shared", "-fPIC")


def build(out_dir: str) -> tuple[str, float]:
  """Compiles the kernel; returns ``(path of the .so, seconds)``."""
  so = os.path.join(out_dir, "libhj_rank.so")
  cmd = ["g++", *CXXFLAGS, f"-I{jax.ffi.include_dir()}",
         os.path.join(HERE, "hj_rank.cc"), "-o", so, "-lpthread"]
  t0 = time.perf_counter()
  subprocess.run(cmd, check=True, capture_output=True)
  return so, time.perf_counter() - t0


def register(so: str) -> None:
  lib = ctypes.cdll.LoadLibrary(so)
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.HjRankStats),
                              platform="cpu")


def pack_labels(labels: np.ndarray) -> np.ndarray:
  """``[n, C]`` multi-hot -> ``[n, ceil(C / 32)]`` uint32 (the code packer's layout)."""
  return codes.pack_host(np.where(labels > 0, 1, -1))


def native_stats(qp, dp, qlw, dlw, kvec, *, bits, threads):
  """``ap [nq]``, ``ap_k, ap_calc_k [nq, nk]`` float32, ``hits_k [nq, nk]`` int32."""
  nq, nk = qp.shape[0], kvec.shape[0]
  f32 = jax.ShapeDtypeStruct((nq, nk), jnp.float32)
  out = (jax.ShapeDtypeStruct((nq,), jnp.float32), f32, f32,
         jax.ShapeDtypeStruct((nq, nk), jnp.int32))
  return jax.ffi.ffi_call(TARGET, out)(qp, dp, qlw, dlw, kvec, bits=np.int64(bits),
                                       threads=np.int64(threads))


def stable_map(q, d, ql, dl, k=None):
  """Per-query loop: stable argsort of the distances, precision at the first
  ``min(k, R)`` relevant items (``calc_map_k``; k None: AP over all)."""
  bits = q.shape[1]
  total = 0.0
  for i in range(q.shape[0]):
    rel = (dl @ ql[i]) > 0
    r = int(rel.sum())
    if r == 0:
      continue
    order = np.argsort((bits - d @ q[i]) / 2, kind="stable")
    first = r if k is None else min(k, r)
    pos = np.flatnonzero(rel[order])[:first] + 1.0
    total += np.mean(np.arange(1, first + 1) / pos)
  return total / q.shape[0]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--nq", type=int, default=5000)
  p.add_argument("--n", type=int, default=20000)
  p.add_argument("--bits", type=int, default=64)
  p.add_argument("--classes", type=int, default=24)
  p.add_argument("--label_p", type=float, default=0.1)
  p.add_argument("--top_k", type=int, default=1000)
  p.add_argument("--threads", type=int, default=2, help="native kernel threads.")
  p.add_argument("--check_queries", type=int, default=100)
  p.add_argument("--reps", type=int, default=5,
                 help="interleaved timings of every kernel; the median is kept.")
  p.add_argument("--max_load", type=float, default=1.5)
  p.add_argument("--retries", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="/tmp/hashjax_bench")
  a = p.parse_args(argv)
  gate = dict(max_load=a.max_load, retries=a.retries)
  load_start = os.getloadavg()
  rng = np.random.default_rng(a.seed)
  q = np.where(rng.random((a.nq, a.bits)) < 0.5, 1, -1).astype(np.float32)
  d = np.where(rng.random((a.n, a.bits)) < 0.5, 1, -1).astype(np.float32)
  ql = (rng.random((a.nq, a.classes)) < a.label_p).astype(np.float32)
  dl = (rng.random((a.n, a.classes)) < a.label_p).astype(np.float32)

  so, build_s = build(tempfile.mkdtemp(prefix="hj_native_"))
  register(so)
  qp, dp = jnp.asarray(codes.pack_host(q)), jnp.asarray(codes.pack_host(d))
  qlw, dlw = jnp.asarray(pack_labels(ql)), jnp.asarray(pack_labels(dl))
  kvec = jnp.asarray([a.top_k], jnp.int32)

  def native():
    return jax.block_until_ready(native_stats(qp, dp, qlw, dlw, kvec, bits=a.bits,
                                              threads=a.threads))

  prep = retrieval._Prepared(q, d, ql, dl)  # pylint: disable=protected-access
  n32 = jnp.int32(prep.n)
  batches = list(prep.query_batches())

  def histogram_pass():
    return jax.block_until_ready([
        _ranking.histograms(qp_, prep.dp, ql_, prep.dl, n32, bits=prep.bits,
                            chunk=prep.chunk, gains=False)[:3]
        for _, _, qp_, ql_ in batches])

  def xla(k):
    return float(metrics.mean_average_precision(q, d, ql, dl, k))

  # Compile everything once, then time.
  native(), histogram_pass(), xla(None), xla(a.top_k)
  fns = {"native": native, "histogram_pass": histogram_pass,
         "xla_map_all": lambda: xla(None), "xla_map_k": lambda: xla(a.top_k)}
  runs = {k: [] for k in fns}
  for _ in range(a.reps):  # interleaved: every kernel sees the same machine
    for k, fn in fns.items():
      runs[k].append(_load.measure(fn, **gate))
  t = {k: _load.median(v) for k, v in runs.items()}
  ap, _, ap_calc_k, _ = t["native"]["result"]
  nat_all, nat_k = float(jnp.mean(ap)), float(jnp.mean(ap_calc_k[:, 0]))
  c = min(a.check_queries, a.nq)
  ref_all, ref_k = stable_map(q[:c], d, ql[:c], dl), stable_map(q[:c], d, ql[:c], dl, a.top_k)
  sub_all, sub_k = float(jnp.mean(ap[:c])), float(jnp.mean(ap_calc_k[:c, 0]))
  checks = {"native_vs_numpy_all": abs(sub_all - ref_all),
            "native_vs_numpy_k": abs(sub_k - ref_k),
            "native_vs_xla_all": abs(nat_all - t["xla_map_all"]["result"]),
            "native_vs_xla_k": abs(nat_k - t["xla_map_k"]["result"])}
  assert max(checks.values()) < 1e-6, checks
  sec = {k: v["seconds"] for k, v in t.items()}
  res = {"meta": _common.environment(), "config": vars(a), "build_s": build_s,
         "cxxflags": " ".join(CXXFLAGS), "load_average_at_start": load_start,
         "load_average_at_end": os.getloadavg(), "checks": checks,
         "timings": {k: _load.summary(v) for k, v in t.items()}, "seconds": sec,
         "all_seconds": {k: [m["seconds"] for m in v] for k, v in runs.items()},
         "map_all": nat_all, "map_k": nat_k,
         "xla_map_all_over_native": sec["xla_map_all"] / sec["native"],
         "histogram_pass_over_native": sec["histogram_pass"] / sec["native"]}
  print(json.dumps({k: res[k] for k in ("seconds", "checks", "build_s",
                                         "load_average_at_start",
                                         "load_average_at_end")}, indent=1))
  tag = f"{a.nq}x{a.n}x{a.bits}"
  _common.write_results(f"bench_native_map_{tag}", res, to_markdown(res), out=a.out)


def to_markdown(res):
  a, s, t = res["config"], res["seconds"], res["timings"]
  loads = lambda k: f"{t[k]['load_before']:.1f}/{t[k]['load_after']:.1f}"  # noqa: E731
  rows = [("native kernel (mAP@all and mAP@k in one call)", "native"),
          ("XLA histogram pass (floor of the XLA mAP)", "histogram_pass"),
          ("XLA mAP@all (metrics.mean_average_precision)", "xla_map_all"),
          (f"XLA mAP@{a['top_k']} (calc_map_k)", "xla_map_k")]
  lines = [f"# Native mAP kernel vs XLA, {a['nq']:,} x {a['n']:,} x {a['bits']} bits", "",
           f"Command: `{res['meta']['command']}` ({res['meta']['date']}); jax "
           f"{res['meta']['jax']}, {res['meta']['cpu_count']} CPUs, native threads "
           f"{a['threads']}; median of {a['reps']} interleaved runs; build "
           f"{res['build_s']:.1f} s (g++ {res['cxxflags']}). Load "
           f"(1 min) {res['load_average_at_start'][0]:.1f} at start, "
           f"{res['load_average_at_end'][0]:.1f} at end.", "",
           "| kernel | median s | min-max s | median / native | load before/after |",
           "|---|---|---|---|---|"]
  for name, key in rows:
    every = res["all_seconds"][key]
    lines.append(f"| {name} | {s[key]:.3f} | {min(every):.3f}-{max(every):.3f} | "
                 f"{s[key] / s['native']:.2f}x | {loads(key)} |")
  lines += ["", "Agreement (max abs diff of mAP, asserted < 1e-6): "
            + ", ".join(f"{k} {v:.1e}" for k, v in res["checks"].items()) + "."]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
