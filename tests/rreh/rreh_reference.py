"""Plain NumPy (float64) reference of RREH (docs/rreh.md), independent of hashjax.rreh.

Written from the paper, not from the JAX code: every modality is handled in a Python
loop on its own unpadded arrays, the reconstruction uses the ``s x s`` form
``R = Phi_u Phi_S^T (Phi_S Phi_S^T + theta I)^-1`` (the JAX code uses the ``k x k``
push-through form), and the V-step solves the full ``n_p x n_p`` normal equations of
``sum_i ||V - P_i^paired||^2 + ||R_i V_S - P_i^unpaired||^2`` (the JAX code splits
it into anchor and non-anchor rows). Raw features are first standardised with the
paired rows' column mean and root mean squared centred row norm; theta and lam are
relative ridges (times the mean eigenvalue of the Gram matrix each regularises).
Used by tests/rreh/ and by
experiments/benchmarks/bench_rreh.py.
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode_reference", "fit_reference", "project_reference", "sign"]


def sign(z):
  """+1 where z >= 0 else -1 (float64)."""
  return np.where(z >= 0, 1.0, -1.0)


def _sqdist(x, a):
  # Direct (x - a)^2 expansion in float64; loops over anchors to bound memory.
  out = np.empty((x.shape[0], a.shape[0]))
  xx = np.einsum("nd,nd->n", x, x)
  for j in range(0, a.shape[0], 256):
    blk = a[j:j + 256]
    out[:, j:j + 256] = xx[:, None] + np.einsum("kd,kd->k", blk, blk)[None] - 2 * x @ blk.T
  return np.maximum(out, 0.0)


def fit_reference(paired, unpaired, anchor_index, g, *, theta, beta, lam, iterations,
                  delta2=None, kernel=True, reconstruct_against="anchors",
                  orthogonal_v=False, init_v="gaussian", view_weights=None,
                  ridge_cap=None):
  """RREH fit in float64 NumPy.

  Args:
    paired: list of M arrays [n_p, d_m].
    unpaired: list of M arrays [n_u_m, d_m] (may be empty).
    anchor_index: int [k] rows of the paired items used as anchors.
    g: [f, b] Gaussian matrix of the initial V = sign(Phi_paired,0 G)
      (f = k with kernel, d_0 without).
    theta, beta, lam, iterations: hyper-parameters.
    delta2: None (mean squared item-anchor distance) or a number / one per modality.
    kernel: Gaussian kernel features (else raw centred features).
    reconstruct_against: 'anchors' or 'paired'.
    orthogonal_v: SVD projection of V after every V-step.
    init_v: 'gaussian' (V = sign(Phi_paired,0 G)) or 'pca' (V = sign(Phi_bar U), Phi_bar
      the mean over modalities of the paired features, U its top principal directions
      with the largest-magnitude entry of each made positive; ``g`` is then unused).
    view_weights: None or M positive weights alpha_i (normalised here to sum to M):
      the objective is ``sum_i alpha_i f_i`` (docs/rreh.md#weights). Only V (its
      normal equations, the PCA start's mean) and the objective see them: W_i and
      B_i minimise view i's own term, which alpha_i only scales.
    ridge_cap: None or kappa: view i's W ridge is at most kappa times the b-th
      largest eigenvalue of Phi_i^T Phi_i (b = g.shape[1]; 0 when b exceeds the
      width), floored at 1e-4 times the mean eigenvalue (docs/rreh.md#ridge-cap).

  Returns:
    dict with anchors, delta2, mean, phi, r, W, B, V, objective (lists per modality)
    and lam (the absolute W ridge of every modality).
  """
  m = len(paired)
  n_p = paired[0].shape[0]
  alpha = np.ones(m) if view_weights is None else np.asarray(view_weights, np.float64)
  alpha = alpha * m / alpha.sum()
  anchor_index = np.asarray(anchor_index)
  ref = anchor_index if reconstruct_against == "anchors" else np.arange(n_p)
  s = len(ref)
  anchors, d2s, means, phis, shifts, scales = [], [], [], [], [], []
  for i in range(m):
    pi = paired[i].astype(np.float64)
    shift = pi.mean(axis=0)
    scale = np.sqrt(np.mean(np.sum((pi - shift) ** 2, axis=1)))
    shifts.append(shift)
    scales.append(scale)
    x = (np.concatenate([paired[i], unpaired[i]]).astype(np.float64) - shift) / scale
    if kernel:
      a = (pi[anchor_index] - shift) / scale
      dist = _sqdist(x, a)
      if delta2 is None:
        d2 = dist.mean()
      else:
        d2 = float(np.broadcast_to(np.asarray(delta2, np.float64), (m,))[i]) / scale**2
      f = np.exp(-dist / (2 * d2))
      anchors.append(a)
      d2s.append(d2)
    else:
      f = x
    mu = f.mean(axis=0)
    phis.append(f - mu)
    means.append(mu)
  rs, lams = [], []
  for i in range(m):
    ps = phis[i][:n_p][ref]                                  # [s, f]
    pu = phis[i][n_p:]                                       # [n_u, f]
    gs = ps @ ps.T
    th = theta * np.trace(gs) / s                            # relative ridge
    rs.append(pu @ ps.T @ np.linalg.inv(gs + th * np.eye(s)))
    mean_ev = np.sum(phis[i] ** 2) / phis[i].shape[1]
    lams.append(lam * mean_ev)
    if ridge_cap is not None:
      ev = np.linalg.eigvalsh(phis[i].T @ phis[i])[::-1]
      b = g.shape[1]
      ev_b = ev[b - 1] if b <= ev.size else 0.0
      lams[i] = min(lams[i], ridge_cap * max(ev_b, 1e-4 * mean_ev))
  sel = np.zeros((s, n_p))
  sel[np.arange(s), ref] = 1.0                               # V_S = sel @ V
  if init_v == "pca":
    phi_bar = sum(a * p[:n_p] for a, p in zip(alpha, phis)) / alpha.sum()
    _, vecs = np.linalg.eigh(phi_bar.T @ phi_bar)
    top = vecs[:, ::-1][:, :g.shape[1]]
    top = top * np.where(top[np.abs(top).argmax(0), np.arange(top.shape[1])] < 0, -1, 1)
    v = sign(phi_bar @ top)
  else:
    v = sign(phis[0][:n_p] @ g)

  def targets(v):
    return [np.concatenate([v, rs[i] @ (sel @ v)]) for i in range(m)]

  z = targets(v)
  bs = [sign(zi) for zi in z]
  # Normal equations of sum_i alpha_i (||V - P_i^p||^2 + ||R_i sel V - P_i^u||^2).
  a_v = sum(a * (np.eye(n_p) + sel.T @ r.T @ r @ sel) for a, r in zip(alpha, rs))
  objective, ws = [], [None] * m
  for _ in range(iterations):
    z = targets(v)
    for i in range(m):
      f = phis[i]
      ws[i] = np.linalg.solve((1 + beta) * f.T @ f + lams[i] * np.eye(f.shape[1]),
                              f.T @ (z[i] + beta * bs[i]))
      bs[i] = sign(f @ ws[i])
    p = [phis[i] @ ws[i] for i in range(m)]
    rhs = sum(alpha[i] * (p[i][:n_p] + sel.T @ rs[i].T @ p[i][n_p:]) for i in range(m))
    v = np.linalg.solve(a_v, rhs)
    if orthogonal_v:
      vc = v - v.mean(axis=0)
      u, _, qt = np.linalg.svd(vc, full_matrices=False)
      v = np.sqrt(n_p) * u @ qt
    z = targets(v)
    obj = 0.0
    for i in range(m):
      obj += alpha[i] * (np.sum((z[i] - p[i]) ** 2) + beta * np.sum((bs[i] - p[i]) ** 2)
                         + lams[i] * np.sum(ws[i] ** 2))
    objective.append(obj)
  return dict(lam=lams, anchors=anchors, delta2=np.asarray(d2s), mean=means, phi=phis,
              r=rs, W=ws, B=bs, V=v, objective=np.asarray(objective), kernel=kernel,
              shift=shifts, scale=scales)


def project_reference(ref, x, modality):
  """``phi_m(x) W_m`` (before the sign) of new items, float64."""
  x = (np.asarray(x, np.float64) - ref["shift"][modality]) / ref["scale"][modality]
  if ref["kernel"]:
    f = np.exp(-_sqdist(x, ref["anchors"][modality]) / (2 * ref["delta2"][modality]))
  else:
    f = x
  return (f - ref["mean"][modality]) @ ref["W"][modality]


def encode_reference(ref, x, modality):
  """Codes sign(phi_m(x) W_m) of new items with a :func:`fit_reference` result."""
  return sign(project_reference(ref, x, modality)).astype(np.int8)
