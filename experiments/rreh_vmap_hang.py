"""Minimal reproducer: batched LAPACK calls under ``jax.vmap`` on a small CPU machine.

A theta grid of a ridge problem, each grid point a Cholesky and a QR of the same
sizes as RREH on Wikipedia at 10% paired (n = 1195 items, k = 200). On a 2-core
machine with jaxlib 0.10, ``jax.vmap`` over the grid (batched custom calls) was seen
to make no progress for 400 s where one point takes well under a second; the same
grid under ``lax.map`` (one factorisation after another) finishes. No hashjax code.

  timeout 120 python experiments/rreh_vmap_hang.py --mode map
  timeout 120 python experiments/rreh_vmap_hang.py --mode vmap
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false timeout 120 \\
      python experiments/rreh_vmap_hang.py --mode vmap

Prints one JSON line: mode, XLA_FLAGS, grid size, compile+first-run and second-run
seconds, and ``os.getloadavg()`` before and after.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp


def ridge(phi, theta):
  """Cholesky solve of ``phi^T phi + theta I`` and a QR of ``[phi; sqrt(theta) I]``."""
  k = phi.shape[1]
  a = phi.T @ phi + theta * jnp.eye(k)
  c = jnp.linalg.cholesky(a)
  inv = jax.scipy.linalg.cho_solve((c, True), jnp.eye(k))
  _, r = jnp.linalg.qr(jnp.concatenate([phi, jnp.sqrt(theta) * jnp.eye(k)]))
  return jnp.sum(inv) + jnp.sum(jnp.abs(jnp.diag(r)))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--mode", choices=("vmap", "map"), default="vmap")
  ap.add_argument("--n", type=int, default=1195)
  ap.add_argument("--k", type=int, default=200)
  ap.add_argument("--grid", type=int, default=8)
  args = ap.parse_args()
  phi = jax.random.normal(jax.random.key(0), (args.n, args.k))
  thetas = jnp.logspace(-2, 1, args.grid)
  if args.mode == "vmap":
    fn = jax.jit(jax.vmap(ridge, in_axes=(None, 0)))
  else:
    fn = jax.jit(lambda p, t: jax.lax.map(lambda th: ridge(p, th), t))
  load0 = os.getloadavg()
  t0 = time.perf_counter()
  fn(phi, thetas).block_until_ready()
  t1 = time.perf_counter()
  fn(phi, thetas + 1.0).block_until_ready()
  t2 = time.perf_counter()
  print(json.dumps(dict(mode=args.mode, xla_flags=os.environ.get("XLA_FLAGS", ""),
                        jax=jax.__version__, cpus=os.cpu_count(), n=args.n, k=args.k,
                        grid=args.grid, first_s=round(t1 - t0, 3),
                        second_s=round(t2 - t1, 3), load_before=load0,
                        load_after=os.getloadavg())), flush=True)


if __name__ == "__main__":
  main()
