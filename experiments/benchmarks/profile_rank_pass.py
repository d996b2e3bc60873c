"""Where the time of mAP's rank pass goes (issue 16.3): the pass with parts removed.

The CPU rank pass (``_ranking.ranked_stats``, method ``"scan"``, reading the
bytes kept by the histogram pass) does four things per block of 32 items and
query: (I) the in-block counts of same-distance items (bit planes), a gather of
the running per-distance counts, the AP sum, and a scatter-add into those
counts. This script times a replica of that loop (checked equal to
``ranked_stats`` to 1e-6), then the same replica with parts removed: without (I),
without the gather, without the scatter, and without all three. The removed
variants compute wrong values; they exist only to be timed. The histogram pass is
timed next to them, with and without kept bytes. One query chunk; all variants
interleaved, ``--reps`` times each, median kept; load average before and after.

  python experiments/benchmarks/profile_rank_pass.py              # 256 x 20480 x 64
  python experiments/benchmarks/profile_rank_pass.py --n=81920 --bits=128
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from hashjax.metrics import _ranking, retrieval  # noqa: E402

PARTS = ("inner", "gather", "scatter")


def replica(kept, ta, tr, *, bits, skip=()):
  """The scan rank pass's AP sum ``[qc]`` over kept bytes ``[nch, qc, chunk]``,
  without the parts named in ``skip`` (then the values are wrong)."""
  qc, block = ta.shape[0], 32
  offset = jnp.arange(qc, dtype=jnp.int32)[:, None] * (bits + 2)
  start = (jnp.cumsum(ta, 1) - ta) + ((jnp.cumsum(tr, 1) - tr) << 16)
  masks = _ranking._bit_masks(block, 2)  # pylint: disable=protected-access

  def body(carry, xs):
    counts, acc = carry
    d = (xs & 0x7F).astype(jnp.int32)
    rel = xs >= 0x80
    if "inner" in skip:
      in_all = in_rel = jnp.zeros_like(d)
    else:
      in_all, in_rel = _ranking._in_block_counts(d, rel, bits, masks)  # pylint: disable=protected-access
    flat = (offset + d).reshape(-1)
    got = jnp.zeros_like(d) if "gather" in skip else counts[flat].reshape(d.shape)
    before = got + in_all + (in_rel << 16)
    rank, hits = (before & 0xFFFF) + 1, (before >> 16) + 1
    acc = acc + jnp.sum(jnp.where(rel, hits.astype(jnp.float32) / rank, 0.0), axis=1)
    if "scatter" not in skip:
      counts = counts.at[flat].add((1 + (rel.astype(jnp.int32) << 16)).reshape(-1),
                                   mode="promise_in_bounds")
    return (counts, acc), None

  nch, _, ch = kept.shape
  xs = kept.reshape(nch, qc, ch // block, block).transpose(0, 2, 1, 3)
  xs = xs.reshape(nch * ch // block, qc, block)
  init = (start.reshape(-1), jnp.zeros((qc,), jnp.float32))
  return lax.scan(body, init, xs, unroll=4)[0][1]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--nq", type=int, default=256, help="one query chunk.")
  p.add_argument("--n", type=int, default=20480)
  p.add_argument("--bits", type=int, default=64)
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="/tmp/hashjax_bench")
  a = p.parse_args(argv)
  rng = np.random.default_rng(a.seed)
  q = np.where(rng.random((a.nq, a.bits)) < 0.5, 1, -1).astype(np.float32)
  d = np.where(rng.random((a.n, a.bits)) < 0.5, 1, -1).astype(np.float32)
  ql = (rng.random((a.nq, 24)) < 0.1).astype(np.float32)
  dl = (rng.random((a.n, 24)) < 0.1).astype(np.float32)
  prep = retrieval._Prepared(q, d, ql, dl, query_chunk=a.nq)  # pylint: disable=protected-access
  _, _, qp, qlab = next(prep.query_batches())
  n = jnp.int32(prep.n)
  hist = functools.partial(_ranking.histograms, qp, prep.dp, qlab, prep.dl, n,
                           bits=a.bits, chunk=prep.chunk, gains=False)
  ta, tr, tg, per_chunk, kept = hist(keep=True, block=32, method="scan")
  kvec = jnp.zeros((0,), jnp.int32)
  fns = {"ranked_stats (the library's rank pass)": lambda: _ranking.ranked_stats(
      qp, prep.dp, qlab, prep.dl, n, ta, tr, tg, per_chunk, kvec, kept, bits=a.bits,
      chunk=prep.chunk, block=32, ndcg=False, method="scan")}
  for skip in ((), *((s,) for s in PARTS), PARTS):
    name = "replica" + "".join(f" without {s}" for s in skip)
    fns[name] = functools.partial(jax.jit(functools.partial(
        replica, bits=a.bits, skip=skip)), kept, ta, tr)
  fns["histogram pass, keeping bytes"] = lambda: hist(keep=True, block=32, method="scan")
  fns["histogram pass"] = lambda: hist()
  ap = np.asarray(fns["ranked_stats (the library's rank pass)"]()["ap"])
  num_rel = np.asarray(tr).sum(1)
  mine = np.asarray(fns["replica"]()) / np.maximum(num_rel, 1)
  assert np.abs(mine - ap).max() < 1e-6, "the replica is not the rank pass"
  for f in fns.values():
    jax.block_until_ready(f())
  load_before = os.getloadavg()
  runs = {k: [] for k in fns}
  for _ in range(a.reps):
    for k, f in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(f())
      runs[k].append(time.perf_counter() - t0)
  load_after = os.getloadavg()
  med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
  res = {"meta": _common.environment(), "config": vars(a), "median_s": med,
         "all_s": runs, "load_before": load_before, "load_after": load_after}
  pairs = a.nq * a.n
  lines = [f"# mAP rank pass with parts removed, {a.nq} x {a.n:,} x {a.bits} bits", "",
           f"Command: `{res['meta']['command']}` ({res['meta']['date']}); one query "
           f"chunk, median of {a.reps} interleaved runs; load (1 min) "
           f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.", "",
           "| variant | median ms | ns per pair |", "|---|---|---|"]
  lines += [f"| {k} | {v * 1e3:.1f} | {v / pairs * 1e9:.2f} |" for k, v in med.items()]
  md = "\n".join(lines) + "\n"
  _common.write_results(f"profile_rank_pass_{a.nq}x{a.n}x{a.bits}", res, md, out=a.out)
  print(md)


if __name__ == "__main__":
  main()
