"""solver.run_grid: a hyper-parameter grid in one program, equal to one run per point.

Run in a subprocess under a timeout: a plain ``jax.vmap`` of ``run`` over
hyper-parameters batches LAPACK calls, which wedges jaxlib 0.10's CPU thread pool on
small machines (experiments/rreh_vmap_hang.py); a regression must fail, not hang.
With view weights per grid point the weighted PCA start (an eigh) differs per point
too, so it must not be batched either.
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from hashjax import rreh

rs = np.random.default_rng(0)
lab = rs.integers(0, 4, 260)
views = [rs.normal(size=(4, d))[lab] + 0.6 * rs.normal(size=(260, d)) for d in (9, 6)]
paired = [v[:60] for v in views]
unpaired = [views[0][60:160], views[1][160:]]
problem, _ = rreh.make_problem(paired, unpaired, dict(num_anchors=40), jax.random.key(0))
hypers = rreh.RREHHyper(jnp.asarray([0.1, 1.0, 10.0]), jnp.asarray([0.1, 1.0, 0.1]),
                        jnp.asarray([1e-3, 1e-2, 1e-1]))
weights = jnp.asarray([[1.0, 1.0], [0.5, 1.5], [1.8, 0.2]])
out = {}
for init_v, orth, weighted in (("gaussian", False, False), ("pca", True, False),
                               ("pca", False, True)):
  if weighted:   # view weights per grid point: the PCA start differs per point too
    hypers = hypers._replace(weights=weights)
  if True:
    ref = [rreh.run(problem, jax.tree.map(lambda h: h[g], hypers), jax.random.key(1),
                    bits=8, iterations=5, init_v=init_v, orthogonal_v=orth)
           for g in range(3)]
    for mode in rreh.GRID_MODES:
      st = rreh.run_grid(problem, hypers, jax.random.key(1), bits=8, iterations=5,
                         init_v=init_v, orthogonal_v=orth, mode=mode)
      err = max(float(jnp.max(jnp.abs(st.W[g] - ref[g].W))) for g in range(3))
      same_b = all(bool(jnp.all(st.B[g] == ref[g].B)) for g in range(3))
      distinct = len({float(ref[g].objective[-1]) for g in range(3)})
      out[f"{init_v},{orth},{weighted},{mode}"] = dict(err=err, same_b=same_b, distinct=distinct)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_run_grid_matches_one_run_per_point_and_finishes():
  env = dict(os.environ, XLA_FLAGS="")     # no thread-pool workaround flag
  proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                        timeout=240, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert len(out) == 6
  for key, r in out.items():
    assert r["err"] < 1e-4, key
    assert r["same_b"], key
    assert r["distinct"] == 3, key        # the grid points really differ


def test_run_grid_bad_mode():
  import jax
  import jax.numpy as jnp
  from hashjax import rreh
  with pytest.raises(ValueError, match="mode must be one of"):
    rreh.run_grid(None, rreh.RREHHyper(jnp.ones(1), jnp.ones(1), jnp.ones(1)),
                  jax.random.key(0), bits=8, iterations=1, mode="pmap")
