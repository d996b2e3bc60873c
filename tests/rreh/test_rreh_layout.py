"""The solver with paired items anywhere on the item axis (``RREHProblem.paired_rows``).

A multi-process fit lays the item axis out as one block per process
(docs/rreh.md#multihost), so the paired items are not rows ``[0, n_p)``. On one
process: the same problem with its rows permuted (``paired_rows`` saying where the
paired items went) must give the same fit, up to float rounding.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hashjax import rreh


def _data(seed=0, n_p=50, n_u=(90, 70), dims=(10, 7)):
  rs = np.random.default_rng(seed)
  centers = [rs.normal(size=(4, d)) for d in dims]
  def items(n):
    lab = rs.integers(0, 4, n)
    return [(c[lab] + 0.7 * rs.normal(size=(n, c.shape[1]))).astype(np.float32)
            for c in centers]
  paired = items(n_p)
  unpaired = [items(n)[i] for i, n in enumerate(n_u)]
  return paired, unpaired


@pytest.mark.parametrize("init_v", ["gaussian", "pca"])
def test_permuted_item_axis_gives_the_same_fit(init_v):
  paired, unpaired = _data()
  problem, _ = rreh.make_problem(paired, unpaired, dict(num_anchors=30),
                                 jax.random.key(0))
  assert problem.paired_rows is None          # one process: rows [0, n_p)
  n, n_p = problem.phi.shape[1], problem.num_paired
  perm = np.random.default_rng(1).permutation(n)   # new row j holds old row perm[j]
  where = np.argsort(perm)                          # old row i is now row where[i]
  mesh = problem.mesh
  moved = dataclasses.replace(
      problem,
      phi=jax.device_put(np.asarray(problem.phi)[:, perm],
                         NamedSharding(mesh, P(None, "data", None))),
      mask=jax.device_put(np.asarray(problem.mask)[:, perm],
                          NamedSharding(mesh, P(None, "data"))),
      paired_rows=jnp.asarray(where[:n_p], jnp.int32))
  hyper = rreh.make_hyper(theta=0.3, beta=0.1, lam=1e-2)
  kw = dict(bits=8, iterations=6, init_v=init_v)
  a = rreh.run(problem, hyper, jax.random.key(2), **kw)
  b = rreh.run(moved, hyper, jax.random.key(2), **kw)
  np.testing.assert_allclose(np.asarray(b.W), np.asarray(a.W), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(b.objective), np.asarray(a.objective),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(b.V), np.asarray(a.V), rtol=1e-4, atol=1e-5)
  real = np.asarray(problem.mask)[:, perm] > 0
  np.testing.assert_array_equal(np.asarray(b.B)[real],
                                np.asarray(a.B)[:, perm][real])
  # The paired rows matter: the same permutation with the paired items declared at
  # rows [0, n_p) (where they no longer are) is another fit.
  wrong = dataclasses.replace(moved, paired_rows=None)
  c = rreh.run(wrong, hyper, jax.random.key(2), **kw)
  assert not np.allclose(np.asarray(c.W), np.asarray(a.W), rtol=1e-2, atol=1e-3)
