"""Benchmark: top-R Hamming search, hashjax vs faiss IndexBinaryFlat vs NumPy, side by side.

For each size ``nq x n``, code length and R, in one process on the same random
uniform codes: hashjax's ``metrics.topk_hamming`` (exact, ties by database
index; one row per ``--methods`` entry: ``auto`` = the default choice, ``group``
= group scan, ``count`` = counting select), faiss-cpu ``IndexBinaryFlat``
(``--threads`` OpenMP threads) and a NumPy per-query loop (table popcount +
``np.argsort(kind="stable")``) on ``--np_queries`` queries only, its time
extrapolated per query (labelled).

Every timing records the 1-minute load average before and after and is repeated
(up to ``--retries`` times, ``--wait_s`` apart) while either is above
``--max_load``; rows still above it are flagged LOADED. hashjax and faiss are
timed back to back for each row.

Agreement (asserted): identical distance lists for every query; identical id
sets below the R-th distance; faiss's ids at the R-th distance really are at
that distance (faiss does not order ties); hashjax's id lists equal the NumPy
loop's (ties by index) on the NumPy queries.

  python experiments/benchmarks/bench_retrieval.py     # 3 sizes x 64/128 bits x R
  python experiments/benchmarks/bench_retrieval.py --sizes=5000x20000 --bits=64 \
      --rs=100 --methods=group,count

hashjax times are whole calls (validation, packing, search), compilation
excluded (a first call on one query chunk). Writes ``bench_retrieval[_<tag>].json``
and ``.md`` to ``--out`` (default ``/tmp/hashjax_bench``, outside the repository),
rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="5000x20000,5000x200000,2000x1000000",
                 help="comma list of NQxN.")
  p.add_argument("--bits", default="64,128")
  p.add_argument("--rs", default="100,1000,10000")
  p.add_argument("--methods", default="auto",
                 help="comma list of hashjax methods: auto, group, count, group_count.")
  p.add_argument("--np_queries", type=int, default=20)
  p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads.")
  p.add_argument("--chunk_size", type=int, default=32768)
  p.add_argument("--query_chunk", type=int, default=1024)
  p.add_argument("--repeats", type=int, default=3,
                 help="timings per side, interleaved hashjax/faiss; the median is kept.")
  p.add_argument("--max_load", type=float, default=1.5)
  p.add_argument("--retries", type=int, default=3)
  p.add_argument("--wait_s", type=float, default=10.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tag", default="", help="suffix of the output file names.")
  p.add_argument("--out", default="/tmp/hashjax_bench",
                 help="output folder (default outside the repository).")
  return p.parse_args(argv)


ARGS = _parse(sys.argv[1:])
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _load  # noqa: E402
import faiss  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import metrics  # noqa: E402

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int32)


def numpy_topk(q_bytes, db_bytes, r):
  """Per-query loop: ``[nq, r]`` distances and ids, ties by index."""
  dists, ids = [], []
  for row in q_bytes:
    dist = _POP8[np.bitwise_xor(row[None, :], db_bytes)].sum(1)
    order = np.argsort(dist, kind="stable")[:r]
    dists.append(dist[order])
    ids.append(order)
  return np.stack(dists), np.stack(ids)


def check(d_hj, i_hj, d_fa, i_fa, q_bytes, db_bytes, d_np, i_np):
  """Asserts agreement; returns counts for the report."""
  assert np.array_equal(d_hj, d_fa), "distance lists differ (hashjax vs faiss)"
  kth = d_hj[:, -1]
  for j in range(d_hj.shape[0]):
    lt = d_hj[j] < kth[j]
    assert np.array_equal(np.sort(i_hj[j, lt]), np.sort(i_fa[j, lt])), (
        f"query {j}: different items below the R-th distance")
  rows, cols = np.nonzero(d_fa == kth[:, None])
  true = _POP8[np.bitwise_xor(q_bytes[rows], db_bytes[i_fa[rows, cols]])].sum(-1)
  assert np.array_equal(true, d_fa[rows, cols]), "faiss ids at the R-th distance wrong"
  m = d_np.shape[0]
  assert np.array_equal(d_hj[:m], d_np) and np.array_equal(i_hj[:m], i_np), (
      "hashjax differs from the NumPy loop (ties by index)")
  return {"queries_identical_ids_vs_faiss": int(np.all(i_hj == i_fa, axis=1).sum()),
          "entries_at_Rth_distance": int(len(rows)),
          "numpy_exact_queries": int(m)}


def run_one(nq, n, bits, rs, rng):
  a = ARGS
  gate = dict(max_load=a.max_load, retries=a.retries, wait_s=a.wait_s)
  q = np.where(rng.random((nq, bits), np.float32) < 0.5, 1, -1).astype(np.int8)
  d = np.where(rng.random((n, bits), np.float32) < 0.5, 1, -1).astype(np.int8)
  q_bytes, db_bytes = np.packbits(q > 0, axis=1), np.packbits(d > 0, axis=1)
  faiss.omp_set_num_threads(a.threads)
  index = faiss.IndexBinaryFlat(bits)
  build = _load.measure(lambda: index.add(db_bytes), retries=0)
  for r in rs:
    if r > n:
      continue
    m = min(a.np_queries, nq)
    np_t = _load.measure(lambda: numpy_topk(q_bytes[:m], db_bytes, r), retries=0)  # noqa: B023
    d_np, i_np = np_t["result"]
    for method in a.methods.split(","):
      kw = dict(chunk_size=a.chunk_size, query_chunk=a.query_chunk,
                method=None if method == "auto" else method)
      first = _load.measure(lambda: jax.block_until_ready(  # noqa: B023
          metrics.topk_hamming(q[:a.query_chunk], d, r, **kw)), retries=0)  # noqa: B023
      runs = {"hashjax": [], "faiss": []}
      for _ in range(max(1, a.repeats)):  # interleaved: both sides see the same load
        runs["hashjax"].append(_load.measure(lambda: jax.block_until_ready(  # noqa: B023
            metrics.topk_hamming(q, d, r, **kw)), **gate))  # noqa: B023
        runs["faiss"].append(_load.measure(lambda: index.search(q_bytes, r), **gate))  # noqa: B023
      hj, fa = (_load.median(runs[s]) for s in ("hashjax", "faiss"))
      d_hj, i_hj = hj["result"]
      d_fa, i_fa = fa["result"]
      agree = check(np.asarray(d_hj), np.asarray(i_hj).astype(np.int64),
                    d_fa.astype(np.int32), i_fa, q_bytes, db_bytes, d_np, i_np)
      row = {"nq": nq, "n": n, "bits": bits, "R": r, "method": method,
             "hashjax_s": hj["seconds"], "hashjax_qps": nq / hj["seconds"],
             "hashjax_timing": _load.summary(hj),
             "hashjax_all_s": [t["seconds"] for t in runs["hashjax"]],
             "faiss_all_s": [t["seconds"] for t in runs["faiss"]],
             "hashjax_compile_first_s": first["seconds"],
             "faiss_s": fa["seconds"], "faiss_qps": nq / fa["seconds"],
             "faiss_timing": _load.summary(fa), "faiss_build_s": build["seconds"],
             "numpy_s_extrapolated": np_t["seconds"] / m * nq, "numpy_queries_timed": m,
             "speedup_vs_numpy": np_t["seconds"] / m * nq / hj["seconds"],
             "hashjax_over_faiss_qps": fa["seconds"] / hj["seconds"],
             "agreement": agree}
      print(json.dumps({k: v for k, v in row.items() if "timing" not in k}), flush=True)
      yield row


def _loads(t):
  flag = "" if t["quiet"] else " LOADED"
  return f"{t['load_before']:.1f}/{t['load_after']:.1f}{flag}"


def to_markdown(res):
  a, m = res["config"], res["meta"]
  lines = [
      "# Top-R Hamming search: hashjax.metrics.topk_hamming vs faiss vs NumPy loop", "",
      f"Random uniform codes; {m['platform']}, {m['cpu_count']} CPUs "
      f"({m.get('cpu', 'model not recorded')}); jax {m['jax']}, "
      f"faiss {m['faiss']} ({a['threads']} threads), numpy {m['numpy']}; hashjax chunk "
      f"{a['chunk_size']}, query chunk {a['query_chunk']}. Load average (1 min) "
      f"{res['load_average_at_start'][0]:.1f} at start, "
      f"{res['load_average_at_end'][0]:.1f} at end; per timing before/after in the "
      f"table (LOADED: still above {a['max_load']} after {a['retries']} repeats). Each "
      f"time is the median of {a.get('repeats', 1)} runs, hashjax and faiss "
      f"interleaved.", "",
      f"Command: `{m['command']}` ({m['date']})", "",
      "| nq x n | bits | R | method | hashjax q/s | faiss q/s | hashjax/faiss | "
      "NumPy loop s (extrapolated from N queries) | hashjax s | speed-up vs NumPy | "
      "load hashjax | load faiss |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    lines.append(
        f"| {r['nq']:,} x {r['n']:,} | {r['bits']} | {r['R']} | {r['method']} | "
        f"{r['hashjax_qps']:.0f} | {r['faiss_qps']:.0f} | "
        f"{r['hashjax_over_faiss_qps']:.2f} | "
        f"{r['numpy_s_extrapolated']:.1f} ({r['numpy_queries_timed']}) | "
        f"{r['hashjax_s']:.2f} | {r['speedup_vs_numpy']:.1f}x | "
        f"{_loads(r['hashjax_timing'])} | {_loads(r['faiss_timing'])} |")
  lines += ["", "Agreement asserted for every row: identical distance lists (hashjax = "
            "faiss), identical id sets below the R-th distance, faiss ids at the R-th "
            "distance verified, hashjax ids = NumPy stable loop on the timed NumPy "
            "queries. hashjax times exclude compilation and include validation and "
            "packing of the database on every call. method auto = "
            "hashjax.topk.default_method (group scan for R < 32, two-level counting "
            "select (group_count) when n >= 64 R, else the counting select)."]
  return "\n".join(lines) + "\n"


def main():
  a = ARGS
  rng = np.random.default_rng(a.seed)
  res = {"meta": _common.environment(faiss=faiss.__version__), "config": vars(a),
         "load_average_at_start": os.getloadavg(), "results": []}
  name = "bench_retrieval" + (f"_{a.tag}" if a.tag else "")
  md = ""
  for size in a.sizes.split(","):
    nq, n = (int(x) for x in size.lower().split("x"))
    for bits in (int(b) for b in a.bits.split(",")):
      for row in run_one(nq, n, bits, [int(r) for r in a.rs.split(",")], rng):
        res["results"].append(row)
        res["load_average_at_end"] = os.getloadavg()
        md = to_markdown(res)
        _common.write_results(name, res, md, out=a.out)  # partial results survive
  print(md)


if __name__ == "__main__":
  main()
