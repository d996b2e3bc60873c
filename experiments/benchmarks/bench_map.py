"""Benchmark: hashjax.metrics.mean_average_precision vs the per-query NumPy loop.

The NumPy loop follows ``calc_map_k`` of the DCMH / DCHMT / DCGH family: per
query, Hamming distances ``0.5 * (b - q @ B.T)``, ``np.argsort``, then the
precision at each of the first ``min(k, #relevant)`` relevant items wherever they
rank (hashjax's default ``definition="calc_map_k"``). It is timed as published
(``np.argsort`` default quicksort: tie order arbitrary) and checked in a stable
variant (``kind="stable"``, ties by database index, the order hashjax defines)
that must agree with hashjax to 1e-6.

Floors, timed next to the full mAP@all so that the gap stays visible: the
distances alone (the streamed XOR/popcount over every query-item pair, reduced to
a checksum) and the histogram pass (``_ranking.histograms``, the first of
mAP's two passes). Every timing records the 1-minute load average before and
after and is repeated (``--retries``) while it is above ``--max_load`` or while the
host-speed probe (``_load.probe``) is slow.

Random codes (uniform bits) and random multi-hot labels (``--classes``, each on
with probability ``--label_p``). The NumPy loop runs on ``--np_queries``
queries (all by default) and its time is extrapolated per query when fewer;
BLAS threads for NumPy are set by ``--np_threads`` (default 1: with 2 threads
on a shared 2-core box the per-query ``q @ B.T`` oversubscribes and is ~10x
slower, which would flatter hashjax).

  python experiments/benchmarks/bench_map.py                 # 5000 x 20000 x 64 bits
  python experiments/benchmarks/bench_map.py --np_queries=500

Writes ``bench_map[_<tag>].json`` and ``.md`` to ``--out`` (default
``/tmp/hashjax_bench``, outside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--nq", type=int, default=5000)
  p.add_argument("--n", type=int, default=20000)
  p.add_argument("--bits", type=int, default=64)
  p.add_argument("--classes", type=int, default=24)
  p.add_argument("--label_p", type=float, default=0.1)
  p.add_argument("--top_k", type=int, default=1000)
  p.add_argument("--np_queries", type=int, default=0, help="0 = all queries.")
  p.add_argument("--np_threads", type=int, default=1)
  p.add_argument("--query_chunk", type=int, default=256)
  p.add_argument("--block", type=int, default=32)
  p.add_argument("--chunk", type=int, default=4096)
  p.add_argument("--rank_method", default=None, choices=("scan", "blocks"),
                 help="rank pass (default: 'scan' on CPU, 'blocks' on accelerators).")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--max_load", type=float, default=1.5,
                 help="repeat a timing taken above this 1-minute load average.")
  p.add_argument("--retries", type=int, default=3, help="repeats of a loaded timing.")
  p.add_argument("--wait_s", type=float, default=10.0, help="pause before a repeat.")
  p.add_argument("--repeats", type=int, default=5,
                 help="rounds of the hashjax timings (floors, mAP@all, mAP@K in turn); "
                      "the median of each is kept.")
  p.add_argument("--tag", default="", help="suffix of the output file names.")
  p.add_argument("--out", default="/tmp/hashjax_bench",
                 help="output folder (default outside the repository).")
  return p.parse_args(argv)


ARGS = _parse(sys.argv[1:])
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
  os.environ[_v] = str(ARGS.np_threads)  # before numpy is imported
os.environ.setdefault("JAX_PLATFORMS", "cpu")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _load  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from hashjax import codes, metrics  # noqa: E402
from hashjax.metrics import _ranking, retrieval  # noqa: E402


def calc_map_k(qB, rB, query_L, retrieval_L, k=None, stable=False):  # noqa: N803
  """The DCMH-family per-query loop (float codes, float labels).

  Precision at the first ``min(k, #relevant)`` relevant items of the ranking;
  a query without relevant items adds 0; the sum is divided by all queries.
  """
  num_query = query_L.shape[0]
  k = retrieval_L.shape[0] if k is None else k
  bits = qB.shape[1]
  total = 0.0
  for it in range(num_query):
    gnd = (query_L[it] @ retrieval_L.T > 0).astype(np.float32)
    tsum = int(gnd.sum())
    if tsum == 0:
      continue
    hamm = 0.5 * (bits - qB[it] @ rB.T)
    ind = np.argsort(hamm, kind="stable" if stable else None)
    first = min(k, tsum)
    tindex = np.flatnonzero(gnd[ind])[:first] + 1.0
    total += np.mean(np.arange(1, first + 1) / tindex)
  return total / num_query


@jax.jit
def _distance_floor(qp, dp):
  """Streams the distances of ``qp [qc, w]`` to ``dp [m, w]`` (chunks of 4096 rows,
  as the histogram pass), reduced to a checksum so nothing large is written."""
  chunks = dp.reshape(-1, 4096, dp.shape[1])

  def body(acc, p):
    return acc + jnp.sum(codes.hamming_distance(qp, p), axis=1), None

  return lax.scan(body, jnp.zeros((qp.shape[0],), jnp.int32), chunks)[0]


def floors(q, d, ql, dl, opts):
  """Callables timing the distances alone and the histogram pass (all queries)."""
  prep = retrieval._Prepared(q, d, ql, dl, **opts)  # pylint: disable=protected-access
  dp = jnp.pad(prep.dp, ((0, -prep.dp.shape[0] % 4096), (0, 0)))
  n = jnp.int32(prep.n)
  batches = list(prep.query_batches())

  def distances():
    return jax.block_until_ready([_distance_floor(qp, dp) for _, _, qp, _ in batches])

  def histograms():
    return jax.block_until_ready([
        _ranking.histograms(qp, prep.dp, ql_, prep.dl, n, bits=prep.bits,
                            chunk=prep.chunk, gains=False)[:3]
        for _, _, qp, ql_ in batches])

  distances()  # compile
  histograms()
  return distances, histograms


def main():
  a = ARGS
  rng = np.random.default_rng(a.seed)
  q = np.where(rng.random((a.nq, a.bits)) < 0.5, 1, -1).astype(np.float32)
  d = np.where(rng.random((a.n, a.bits)) < 0.5, 1, -1).astype(np.float32)
  ql = (rng.random((a.nq, a.classes)) < a.label_p).astype(np.float32)
  dl = (rng.random((a.n, a.classes)) < a.label_p).astype(np.float32)
  opts = dict(query_chunk=a.query_chunk, block=a.block, chunk=a.chunk,
              rank_method=a.rank_method)
  nnp = a.nq if a.np_queries <= 0 else min(a.np_queries, a.nq)
  gate = dict(max_load=a.max_load, retries=a.retries, wait_s=a.wait_s)
  load_start = os.getloadavg()
  dist_fn, hist_fn = floors(q, d, ql, dl, opts)
  names = {None: "mAP@all", a.top_k: f"mAP@{a.top_k} (calc_map_k)"}
  runs, first = {}, {}
  for top_k in names:
    runs[top_k] = lambda nq=a.nq, top_k=top_k: float(metrics.mean_average_precision(
        q[:nq], d, ql[:nq], dl, top_k, **opts))
    first[top_k] = _load.measure(lambda top_k=top_k: runs[top_k](a.query_chunk),
                                 retries=0)  # compiles
  # The hashjax timings in rounds, each round every kernel once (a single timing
  # moves by 1.5x run to run on this host): medians of the same rounds.
  timed = {"distances": dist_fn, "histogram_pass": hist_fn,
           **{top_k: runs[top_k] for top_k in names}}
  rounds = {k: [] for k in timed}
  for _ in range(max(1, a.repeats)):
    for k, fn in timed.items():
      rounds[k].append(_load.measure(fn, **gate))
  med = {k: _load.median(v) for k, v in rounds.items()}

  def _summary(k):
    return dict(_load.summary(med[k]), all_s=[m["seconds"] for m in rounds[k]])
  floor = {"distances": _summary("distances"), "histogram_pass": _summary("histogram_pass")}
  print(json.dumps(floor), flush=True)
  rows, refs = [], []
  for top_k, name in names.items():
    run, hj = runs[top_k], med[top_k]
    hj_sub = hj["result"] if nnp == a.nq else run(nnp)
    ref = _load.measure(lambda: calc_map_k(q[:nnp], d, ql[:nnp], dl, top_k),  # noqa: B023
                        **gate)
    ref_stable = _load.measure(
        lambda: calc_map_k(q[:nnp], d, ql[:nnp], dl, top_k, stable=True),  # noqa: B023
        **gate)
    refs += [ref, ref_stable]
    diff = abs(hj_sub - ref_stable["result"])
    assert diff < 1e-6, f"{name}: hashjax {hj_sub} vs NumPy stable {ref_stable['result']}"
    np_full = ref["seconds"] / nnp * a.nq
    row = {
        "metric": name, "hashjax": hj["result"], "hashjax_s": hj["seconds"],
        "hashjax_timing": _summary(top_k), "hashjax_compile_first_s": first[top_k]["seconds"],
        "numpy_queries": nnp, "numpy_s_measured": ref["seconds"],
        "numpy_timing": _load.summary(ref), "numpy_s_for_all_queries": np_full,
        "numpy_s_extrapolated": nnp < a.nq,
        "numpy_stable_s_measured": ref_stable["seconds"],
        "numpy_map_on_subset": ref["result"],
        "numpy_stable_map_on_subset": ref_stable["result"],
        "hashjax_map_on_subset": hj_sub, "abs_diff_vs_numpy_stable": diff,
        "abs_diff_vs_numpy_quicksort": abs(hj_sub - ref["result"]),
        "speedup_vs_numpy": np_full / hj["seconds"],
        "speedup_vs_numpy_stable": ref_stable["seconds"] / nnp * a.nq / hj["seconds"],
        "over_histogram_pass": hj["seconds"] / floor["histogram_pass"]["seconds"],
        "over_distances": hj["seconds"] / floor["distances"]["seconds"],
    }
    print(json.dumps(row), flush=True)
    rows.append(row)
  kept = [m for v in rounds.values() for m in v] + refs
  res = {
      "meta": _common.environment(), "config": vars(a),
      "load_average_at_start": load_start, "load_average_at_end": os.getloadavg(),
      "host": _load.host_summary(kept), "floors": floor, "results": rows,
  }
  name = "bench_map" + (f"_{a.tag}" if a.tag else "")
  md = to_markdown(res)
  _common.write_results(name, res, md, out=a.out)
  print(md)


def _host_line(h, a):
  """One line on the host-speed probes of the kept timings (``_load.probe``)."""
  if not h:
    return "Host-speed probe: not recorded."
  return (f"Host-speed probe (a fixed XLA XOR/popcount kernel timed before every try, "
          f"`_load.probe`): fastest {h['best_probe_s'] * 1e3:.1f} ms; the kept timings' "
          f"probes at most {h['max_ratio']:.2f}x that; {h['slow']} of {h['kept']} above "
          f"{_load.PROBE_SLACK}x (a slow probe is retried like a load above "
          f"{a['max_load']}, up to {a['retries']} times).")


def _loads(t):
  flag = "" if t["quiet"] else " LOADED"
  return f"{t['load_before']:.1f}/{t['load_after']:.1f}{flag}"


def to_markdown(res):
  a, m, f = res["config"], res["meta"], res["floors"]
  lines = [
      "# hashjax mean_average_precision vs the per-query NumPy loop", "",
      f"{a['nq']:,} queries x {a['n']:,} database items x {a['bits']} bits, random codes, "
      f"{a['classes']} classes (p={a['label_p']}); {m['platform']}, {m['cpu_count']} "
      f"CPUs ({m.get('cpu', 'model not recorded')}), {m['devices']}; jax {m['jax']}, "
      f"numpy {m['numpy']}; NumPy BLAS threads "
      f"{a['np_threads']}; hashjax query_chunk {a['query_chunk']}, block {a['block']}, "
      f"chunk {a['chunk']}, rank_method {a.get('rank_method') or 'default'}. "
      f"Load average (1 min) {res['load_average_at_start'][0]:.1f} at "
      f"start, {res['load_average_at_end'][0]:.1f} at end; per timing before/after "
      f"below (LOADED: still above {a['max_load']} after {a['retries']} repeats).", "",
      f"Command: `{m['command']}` ({m['date']})", "",
      _host_line(res.get("host"), a), "",
      f"Floors (all queries): distances alone {f['distances']['seconds']:.2f} s "
      f"(load {_loads(f['distances'])}), histogram pass "
      f"{f['histogram_pass']['seconds']:.2f} s (load {_loads(f['histogram_pass'])}).", "",
      "| metric | hashjax value | hashjax s | / histogram pass | / distances | "
      "NumPy loop s (queries timed) | speed-up | NumPy stable-sort loop speed-up | "
      "abs diff vs NumPy stable | load hashjax | load NumPy |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in res["results"]:
    ext = " extrapolated" if r["numpy_s_extrapolated"] else ""
    lines.append(
        f"| {r['metric']} | {r['hashjax']:.6f} | {r['hashjax_s']:.2f} | "
        f"{r['over_histogram_pass']:.2f}x | {r['over_distances']:.2f}x | "
        f"{r['numpy_s_for_all_queries']:.2f}{ext} ({r['numpy_queries']}) | "
        f"{r['speedup_vs_numpy']:.2f}x | {r['speedup_vs_numpy_stable']:.2f}x | "
        f"{r['abs_diff_vs_numpy_stable']:.1e} | {_loads(r['hashjax_timing'])} | "
        f"{_loads(r['numpy_timing'])} |")
  lines += ["", f"hashjax s and the floors: median of {a.get('repeats', 1)} rounds, each "
            "round timing every kernel once in turn (all timings in the JSON, `all_s`). "
            "hashjax s excludes compilation (first call on one query chunk: "
            + ", ".join(f"{r['hashjax_compile_first_s']:.1f} s" for r in res["results"])
            + "). Agreement with the stable NumPy loop asserted to 1e-6; the published loop "
            "(quicksort, arbitrary tie order) differs by "
            + ", ".join(f"{r['abs_diff_vs_numpy_quicksort']:.1e}" for r in res["results"])
            + "."]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
