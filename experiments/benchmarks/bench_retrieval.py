"""Benchmark: top-R Hamming search, hashjax.metrics.topk_hamming vs NumPy vs faiss.

For each size ``nq x n``, code length and R: random uniform codes; hashjax's
``topk_hamming`` (streamed ``lax.scan`` + running ``lax.top_k``, ties by database
index), faiss-cpu ``IndexBinaryFlat`` (``--threads`` OpenMP threads) and a NumPy
per-query loop (table popcount + ``np.argsort(kind="stable")``) run on
``--np_queries`` queries only, its time extrapolated per query (labelled).

Agreement (asserted): identical distance lists for every query; identical id
sets below the R-th distance; faiss's ids at the R-th distance really are at
that distance (faiss does not order ties); hashjax's id lists equal the NumPy
loop's (ties by index) on the NumPy queries.

  python experiments/benchmarks/bench_retrieval.py
  python experiments/benchmarks/bench_retrieval.py --sizes=5000x20000 --bits=64 --rs=100

hashjax times are whole calls (validation, packing, search), compilation
excluded (a first call on one query chunk). Writes ``bench_retrieval[_<tag>].json``
and ``.md`` to ``--out_dir``, rewritten after every row.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="5000x20000,5000x200000,2000x1000000",
                 help="comma list of NQxN.")
  p.add_argument("--bits", default="64,128")
  p.add_argument("--rs", default="100,1000")
  p.add_argument("--np_queries", type=int, default=20)
  p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads.")
  p.add_argument("--chunk_size", type=int, default=8192)
  p.add_argument("--query_chunk", type=int, default=1024)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tag", default="", help="suffix of the output file names.")
  p.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "results"))
  return p.parse_args(argv)


ARGS = _parse(sys.argv[1:])
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
  q = np.where(rng.random((nq, bits), np.float32) < 0.5, 1, -1).astype(np.int8)
  d = np.where(rng.random((n, bits), np.float32) < 0.5, 1, -1).astype(np.int8)
  q_bytes, db_bytes = np.packbits(q > 0, axis=1), np.packbits(d > 0, axis=1)
  faiss.omp_set_num_threads(a.threads)
  t0 = time.perf_counter()
  index = faiss.IndexBinaryFlat(bits)
  index.add(db_bytes)
  build = time.perf_counter() - t0
  for r in rs:
    kw = dict(chunk_size=a.chunk_size, query_chunk=a.query_chunk)
    t0 = time.perf_counter()
    jax.block_until_ready(metrics.topk_hamming(q[:a.query_chunk], d, r, **kw))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_hj, i_hj = jax.block_until_ready(metrics.topk_hamming(q, d, r, **kw))
    hj_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_fa, i_fa = index.search(q_bytes, r)
    fa_s = time.perf_counter() - t0
    m = min(a.np_queries, nq)
    t0 = time.perf_counter()
    d_np, i_np = numpy_topk(q_bytes[:m], db_bytes, r)
    np_s = (time.perf_counter() - t0) / m * nq
    agree = check(np.asarray(d_hj), np.asarray(i_hj).astype(np.int64),
                  d_fa.astype(np.int32), i_fa, q_bytes, db_bytes, d_np, i_np)
    row = {"nq": nq, "n": n, "bits": bits, "R": r, "hashjax_s": hj_s,
           "hashjax_qps": nq / hj_s, "hashjax_compile_first_s": first,
           "faiss_s": fa_s, "faiss_qps": nq / fa_s, "faiss_build_s": build,
           "numpy_s_extrapolated": np_s, "numpy_queries_timed": m,
           "speedup_vs_numpy": np_s / hj_s, "hashjax_over_faiss_qps": fa_s / hj_s,
           "agreement": agree}
    print(json.dumps(row), flush=True)
    yield row


def to_markdown(res):
  a = res["config"]
  lines = [
      "# Top-R Hamming search: hashjax.metrics.topk_hamming vs NumPy loop vs faiss", "",
      f"Random uniform codes; {res['machine']}; jax {res['versions']['jax']}, faiss "
      f"{res['versions']['faiss']} ({a['threads']} threads), numpy "
      f"{res['versions']['numpy']}; hashjax chunk {a['chunk_size']}, query chunk "
      f"{a['query_chunk']}. Load average (1 min) {res['load_average_at_start'][0]:.1f} at "
      f"start, {res['load_average_at_end'][0]:.1f} at end (shared machine).", "",
      f"Command: `{res['command']}` ({res['date']})", "",
      "| nq x n | bits | R | hashjax q/s | faiss q/s | hashjax/faiss | NumPy loop s "
      "(extrapolated from N queries) | hashjax s | speed-up vs NumPy |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    lines.append(
        f"| {r['nq']:,} x {r['n']:,} | {r['bits']} | {r['R']} | {r['hashjax_qps']:.0f} | "
        f"{r['faiss_qps']:.0f} | {r['hashjax_over_faiss_qps']:.2f} | "
        f"{r['numpy_s_extrapolated']:.1f} ({r['numpy_queries_timed']}) | "
        f"{r['hashjax_s']:.2f} | {r['speedup_vs_numpy']:.1f}x |")
  lines += ["", "Agreement asserted for every row: identical distance lists (hashjax = "
            "faiss), identical id sets below the R-th distance, faiss ids at the R-th "
            "distance verified, hashjax ids = NumPy stable loop on the timed NumPy "
            "queries. hashjax times exclude compilation and include validation and "
            "packing of the database on every call."]
  return "\n".join(lines) + "\n"


def write(res, a):
  """Writes ``bench_retrieval[_<tag>].{json,md}`` (after every row)."""
  res["load_average_at_end"] = os.getloadavg()
  os.makedirs(a.out_dir, exist_ok=True)
  stem = os.path.join(a.out_dir, "bench_retrieval" + (f"_{a.tag}" if a.tag else ""))
  with open(stem + ".json", "w") as f:
    json.dump(res, f, indent=1)
  md = to_markdown(res)
  with open(stem + ".md", "w") as f:
    f.write(md)
  return md


def main():
  a = ARGS
  rng = np.random.default_rng(a.seed)
  res = {
      "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
      "config": vars(a),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible, device "
                 f"{jax.devices()[0].platform}",
      "versions": {"jax": jax.__version__, "numpy": np.__version__,
                   "faiss": faiss.__version__, "python": platform.python_version()},
      "load_average_at_start": os.getloadavg(),
      "results": [],
  }
  for size in a.sizes.split(","):
    nq, n = (int(x) for x in size.lower().split("x"))
    for bits in (int(b) for b in a.bits.split(",")):
      for row in run_one(nq, n, bits, [int(r) for r in a.rs.split(",")], rng):
        res["results"].append(row)
        md = write(res, a)  # partial results survive an interrupted run
  print(md)


if __name__ == "__main__":
  main()
