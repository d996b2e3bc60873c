"""Retrieval kernels on the default device (GPU when there is one): exact vs NumPy, then timed.

  PYTHONPATH=. python experiments/benchmarks/check_kernels_device.py [--time] [--out DIR]

Correctness: ``hashjax.topk.topk_kernel`` (every method of ``topk.METHODS``: group
scan, counting select, two-level counting select; 16, 64 and 128 bits, ties at the
k-th distance, k = n) and ``metrics.mean_average_precision``
against the NumPy references of tests/retrieval_reference.py. ``--time``: every
method (the group scan only up to R = 1000) on 2000 x 1M random codes (64 and 128 bits, R =
100, 1000, 10000) and mAP@all on 5000 x 20000 x 64 bits, min of 3 after a first call.
Needs only jax and numpy (no faiss). Prints one JSON line per check and, with
``--out``, writes them to ``DIR/kernels.json``; exits 1 when a check is not exact.
The device check (device_check.py, part ``kernels``) runs it without ``--time``.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from retrieval_reference import mean_ap, stable_topk  # noqa: E402

from hashjax import metrics, topk  # noqa: E402
from hashjax.codes import pack_host  # noqa: E402


def codes(rng, n, bits, dup=True):
  c = rng.choice(np.array([-1, 1], np.int8), size=(n, bits))
  if dup:  # duplicates across 32-row blocks and chunks: ties at the k-th distance
    c[29:36] = c[3]
    c[[31, 32, 95, 96, 160]] = c[5]
  return c


ROWS: list[dict] = []


def emit(row: dict) -> None:
  ROWS.append(row)
  print(json.dumps(row), flush=True)


def check():
  rng = np.random.default_rng(0)
  for bits, n, k, chunk in ((16, 3000, 1000, 256), (64, 2000, 300, 1024),
                            (128, 1500, 1500, 512), (64, 5000, 7, 1024)):
    db, q = codes(rng, n, bits), codes(rng, 40, bits, dup=False)
    q[:2] = db[[3, 5]]
    ref_d, ref_i = stable_topk(q, db, k)
    for method in topk.METHODS:
      d, i = topk.topk_kernel(jnp.asarray(pack_host(db)), jnp.arange(n, dtype=jnp.int32),
                              jnp.asarray(pack_host(q)), jnp.int32(n), k=k, bits=bits,
                              chunk_size=chunk, mesh=None, method=method)
      ok = bool(np.array_equal(np.asarray(d), ref_d) and np.array_equal(np.asarray(i), ref_i))
      emit({"check": "topk", "bits": bits, "n": n, "k": k, "method": method,
            "exact": ok})
  for bits in (16, 64):
    db, q = codes(rng, 3000, bits), codes(rng, 300, bits, dup=False)
    dl = (rng.random((3000, 10)) < 0.2).astype(np.float32)
    ql = (rng.random((300, 10)) < 0.2).astype(np.float32)
    ref = mean_ap(q, db, ql, dl)
    for method in ("blocks", "scan"):
      got = float(metrics.mean_average_precision(q, db, ql, dl, rank_method=method))
      emit({"check": "map", "bits": bits, "rank_method": method, "hashjax": got,
            "numpy": ref, "abs_diff": abs(got - ref), "exact": abs(got - ref) <= 1e-6})


def best(f, reps=3):
  jax.block_until_ready(f())
  t = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f())
    t.append(time.perf_counter() - t0)
  return min(t)


def timed():
  rng = np.random.default_rng(1)
  nq, n = 2000, 1_000_000
  for bits in (64, 128):
    db = jnp.asarray(pack_host(codes(rng, n, bits, dup=False)))
    q = jnp.asarray(pack_host(codes(rng, nq, bits, dup=False)))
    ids = jnp.arange(n, dtype=jnp.int32)
    for r in (100, 1000, 10000):
      for method in topk.METHODS:
        if method == "group" and r > 1000:
          continue
        s = best(lambda: topk.topk_kernel(db, ids, q, jnp.int32(n), k=r, bits=bits,  # noqa: B023
                                          chunk_size=32768, mesh=None, method=method))  # noqa: B023
        emit({"time": "topk_kernel", "nq": nq, "n": n, "bits": bits, "R": r,
              "method": method, "s": round(s, 4), "qps": round(nq / s)})
  q, db = codes(rng, 5000, 64, dup=False), codes(rng, 20000, 64, dup=False)
  ql = (rng.random((5000, 24)) < 0.1).astype(np.float32)
  dl = (rng.random((20000, 24)) < 0.1).astype(np.float32)
  for method in ("blocks", "scan"):
    s = best(lambda: metrics.mean_average_precision(q, db, ql, dl,
                                                    rank_method=method))  # noqa: B023
    emit({"time": "mAP@all", "shape": "5000x20000x64", "rank_method": method,
          "s": round(s, 4)})


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--time", action="store_true", help="also time the kernels")
  ap.add_argument("--out", default=None, help="folder for kernels.json")
  a = ap.parse_args(argv)
  emit({"devices": [str(d) for d in jax.devices()]})
  check()
  if a.time:
    timed()
  if a.out:
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "kernels.json"), "w") as f:
      json.dump(ROWS, f, indent=1)
  return 0 if all(r.get("exact", True) for r in ROWS) else 1


if __name__ == "__main__":
  sys.exit(main())
