"""Benchmark: hashjax.index exact top-k search vs faiss IndexBinaryFlat (CPU).

Same random codes for both (uniform bits; the uint32 words of hashjax are the
little-endian view of faiss's uint8 bytes, so both see identical codes). Measures
queries/s (search only; hashjax compilation timed apart; ``--reps`` timed runs of
each, interleaved hashjax/faiss so that both see the same machine load; the ratio
is taken per rep and its median reported) and bytes per database item, and checks
that the answers agree: identical distance lists; identical id sets
for every distance below the k-th; faiss's ids at the k-th distance really are at that
distance (faiss does not order ties); hashjax's ids equal a NumPy brute force
(ties by insertion order) on a sample of queries.

  python experiments/benchmarks/bench_index.py                    # 1M db, 10k queries
  python experiments/benchmarks/bench_index.py --n=100000 --nq=1000 --bits=64
  python experiments/benchmarks/bench_index.py --devices=2        # shard over 2 CPU devices
  python experiments/benchmarks/bench_index.py --n=262144 --nq=1024 --bits=64 \
      --profile --tag=profile    # + per-op times of one traced search (jax.profiler)

Writes ``bench_index[_<tag>].json`` and ``.md`` to ``--out_dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n", type=int, default=1_000_000, help="database size.")
  p.add_argument("--nq", type=int, default=10_000, help="number of queries.")
  p.add_argument("--bits", default="64,128", help="comma list; multiples of 32.")
  p.add_argument("--k", type=int, default=100)
  p.add_argument("--chunk_size", type=int, default=None,
                 help="default hashjax.index.DEFAULT_CHUNK_SIZE.")
  p.add_argument("--query_chunk_size", type=int, default=None,
                 help="default hashjax.index.DEFAULT_QUERY_CHUNK_SIZE.")
  p.add_argument("--group_size", type=int, default=None,
                 help="default hashjax.index.default_group_size(k).")
  p.add_argument("--reps", type=int, default=2, help="interleaved timed runs.")
  p.add_argument("--profile", action="store_true",
                 help="trace one hashjax search with jax.profiler; report per-op times.")
  p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads.")
  p.add_argument("--devices", type=int, default=1,
                 help="XLA CPU devices; > 1 shards the index over them.")
  p.add_argument("--check_queries", type=int, default=200,
                 help="queries checked against a NumPy brute force.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tag", default="", help="suffix of the output file names.")
  p.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "results"))
  return p.parse_args(argv)


ARGS = _parse(sys.argv[1:])
if ARGS.devices > 1:  # before jax is imported
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={ARGS.devices}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import tempfile  # noqa: E402

import faiss  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import index as hindex  # noqa: E402

if ARGS.chunk_size is None:
  ARGS.chunk_size = hindex.DEFAULT_CHUNK_SIZE
if ARGS.query_chunk_size is None:
  ARGS.query_chunk_size = hindex.DEFAULT_QUERY_CHUNK_SIZE
if ARGS.group_size is None:
  ARGS.group_size = hindex.default_group_size(ARGS.k)

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int32)


def np_hamming(q_bytes, db_bytes):
  """[nq, n] distances between uint8 code rows (NumPy, table popcount)."""
  return _POP8[np.bitwise_xor(q_bytes[:, None, :], db_bytes[None, :, :])].sum(-1)


def check_against_faiss(d_hj, i_hj, d_fa, i_fa, q_bytes, db_bytes):
  """Agreement statistics; raises AssertionError on a real disagreement."""
  assert np.array_equal(d_hj, d_fa), "distance lists differ"
  kth = d_hj[:, -1:]
  for j in range(d_hj.shape[0]):
    lt = d_hj[j] < kth[j, 0]
    assert np.array_equal(np.sort(i_hj[j, lt]), np.sort(i_fa[j, lt])), (
        f"query {j}: different items below the k-th distance")
  # faiss's ids at the k-th distance must be at that distance (checked exactly).
  at_k = d_fa == kth
  rows, cols = np.nonzero(at_k)
  true = _POP8[np.bitwise_xor(q_bytes[rows], db_bytes[i_fa[rows, cols]])].sum(-1)
  assert np.array_equal(true, d_fa[rows, cols]), "faiss ids at the k-th distance wrong"
  assert len(np.unique(np.stack([rows, i_fa[rows, cols]]), axis=1).T) == len(rows)
  # Positions whose distance occurs once in the row and is below the k-th: same id.
  uniq = np.zeros_like(at_k)
  for j in range(d_hj.shape[0]):
    vals, counts = np.unique(d_hj[j], return_counts=True)
    uniq[j] = np.isin(d_hj[j], vals[counts == 1]) & (d_hj[j] < kth[j, 0])
  assert np.array_equal(i_hj[uniq], i_fa[uniq]), "ids at unique distances differ"
  return {
      "distances_identical": True,
      "id_sets_below_kth_identical": True,
      "unique_distance_positions": int(uniq.sum()),
      "queries_with_identical_id_lists": int(np.all(i_hj == i_fa, axis=1).sum()),
      "entries_at_kth_distance": int(at_k.sum()),
  }


def profile_ops(index, queries, kw, top=8):
  """Per-op wall ms of one traced search batch (jax.profiler trace events)."""
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      jax.block_until_ready(hindex.search(index, queries, ARGS.k, **kw))
    path = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
      events = json.load(f)["traceEvents"]
  ms = collections.Counter()
  for e in events:
    if e.get("ph") == "X":
      ms[e["name"]] += e["dur"] / 1e3
  total = ms.get("ThunkExecutor::Execute (wait for completion)", 0.0)
  ops = [(n, round(t, 1)) for n, t in ms.most_common()
         if not n.startswith(("$", "ThunkExecutor", "Pjit", "Common", "end:", "while"))]
  return {"executable_total": round(total, 1), "top_ops": ops[:top]}


def bench_bits(bits, rng):
  a = ARGS
  nbytes = bits // 8
  db_bytes = rng.integers(0, 256, size=(a.n, nbytes), dtype=np.uint8)
  q_bytes = rng.integers(0, 256, size=(a.nq, nbytes), dtype=np.uint8)
  db_words = db_bytes.view("<u4").astype(np.uint32)
  q_words = q_bytes.view("<u4").astype(np.uint32)
  out = {"bits": bits}

  # ---- hashjax ----------------------------------------------------------------
  t0 = time.perf_counter()
  index = hindex.add(hindex.create(bits), db_words)
  if a.devices > 1:
    index = hindex.shard(index)
  jax.block_until_ready(index.packed)
  out["hashjax_build_s"] = time.perf_counter() - t0
  kw = dict(chunk_size=a.chunk_size, query_chunk_size=a.query_chunk_size,
            group_size=a.group_size)
  t0 = time.perf_counter()
  jax.block_until_ready(hindex.search(index, q_words[:a.query_chunk_size], a.k, **kw))
  out["hashjax_first_call_s"] = time.perf_counter() - t0  # compile + one batch
  out["hashjax_bytes_per_item"] = (index.packed.nbytes + index.ids.nbytes) / index.count
  out["hashjax_code_bytes_per_item"] = index.packed.nbytes / index.count

  faiss.omp_set_num_threads(a.threads)
  t0 = time.perf_counter()
  fa = faiss.IndexBinaryFlat(bits)
  fa.add(db_bytes)
  out["faiss_build_s"] = time.perf_counter() - t0
  out["faiss_bytes_per_item"] = fa.code_size  # ids implicit (0..n-1)

  # ---- interleaved timing ---------------------------------------------------------
  hj_s, fa_s = [], []
  for _ in range(a.reps):
    t0 = time.perf_counter()
    d_hj, i_hj = jax.block_until_ready(hindex.search(index, q_words, a.k, **kw))
    hj_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    d_fa, i_fa = fa.search(q_bytes, a.k)
    fa_s.append(time.perf_counter() - t0)
  d_hj, i_hj = np.asarray(d_hj), np.asarray(i_hj).astype(np.int64)
  out["hashjax_search_s"] = hj_s
  out["faiss_search_s"] = fa_s
  out["hashjax_qps"] = a.nq / float(np.median(hj_s))
  out["faiss_qps"] = a.nq / float(np.median(fa_s))
  out["qps_ratio_per_rep"] = [f / h for h, f in zip(hj_s, fa_s)]
  out["qps_ratio_hashjax_over_faiss"] = float(np.median(out["qps_ratio_per_rep"]))
  out["memory_ratio_hashjax_over_faiss"] = (
      out["hashjax_bytes_per_item"] / out["faiss_bytes_per_item"])
  if a.profile:
    out["profile_ms"] = profile_ops(index, q_words[:a.query_chunk_size], kw)

  # ---- agreement ----------------------------------------------------------------
  out["agreement"] = check_against_faiss(d_hj, i_hj, d_fa.astype(np.int32), i_fa,
                                         q_bytes, db_bytes)
  sel = rng.choice(a.nq, size=min(a.check_queries, a.nq), replace=False)
  for j in sel:  # exact order against NumPy, ties by insertion order
    dist = np_hamming(q_bytes[j:j + 1], db_bytes)[0]
    order = np.lexsort((np.arange(a.n), dist))[:a.k]
    assert np.array_equal(i_hj[j], order) and np.array_equal(d_hj[j], dist[order])
  out["agreement"]["numpy_exact_order_queries"] = int(len(sel))
  return out


def to_markdown(res):
  a = res["config"]
  lines = [
      f"# hashjax.index vs faiss IndexBinaryFlat (exact top-{a['k']})", "",
      f"Database {a['n']:,} random codes, {a['nq']:,} queries, {res['machine']}, "
      f"faiss {a['threads']} threads, hashjax on {a['devices']} XLA CPU device(s) "
      f"(chunk {a['chunk_size']}, query batch {a['query_chunk_size']}, group "
      f"{a['group_size']}); {a['reps']} interleaved timed runs each, q/s from the "
      "median time, ratio = median of the per-run ratios. Load average "
      f"(1 min) {res['load_average_at_start'][0]:.1f} at start, "
      f"{res['load_average_at_end'][0]:.1f} at end (other jobs share the machine; "
      "throughput varies with it).", "",
      f"Command: `{res['command']}`", "",
      "| bits | hashjax q/s | faiss q/s | q/s ratio (hashjax/faiss) | per-run ratios | "
      "hashjax B/item (codes+ids) | faiss B/item | memory ratio | "
      "hashjax compile+1st batch s |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    lines.append(
        f"| {r['bits']} | {r['hashjax_qps']:.0f} | {r['faiss_qps']:.0f} | "
        f"{r['qps_ratio_hashjax_over_faiss']:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in r['qps_ratio_per_rep'])} | "
        f"{r['hashjax_bytes_per_item']:.0f} "
        f"({r['hashjax_code_bytes_per_item']:.0f}+"
        f"{r['hashjax_bytes_per_item'] - r['hashjax_code_bytes_per_item']:.0f}) | "
        f"{r['faiss_bytes_per_item']} | {r['memory_ratio_hashjax_over_faiss']:.2f} | "
        f"{r['hashjax_first_call_s']:.1f} |")
  lines += ["", "Agreement (asserted): identical distance lists for every query; identical "
            "id sets below the k-th distance; faiss's ids at the k-th distance verified; "
            "hashjax ids equal a NumPy brute force (ties by insertion order) on "
            "sampled queries.", ""]
  for r in res["results"]:
    g = r["agreement"]
    lines.append(
        f"- {r['bits']} bits: {g['queries_with_identical_id_lists']}/{a['nq']} queries "
        f"with identical id lists ({g['entries_at_kth_distance']} result entries sit at "
        f"the k-th distance, where faiss may pick other tied items); "
        f"{g['unique_distance_positions']} unique-distance positions all equal; "
        f"{g['numpy_exact_order_queries']} queries exact vs NumPy.")
  for r in res["results"]:
    if "profile_ms" in r:
      p = r["profile_ms"]
      lines.append(f"- {r['bits']} bits profile (one batch of {a['query_chunk_size']} "
                   f"queries, wall ms; executable {p['executable_total']}): " +
                   ", ".join(f"{n} {t}" for n, t in p["top_ops"]))
  return "\n".join(lines) + "\n"


def main():
  a = ARGS
  rng = np.random.default_rng(a.seed)
  load_start = os.getloadavg()
  results = []
  for bits in [int(b) for b in a.bits.split(",")]:
    if bits % 32:
      raise ValueError(f"--bits must be multiples of 32 here, got {bits}.")
    r = bench_bits(bits, rng)
    print(json.dumps(r), flush=True)
    results.append(r)
  res = {
      "config": vars(a),
      "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible",
      "versions": {"jax": jax.__version__, "faiss": faiss.__version__,
                   "numpy": np.__version__, "python": platform.python_version()},
      "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
      "load_average_at_start": load_start,
      "load_average_at_end": os.getloadavg(),
      "results": results,
  }
  os.makedirs(a.out_dir, exist_ok=True)
  stem = os.path.join(a.out_dir, "bench_index" + (f"_{a.tag}" if a.tag else ""))
  with open(stem + ".json", "w") as f:
    json.dump(res, f, indent=1)
  with open(stem + ".md", "w") as f:
    f.write(to_markdown(res))
  print(to_markdown(res))


if __name__ == "__main__":
  main()
