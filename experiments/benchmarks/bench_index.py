"""Benchmark: hashjax.index exact top-k search vs faiss IndexBinaryFlat (CPU).

Same random codes for both (uniform bits; the uint32 words of hashjax are the
little-endian view of faiss's uint8 bytes, so both see identical codes). For every
size in ``--sizes``, code length in ``--bits`` and k in ``--ks``, measures
queries/s (search only; hashjax compilation timed apart; ``--reps`` timed runs of
each, interleaved hashjax/faiss so that both see the same machine load; the ratio
is taken per rep and its median reported). Every timed run records the 1-minute
load average before and after and is repeated (up to ``--retries`` times,
``--wait_s`` apart) while either is above ``--max_load``; rows still above it are
flagged LOADED. Also reports bytes per database item, and checks
that the answers agree: identical distance lists; identical id sets
for every distance below the k-th; faiss's ids at the k-th distance really are at that
distance (faiss does not order ties); hashjax's ids equal a NumPy brute force
(ties by insertion order) on a sample of queries.

  python experiments/benchmarks/bench_index.py        # 3 sizes x 64/128 bits x 3 k
  python experiments/benchmarks/bench_index.py --sizes=1000x100000 --bits=64 --ks=100
  python experiments/benchmarks/bench_index.py --devices=2  # shard over 2 CPU devices
  python experiments/benchmarks/bench_index.py --sizes=1024x262144 --bits=64 \
      --ks=100 --profile --tag=profile  # + per-op times of one traced search

Writes ``bench_index[_<tag>].json`` and ``.md`` to ``--out`` (default
``/tmp/hashjax_bench``, outside the repository), rewritten after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--sizes", default="5000x20000,5000x200000,2000x1000000",
                 help="comma list of NQxN (queries x database items).")
  p.add_argument("--bits", default="64,128", help="comma list; multiples of 32.")
  p.add_argument("--ks", default="100,1000,10000", help="comma list of k.")
  p.add_argument("--method", default=None, choices=["group", "count", "group_count"],
                 help="hashjax top-k method; default hashjax.index.default_method.")
  p.add_argument("--chunk_size", type=int, default=None,
                 help="default hashjax.index.DEFAULT_CHUNK_SIZE.")
  p.add_argument("--query_chunk_size", type=int, default=None,
                 help="default hashjax.index.DEFAULT_QUERY_CHUNK_SIZE.")
  p.add_argument("--group_size", type=int, default=None,
                 help="group scan only; default hashjax.index.default_group_size(k).")
  p.add_argument("--reps", type=int, default=2, help="interleaved timed runs.")
  p.add_argument("--profile", action="store_true",
                 help="trace one hashjax search with jax.profiler; report per-op times.")
  p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads.")
  p.add_argument("--devices", type=int, default=1,
                 help="XLA CPU devices; > 1 shards the index over them.")
  p.add_argument("--check_queries", type=int, default=200,
                 help="queries checked against a NumPy brute force.")
  p.add_argument("--max_load", type=float, default=1.5)
  p.add_argument("--retries", type=int, default=3)
  p.add_argument("--wait_s", type=float, default=10.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tag", default="", help="suffix of the output file names.")
  p.add_argument("--out", default="/tmp/hashjax_bench",
                 help="output folder (default outside the repository).")
  return p.parse_args(argv)


ARGS = _parse(sys.argv[1:])
if ARGS.devices > 1:  # before jax is imported
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={ARGS.devices}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import collections  # noqa: E402
import glob  # noqa: E402
import gzip  # noqa: E402
import tempfile  # noqa: E402

import _common  # noqa: E402
import _load  # noqa: E402
import faiss  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import index as hindex  # noqa: E402

if ARGS.chunk_size is None:
  ARGS.chunk_size = hindex.DEFAULT_CHUNK_SIZE
if ARGS.query_chunk_size is None:
  ARGS.query_chunk_size = hindex.DEFAULT_QUERY_CHUNK_SIZE

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


def profile_ops(index, queries, k, kw, top=8):
  """Per-op wall ms of one traced search batch (jax.profiler trace events)."""
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      jax.block_until_ready(hindex.search(index, queries, k, **kw))
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


def bench_bits(nq, n, bits, rng):
  """Rows for one database: one per k (hashjax and faiss built once)."""
  a = ARGS
  gate = dict(max_load=a.max_load, retries=a.retries, wait_s=a.wait_s)
  nbytes = bits // 8
  db_bytes = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
  q_bytes = rng.integers(0, 256, size=(nq, nbytes), dtype=np.uint8)
  db_words = db_bytes.view("<u4").astype(np.uint32)
  q_words = q_bytes.view("<u4").astype(np.uint32)

  t0 = time.perf_counter()
  index = hindex.add(hindex.create(bits), db_words)
  if a.devices > 1:
    index = hindex.shard(index)
  jax.block_until_ready(index.packed)
  build_hj = time.perf_counter() - t0
  faiss.omp_set_num_threads(a.threads)
  t0 = time.perf_counter()
  fa = faiss.IndexBinaryFlat(bits)
  fa.add(db_bytes)
  build_fa = time.perf_counter() - t0

  for k in (int(x) for x in a.ks.split(",")):
    if k > n:
      continue
    method = a.method or hindex.default_method(k, bits, n)
    group = None
    if method == "group":
      group = a.group_size or hindex.default_group_size(k)
    out = {"nq": nq, "n": n, "bits": bits, "k": k, "method": method,
           "group_size": group, "hashjax_build_s": build_hj, "faiss_build_s": build_fa}
    kw = dict(chunk_size=a.chunk_size, query_chunk_size=a.query_chunk_size,
              group_size=group, method=method)
    t0 = time.perf_counter()
    jax.block_until_ready(hindex.search(index, q_words[:a.query_chunk_size], k, **kw))
    out["hashjax_first_call_s"] = time.perf_counter() - t0  # compile + one batch
    out["hashjax_bytes_per_item"] = (index.packed.nbytes + index.ids.nbytes) / index.count
    out["hashjax_code_bytes_per_item"] = index.packed.nbytes / index.count
    out["faiss_bytes_per_item"] = fa.code_size  # ids implicit (0..n-1)

    # ---- interleaved, load-gated timing --------------------------------------
    hj_t, fa_t = [], []
    for _ in range(a.reps):
      hj = _load.measure(lambda: jax.block_until_ready(  # noqa: B023
          hindex.search(index, q_words, k, **kw)), **gate)  # noqa: B023
      fm = _load.measure(lambda: fa.search(q_bytes, k), **gate)  # noqa: B023
      hj_t.append(hj)
      fa_t.append(fm)
    d_hj, i_hj = hj_t[-1]["result"]
    d_fa, i_fa = fa_t[-1]["result"]
    hj_s = [t["seconds"] for t in hj_t]
    fa_s = [t["seconds"] for t in fa_t]
    d_hj, i_hj = np.asarray(d_hj), np.asarray(i_hj).astype(np.int64)
    out["hashjax_search_s"] = hj_s
    out["faiss_search_s"] = fa_s
    out["hashjax_timings"] = [_load.summary(t) for t in hj_t]
    out["faiss_timings"] = [_load.summary(t) for t in fa_t]
    out["all_quiet"] = all(t["quiet"] for t in hj_t + fa_t)
    out["host"] = _load.host_summary(hj_t + fa_t)
    out["hashjax_qps"] = nq / float(np.median(hj_s))
    out["faiss_qps"] = nq / float(np.median(fa_s))
    out["qps_ratio_per_rep"] = [f / h for h, f in zip(hj_s, fa_s)]
    out["qps_ratio_hashjax_over_faiss"] = float(np.median(out["qps_ratio_per_rep"]))
    out["memory_ratio_hashjax_over_faiss"] = (
        out["hashjax_bytes_per_item"] / out["faiss_bytes_per_item"])
    if a.profile:
      out["profile_ms"] = profile_ops(index, q_words[:a.query_chunk_size], k, kw)

    # ---- agreement --------------------------------------------------------------
    out["agreement"] = check_against_faiss(d_hj, i_hj, d_fa.astype(np.int32), i_fa,
                                           q_bytes, db_bytes)
    sel = rng.choice(nq, size=min(a.check_queries, nq), replace=False)
    for j in sel:  # exact order against NumPy, ties by insertion order
      dist = np_hamming(q_bytes[j:j + 1], db_bytes)[0]
      order = np.argsort(dist, kind="stable")[:k]
      assert np.array_equal(i_hj[j], order) and np.array_equal(d_hj[j], dist[order])
    out["agreement"]["numpy_exact_order_queries"] = int(len(sel))
    yield out


def _loads(timings):
  worst = max(max(t["load_before"], t["load_after"]) for t in timings)
  flag = "" if all(t["quiet"] for t in timings) else " LOADED"
  return f"{worst:.1f}{flag}"


def _host_line(hosts, a):
  """One line on the host-speed probes of the kept timings (``_load.probe``)."""
  if not hosts:
    return "Host-speed probe: not recorded."
  best = min(h["best_probe_s"] for h in hosts)
  return (f"Host-speed probe (a fixed XLA XOR/popcount kernel timed before every try, "
          f"`_load.probe`): fastest {best * 1e3:.1f} ms; the kept timings' probes at most "
          f"{max(h['max_ratio'] for h in hosts):.2f}x the fastest probe up to then; "
          f"{sum(h['slow'] for h in hosts)} of {sum(h['kept'] for h in hosts)} above "
          f"{_load.PROBE_SLACK}x (a slow probe is retried like a load above "
          f"{a['max_load']}, up to {a['retries']} times).")


def to_markdown(res):
  a, m = res["config"], res["meta"]
  lines = [
      "# hashjax.index vs faiss IndexBinaryFlat (exact top-k)", "",
      f"Random codes; {m['platform']}, {m['cpu_count']} CPUs "
      f"({m.get('cpu', 'model not recorded')}); jax {m['jax']}, faiss "
      f"{m['faiss']} ({a['threads']} threads); hashjax on {a['devices']} XLA CPU "
      f"device(s) (chunk {a['chunk_size']}, query batch {a['query_chunk_size']}); "
      f"{a['reps']} interleaved timed runs each, q/s from the median time, ratio = "
      "median of the per-run ratios. Load average (1 min) "
      f"{res['load_average_at_start'][0]:.1f} at start, "
      f"{res['load_average_at_end'][0]:.1f} at end; the table gives the highest "
      f"1-min load seen around the kept runs (LOADED: above {a['max_load']} after "
      f"{a['retries']} repeats).", "",
      f"Command: `{m['command']}` ({m['date']})", "",
      "| nq x n | bits | k | method (group) | hashjax q/s | faiss q/s | q/s ratio "
      "(hashjax/faiss) | per-run ratios | hashjax B/item (codes+ids) | faiss B/item | "
      "hashjax compile+1st batch s | load hashjax | load faiss |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    grp = f" ({r['group_size']})" if r["group_size"] else ""
    lines.append(
        f"| {r['nq']:,} x {r['n']:,} | {r['bits']} | {r['k']} | {r['method']}{grp} | "
        f"{r['hashjax_qps']:.0f} | {r['faiss_qps']:.0f} | "
        f"{r['qps_ratio_hashjax_over_faiss']:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in r['qps_ratio_per_rep'])} | "
        f"{r['hashjax_bytes_per_item']:.0f} "
        f"({r['hashjax_code_bytes_per_item']:.0f}+"
        f"{r['hashjax_bytes_per_item'] - r['hashjax_code_bytes_per_item']:.0f}) | "
        f"{r['faiss_bytes_per_item']} | {r['hashjax_first_call_s']:.1f} | "
        f"{_loads(r['hashjax_timings'])} | {_loads(r['faiss_timings'])} |")
  lines += ["", _host_line([r["host"] for r in res["results"] if "host" in r], a)]
  lines += ["", "Agreement (asserted): identical distance lists for every query; identical "
            "id sets below the k-th distance; faiss's ids at the k-th distance verified; "
            "hashjax ids equal a NumPy brute force (ties by insertion order) on "
            "sampled queries.", ""]
  for r in res["results"]:
    g = r["agreement"]
    lines.append(
        f"- {r['nq']} x {r['n']}, {r['bits']} bits, k={r['k']}: "
        f"{g['queries_with_identical_id_lists']}/{r['nq']} queries with identical id "
        f"lists ({g['entries_at_kth_distance']} result entries sit at the k-th "
        f"distance, where faiss may pick other tied items); "
        f"{g['unique_distance_positions']} unique-distance positions all equal; "
        f"{g['numpy_exact_order_queries']} queries exact vs NumPy.")
  for r in res["results"]:
    if "profile_ms" in r:
      p = r["profile_ms"]
      lines.append(f"- {r['bits']} bits, k={r['k']} profile (one batch of "
                   f"{a['query_chunk_size']} queries, wall ms; executable "
                   f"{p['executable_total']}): " +
                   ", ".join(f"{n} {t}" for n, t in p["top_ops"]))
  return "\n".join(lines) + "\n"


def main():
  a = ARGS
  rng = np.random.default_rng(a.seed)
  res = {"meta": _common.environment(faiss=faiss.__version__), "config": vars(a),
         "load_average_at_start": os.getloadavg(), "results": []}
  name = "bench_index" + (f"_{a.tag}" if a.tag else "")
  md = ""
  for size in a.sizes.split(","):
    nq, n = (int(x) for x in size.lower().split("x"))
    for bits in (int(b) for b in a.bits.split(",")):
      if bits % 32:
        raise SystemExit(f"--bits must be multiples of 32 here, got {bits}.")
      for r in bench_bits(nq, n, bits, rng):
        print(json.dumps({k: v for k, v in r.items() if "timings" not in k}), flush=True)
        res["results"].append(r)
        res["load_average_at_end"] = os.getloadavg()
        md = to_markdown(res)
        _common.write_results(name, res, md, out=a.out)  # partial results survive
  print(md)


if __name__ == "__main__":
  main()
