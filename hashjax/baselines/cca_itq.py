"""CCA-ITQ: canonical correlation analysis followed by iterative quantisation.

Gong & Lazebnik (CVPR 2011; PAMI 2013) learn an orthogonal rotation R that minimises
the quantisation loss ||B - V R||_F^2 of a projected, zero-centred data matrix V. For
cross-modal retrieval (as the CMFH / SCM papers use it) the projection is CCA between
the modalities and one rotation is shared by all of them:

1. Centre each view with its training mean.
2. Multi-view CCA (SUMCOR-style generalized eigenproblem; plain CCA for M = 2):
     O w = rho B w,  O = [C_mk]_{m != k} (zero diagonal blocks),
     B = blockdiag(C_mm + ridge_m I),  ridge_m = reg * trace(C_mm) / d_m,
   with C_mk = X_m^T X_k / n. The ``bits`` eigenvectors of largest rho are split into
   per-view blocks W_m ``[d_m, b]``. For M = 2 the eigenvalues are the (regularised)
   canonical correlations and W_m are the canonical directions with unit variance
   per view (the ``b``-orthonormal eigenvectors times sqrt(M)).
3. Scale direction j by max(rho_j, 0) ** scale_power (``scale_power = 0``: no scaling).
4. ITQ on the stacked projections V = [X_1 W_1 S; ...; X_M W_M S] ``[M n, b]``:
   from a random orthogonal R, alternate B = sign(V R) and R = argmin ||B - V R||
   (orthogonal Procrustes: C = B^T V = U S W^T, R = W U^T) for ``iterations`` steps.
5. Codes: sign((x - mean_m) @ W_m S R), with sign(0) = +1.

Two-view CCA yields at most min_m d_m canonical directions, so ``bits <= min_m d_m``
(Wikipedia's 10-d text view allows at most 10 bits); the same cap is applied for
M > 2 views (conservative there).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hashjax import checks
from hashjax.baselines import common

__all__ = ["CCAITQModel", "cca_directions", "encode", "fit", "itq"]


class CCAITQModel(NamedTuple):
  """A fitted CCA-ITQ model (a pytree).

  Attributes:
    means: M arrays ``[d_m]``, training means.
    projections: M arrays ``[d_m, b]``: CCA directions x eigenvalue scaling x rotation.
    thresholds: M arrays ``[b]`` (zeros; the data is centred).
    correlations: ``[b]`` generalized eigenvalues rho, descending (the canonical
      correlations for M = 2).
    rotation: ``[b, b]`` orthogonal ITQ rotation R.
    quantization_loss: ``[iterations]``, ||B_t - V R_t||_F^2 after iteration t.
  """

  means: tuple[jax.Array, ...]
  projections: tuple[jax.Array, ...]
  thresholds: tuple[jax.Array, ...]
  correlations: jax.Array
  rotation: jax.Array
  quantization_loss: jax.Array


def cca_directions(xs: Sequence[jax.Array], *, bits: int, reg: jax.Array
                   ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  """Top-``bits`` multi-view CCA directions of centred views (traceable).

  Args:
    xs: M centred views ``[n, d_m]``.
    bits: number of directions b (static).
    reg: ridge factor (see :func:`hashjax.baselines.common.covariance_blocks`).

  Returns:
    ``(rho, W)``: eigenvalues ``[b]`` descending and M directions ``[d_m, b]`` with
    ``sum_m W_m^T (C_mm + ridge_m I) W_m = M I``.
  """
  offdiag, blockdiag = common.covariance_blocks(xs, reg)
  w, v = common.generalized_eigh(offdiag, blockdiag)
  rho = w[::-1][:bits]
  v = v[:, ::-1][:, :bits] * jnp.sqrt(float(len(xs)))
  return rho, common.split_rows(v, [x.shape[1] for x in xs])


def itq(v: jax.Array, *, rng: jax.Array, iterations: int
        ) -> tuple[jax.Array, jax.Array]:
  """Iterative quantisation: an orthogonal R with sign(V R) close to V R.

  Args:
    v: ``[n, b]`` zero-centred projected data.
    rng: PRNG key for the random orthogonal initial rotation.
    iterations: number of B / R alternations (static).

  Returns:
    ``(R, loss)``: ``[b, b]`` orthogonal rotation and ``[iterations]`` losses
    ||B_t - V R_t||_F^2 with B_t = sign(V R_{t-1}) (non-increasing).
  """
  b = v.shape[1]
  r0, _, _ = jnp.linalg.svd(jax.random.normal(rng, (b, b), v.dtype))

  def step(r, _):
    codes = jnp.where(common.matmul(v, r) >= 0, 1.0, -1.0).astype(v.dtype)
    u, _, wt = jnp.linalg.svd(common.matmul(codes.T, v))   # B^T V = U S W^T
    r = common.matmul(wt.T, u.T)                           # R = W U^T
    loss = jnp.sum(jnp.square(codes - common.matmul(v, r)))
    return r, loss

  return jax.lax.scan(step, r0, None, length=iterations)


@functools.partial(jax.jit, static_argnames=("bits", "iterations"))
def _fit(views: tuple[jax.Array, ...], rng: jax.Array, reg: jax.Array,
         scale_power: jax.Array, *, bits: int, iterations: int) -> CCAITQModel:
  xs, means = common.center_views(views)
  rho, ws = cca_directions(xs, bits=bits, reg=reg)
  scale = jnp.maximum(rho, 0.0) ** scale_power
  ws = tuple(w * scale for w in ws)
  stacked = jnp.concatenate([common.matmul(x, w) for x, w in zip(xs, ws)], axis=0)
  rotation, loss = itq(stacked, rng=rng, iterations=iterations)
  projections = tuple(common.matmul(w, rotation) for w in ws)
  thresholds = tuple(jnp.zeros((bits,), w.dtype) for w in ws)
  return CCAITQModel(means, projections, thresholds, rho, rotation, loss)


def fit(views: Sequence[Any], *, bits: int, rng: jax.Array, reg: float = 1e-3,
        scale_power: float = 1.0, iterations: int = 50) -> CCAITQModel:
  """Fits CCA-ITQ on paired training views.

  Args:
    views: M >= 2 arrays ``[n, d_m]`` (float); row i is the same item in every view.
    bits: code length b, 1 <= b <= min_m d_m (static).
    rng: PRNG key (initial ITQ rotation).
    reg: ridge factor relative to each view's mean covariance eigenvalue (traced).
    scale_power: directions are scaled by rho ** scale_power before ITQ (traced;
      0 disables the scaling).
    iterations: ITQ iterations (static).

  Returns:
    :class:`CCAITQModel`.

  Raises:
    ValueError: bad views, bits or iterations.
  """
  views = common.check_views(views)
  bits = checks.check_bits(bits)
  iterations = checks.check_positive_int("iterations", iterations)
  max_bits = min(v.shape[1] for v in views)
  if bits > max_bits:
    dims = [v.shape[1] for v in views]
    raise ValueError(
        f"CCA-ITQ gives at most min_m d_m = {max_bits} bits (one per canonical "
        f"direction; view widths {dims}), got bits={bits}.")
  model = _fit(views, rng, jnp.asarray(reg, jnp.float32),
               jnp.asarray(scale_power, jnp.float32), bits=bits, iterations=iterations)
  common.check_finite_model("CCA-ITQ", model)
  return model


# Codes: sign((x - mean_m) P_m - threshold_m), shared by every linear baseline.
encode = common.encode
