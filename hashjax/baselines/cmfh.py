"""CMFH: Collective Matrix Factorization Hashing (Ding, Guo & Zhou, CVPR 2014).

All modalities of an item share one latent representation V ``[n, b]``; each centred
view is factorised as X_m ~ V U_m and regressed onto V by a linear hash projection P_m.
Rows are items (the paper's matrices transposed):

  J = sum_m lambda_m ||X_m - V U_m||^2 + mu sum_m ||V - X_m P_m||^2
      + gamma (sum_m (||U_m||^2 + ||P_m||^2) + ||V||^2)

(squared Frobenius norms; U_m ``[b, d_m]``, P_m ``[d_m, b]``). One iteration updates
every block by its exact minimiser, in the order of the authors' code, so J never
increases:

  U_m = (V^T V + (gamma / lambda_m) I)^-1 V^T X_m
  V   = (sum_m lambda_m X_m U_m^T + mu sum_m X_m P_m)
        (sum_m lambda_m U_m U_m^T + (M mu + gamma) I)^-1
  P_m = (X_m^T X_m + (gamma / mu) I)^-1 X_m^T V

Every Cholesky factorisation adds a tiny scale-relative ridge (``RIDGE_FLOOR`` times
the matrix's mean eigenvalue) so float32 stays finite on unnormalised features; a fit
that still goes non-finite raises ``FloatingPointError``.
(The released MATLAB code writes gamma where the exact minimisers of U_m and P_m have
gamma / lambda_m and gamma / mu; hashjax uses the exact minimisers.) Defaults follow the
paper and its code: lambda = 0.5 per view for two views (1 / M in general), mu = 100,
gamma = 0.01, uniform [0, 1) initialisation of V and P_m; a fixed 100 iterations
replaces the code's stopping rule (objective change < 0.01). Views are centred with
their training means, and codes threshold P_m's output at the mean of the training
latent V: sign((x - mean_m) P_m - mean(V)), sign(0) = +1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hashjax import checks
from hashjax.baselines import common

__all__ = ["CMFHModel", "CMFHState", "encode", "fit", "init_state", "objective",
           "update"]


class CMFHState(NamedTuple):
  """Variables of the CMFH solver.

  Attributes:
    latent: ``[n, b]`` shared latent representation V.
    bases: M arrays ``[b, d_m]``, the factor bases U_m.
    projections: M arrays ``[d_m, b]``, the hash projections P_m.
  """

  latent: jax.Array
  bases: tuple[jax.Array, ...]
  projections: tuple[jax.Array, ...]


class CMFHModel(NamedTuple):
  """A fitted CMFH model (a pytree).

  Attributes:
    means: M arrays ``[d_m]``, training means.
    projections: M arrays ``[d_m, b]``, the hash projections P_m.
    thresholds: M arrays ``[b]``, the column mean of the training latent V (the same
      for every view).
    objective: ``[iterations]``, J after each iteration.
  """

  means: tuple[jax.Array, ...]
  projections: tuple[jax.Array, ...]
  thresholds: tuple[jax.Array, ...]
  objective: jax.Array


def init_state(xs: Sequence[jax.Array], *, bits: int, rng: jax.Array) -> CMFHState:
  """Uniform [0, 1) initialisation, as in the authors' code.

  Args:
    xs: M views ``[n, d_m]``.
    bits: code length b (static).
    rng: PRNG key.

  Returns:
    :class:`CMFHState`.
  """
  dtype = xs[0].dtype
  n = xs[0].shape[0]
  shapes = [(n, bits)] + [(bits, x.shape[1]) for x in xs] + [
      (x.shape[1], bits) for x in xs]
  sizes = [int(np.prod(s)) for s in shapes]
  # One draw, sliced: a single threefry call keeps compilation fast.
  flat = jax.random.uniform(rng, (sum(sizes),), dtype)
  edges = np.cumsum([0] + sizes)
  parts = [flat[edges[i]:edges[i + 1]].reshape(s) for i, s in enumerate(shapes)]
  num = len(xs)
  return CMFHState(parts[0], tuple(parts[1:1 + num]), tuple(parts[1 + num:]))


def objective(state: CMFHState, xs: Sequence[jax.Array], *, lambdas: jax.Array,
              mu: jax.Array, gamma: jax.Array) -> jax.Array:
  """The CMFH objective J (see the module docstring) as a scalar.

  Args:
    state: current variables.
    xs: M centred views ``[n, d_m]``.
    lambdas: ``[M]`` view weights.
    mu: weight of the projection (hash function) terms.
    gamma: weight of the Frobenius regularisers.
  """
  v = state.latent
  total = gamma * jnp.sum(jnp.square(v))
  for m, x in enumerate(xs):
    u, p = state.bases[m], state.projections[m]
    total += lambdas[m] * jnp.sum(jnp.square(x - common.matmul(v, u)))
    total += mu * jnp.sum(jnp.square(v - common.matmul(x, p)))
    total += gamma * (jnp.sum(jnp.square(u)) + jnp.sum(jnp.square(p)))
  return total


# Relative floor added to every ridge (times the mean eigenvalue of the matrix being
# factorised). With the paper's small ridges (gamma / mu = 1e-4, gamma / lambda = 0.02),
# unnormalised features (UCI's fac view reaches 1353) and the nearly collinear columns
# that the uniform initialisation gives V, float32 Cholesky breaks down; 1e-5 relative
# is near float32's resolution and far below the ridges' effect on normalised data.
RIDGE_FLOOR = 1e-5


def _floored(a: jax.Array) -> jax.Array:
  """``a + RIDGE_FLOOR * (trace(a) / d) I``: keeps float32 Cholesky finite."""
  d = a.shape[0]
  return a + (RIDGE_FLOOR * jnp.trace(a) / d) * jnp.eye(d, dtype=a.dtype)


def _spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a^-1 b`` for symmetric positive definite ``a`` (Cholesky, floored ridge)."""
  return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(_floored(a)), True), b)




def _gram_factors(xs: Sequence[jax.Array], mu: jax.Array, gamma: jax.Array
                  ) -> tuple[jax.Array, ...]:
  """Cholesky factors of X_m^T X_m + (gamma / mu) I (floored), fixed over iterations."""
  return tuple(
      jnp.linalg.cholesky(_floored(
          common.matmul(x.T, x) + (gamma / mu) * jnp.eye(x.shape[1], dtype=x.dtype)))
      for x in xs)


def update(state: CMFHState, xs: Sequence[jax.Array], *, lambdas: jax.Array,
           mu: jax.Array, gamma: jax.Array,
           gram_factors: Sequence[jax.Array] | None = None) -> CMFHState:
  """One CMFH iteration: U_m, then V, then P_m, each by its closed form.

  Args:
    state: current variables.
    xs: M centred views ``[n, d_m]``.
    lambdas: ``[M]`` view weights.
    mu: weight of the projection terms.
    gamma: weight of the regularisers.
    gram_factors: optional precomputed lower Cholesky factors ``[d_m, d_m]`` of
      X_m^T X_m + (gamma / mu) I.

  Returns:
    the updated :class:`CMFHState`.
  """
  if gram_factors is None:
    gram_factors = _gram_factors(xs, mu, gamma)
  v = state.latent
  bits = v.shape[1]
  eye = jnp.eye(bits, dtype=v.dtype)
  vtv = common.matmul(v.T, v)
  bases = tuple(
      _spd_solve(vtv + (gamma / lambdas[m]) * eye, common.matmul(v.T, x))
      for m, x in enumerate(xs))
  lhs = (len(xs) * mu + gamma) * eye
  rhs = 0.0
  for m, x in enumerate(xs):
    lhs = lhs + lambdas[m] * common.matmul(bases[m], bases[m].T)
    rhs = rhs + lambdas[m] * common.matmul(x, bases[m].T)
    rhs = rhs + mu * common.matmul(x, state.projections[m])
  v = _spd_solve(lhs, rhs.T).T                  # lhs is symmetric
  projections = tuple(
      jax.scipy.linalg.cho_solve((c, True), common.matmul(x.T, v))
      for c, x in zip(gram_factors, xs))
  return CMFHState(v, bases, projections)


@functools.partial(jax.jit, static_argnames=("bits", "iterations"))
def _fit(views: tuple[jax.Array, ...], rng: jax.Array, lambdas: jax.Array,
         mu: jax.Array, gamma: jax.Array, *, bits: int, iterations: int) -> CMFHModel:
  xs, means = common.center_views(views)
  factors = _gram_factors(xs, mu, gamma)
  hyper = dict(lambdas=lambdas, mu=mu, gamma=gamma)

  def step(state, _):
    state = update(state, xs, gram_factors=factors, **hyper)
    return state, objective(state, xs, **hyper)

  state, obj = jax.lax.scan(step, init_state(xs, bits=bits, rng=rng), None,
                            length=iterations)
  threshold = jnp.mean(state.latent, axis=0)
  thresholds = tuple(threshold for _ in xs)
  return CMFHModel(means, state.projections, thresholds, obj)


def fit(views: Sequence[Any], *, bits: int, rng: jax.Array,
        lambdas: Sequence[float] | None = None, mu: float = 100.0,
        gamma: float = 0.01, iterations: int = 100) -> CMFHModel:
  """Fits CMFH on paired training views.

  Args:
    views: M >= 2 arrays ``[n, d_m]``; row i is the same item in every view.
    bits: code length b, 1 <= b <= n (static).
    rng: PRNG key (initialisation).
    lambdas: M positive view weights (traced); default 1 / M each (the paper's
      lambda = 0.5 for two views).
    mu: weight of the hash-projection terms, > 0 (traced).
    gamma: regularisation weight, > 0 (traced).
    iterations: number of alternating iterations (static).

  Returns:
    :class:`CMFHModel`.

  Raises:
    ValueError: bad views, bits, iterations or hyper-parameters.
    FloatingPointError: the solver produced non-finite values (never silent codes).
  """
  views = common.check_views(views)
  bits = checks.check_bits(bits)
  iterations = checks.check_positive_int("iterations", iterations)
  n = views[0].shape[0]
  if bits > n:
    raise ValueError(
        f"CMFH needs bits <= n (training items) = {n}, got bits={bits}.")
  num = len(views)
  if lambdas is None:
    lambdas = np.full((num,), 1.0 / num)
  lambdas = np.asarray(lambdas, np.float64)
  if lambdas.shape != (num,):
    raise ValueError(
        f"lambdas must hold one weight per view ({num}), got shape {lambdas.shape}.")
  for name, val in (("lambdas", lambdas), ("mu", mu), ("gamma", gamma)):
    arr = np.asarray(val, np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
      raise ValueError(f"{name} must be finite and > 0, got {val!r}.")
  dtype = views[0].dtype
  model = _fit(views, rng, jnp.asarray(lambdas, dtype), jnp.asarray(mu, dtype),
               jnp.asarray(gamma, dtype), bits=bits, iterations=iterations)
  common.check_finite_model("CMFH", model)
  return model


# Codes: sign((x - mean_m) P_m - threshold_m), shared by every linear baseline.
encode = common.encode
