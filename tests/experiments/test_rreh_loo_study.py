"""experiments/rreh_loo_study.py: its closed-form leave-one-out signals equal refits.

The study scores lam by leave-one-out predictions of the W-step ridge regression,
computed from the hat matrix without refitting. Here every row is really left out
(a NumPy refit of the ridge without it) and the signals are recomputed from those
predictions.
"""

import experiment_scripts
import numpy as np


def _refit_signals(phi, mask, z, b, lam, beta, paired_rows):
  m = phi.shape[0]
  flips, press, codes = [], [], []
  for i in range(m):
    real = np.flatnonzero(mask[i] > 0)
    x = phi[i][real]
    t = (z[i] + beta * b[i])[real]                  # targets of ||T' - (1+beta) ...||
    full = (1 + beta) * x @ np.linalg.solve(
        (1 + beta) * x.T @ x + lam[i] * np.eye(x.shape[1]), x.T @ t) / (1 + beta)
    loo = np.zeros_like(full)
    for j in range(len(real)):
      keep = np.arange(len(real)) != j
      w = np.linalg.solve((1 + beta) * x[keep].T @ x[keep] + lam[i] * np.eye(x.shape[1]),
                          x[keep].T @ t[keep])
      loo[j] = x[j] @ w
    tt = t / (1 + beta)
    flips.append(np.mean(np.sign(loo) != np.sign(full)))
    press.append(np.mean(np.sum((tt - loo) ** 2, 1) / np.sum(tt ** 2, 1)))
    out = np.zeros(z[i].shape)
    out[real] = loo
    codes.append(np.sign(out[paired_rows]))
  return dict(flip=np.mean(flips), press=np.mean(press),
              xflip=np.mean(codes[0] != codes[1]))


def test_loo_signals_equal_refits():
  mod = experiment_scripts.load("rreh_loo_study.py")
  rng = np.random.default_rng(0)
  m, n, k, bits = 2, 40, 6, 5
  phi = rng.normal(size=(m, n, k))
  mask = np.ones((m, n))
  mask[1, 35:] = 0                       # padded rows of the second modality
  phi[1, 35:] = 0
  z = rng.normal(size=(m, n, bits))
  b = np.sign(rng.normal(size=(m, n, bits)))
  lam, beta = np.asarray([0.5, 2.0]), 0.1
  paired = np.arange(12)
  got = mod.loo_signals(phi, mask, z, b, lam, beta, paired)
  want = _refit_signals(phi, mask, z, b, lam, beta, paired)
  for key in ("flip", "press", "xflip"):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-12)
  assert 0 < want["flip"] < 0.5 and want["press"] > 0   # the case is not trivial
