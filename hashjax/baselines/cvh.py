"""CVH: Cross-View Hashing (Kumar & Udupa, IJCAI 2011).

CVH learns one linear hash function per view, sign(A_m^T x), so that the codes of the
views of one item agree. With paired training data only (the paper's similarity
matrix W = I, i.e. item i is similar to itself across views) the relaxed problem is

  minimise  sum_{m < k} ||X_m A_m - X_k A_k||_F^2 / n
            = Tr(A^T L A),  L = (M - 1) B - O,
  subject to A^T B A = I,

over A = [A_1; ...; A_M] ``[D, b]`` (D = sum_m d_m), with centred views X_m, the
cross-covariance blocks O = [C_mk]_{m != k}, C_mk = X_m^T X_k / n, and
B = blockdiag(C_mm + ridge_m I), ridge_m = reg * trace(C_mm) / d_m (the ridge also
penalises ||A||^2 in the objective). The solution is the generalized eigenproblem
L a = lambda B a with the ``bits`` smallest eigenvalues. For M = 2 the eigenvectors
are the CCA directions (lambda = 1 - rho), as the paper notes.

``bits`` may go up to D; beyond the number of canonically correlated directions
(min_m d_m for two views) the extra directions carry no cross-view information.
Codes: sign((x - mean_m) @ A_m), sign(0) = +1.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hashjax import checks
from hashjax.baselines import common

__all__ = ["CVHModel", "cvh_directions", "encode", "fit"]


class CVHModel(NamedTuple):
  """A fitted CVH model (a pytree).

  Attributes:
    means: M arrays ``[d_m]``, training means.
    projections: M arrays ``[d_m, b]``, the blocks A_m.
    thresholds: M arrays ``[b]`` (zeros; the data is centred).
    eigenvalues: ``[b]`` the generalized eigenvalues lambda, ascending (the relaxed
      objective Tr(a^T L a) of each bit).
  """

  means: tuple[jax.Array, ...]
  projections: tuple[jax.Array, ...]
  thresholds: tuple[jax.Array, ...]
  eigenvalues: jax.Array


def cvh_directions(xs: Sequence[jax.Array], *, bits: int, reg: jax.Array
                   ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  """Solves CVH's generalized eigenproblem for centred views (traceable).

  Args:
    xs: M centred views ``[n, d_m]``.
    bits: number of hash functions b (static).
    reg: ridge factor (traced).

  Returns:
    ``(lambda, A)``: eigenvalues ``[b]`` ascending and M blocks ``[d_m, b]`` with
    ``A^T B A = I``.
  """
  offdiag, blockdiag = common.covariance_blocks(xs, reg)
  lap = (len(xs) - 1) * blockdiag - offdiag
  w, v = common.generalized_eigh(lap, blockdiag)
  return w[:bits], common.split_rows(v[:, :bits], [x.shape[1] for x in xs])


@functools.partial(jax.jit, static_argnames=("bits",))
def _fit(views: tuple[jax.Array, ...], reg: jax.Array, *, bits: int) -> CVHModel:
  xs, means = common.center_views(views)
  lam, blocks = cvh_directions(xs, bits=bits, reg=reg)
  thresholds = tuple(jnp.zeros((bits,), a.dtype) for a in blocks)
  return CVHModel(means, blocks, thresholds, lam)


def fit(views: Sequence[Any], *, bits: int, rng: jax.Array, reg: float = 1e-3
        ) -> CVHModel:
  """Fits CVH on paired training views.

  Args:
    views: M >= 2 arrays ``[n, d_m]``; row i is the same item in every view.
    bits: code length b, 1 <= b <= sum_m d_m (static).
    rng: PRNG key; unused (CVH is deterministic), kept for the common signature.
    reg: ridge factor relative to each view's mean covariance eigenvalue (traced).

  Returns:
    :class:`CVHModel`.

  Raises:
    ValueError: bad views or bits.
  """
  del rng
  views = common.check_views(views)
  bits = checks.check_bits(bits)
  total = sum(v.shape[1] for v in views)
  if bits > total:
    raise ValueError(
        f"CVH gives at most sum_m d_m = {total} bits (the size of its eigenproblem), "
        f"got bits={bits}.")
  model = _fit(views, jnp.asarray(reg, jnp.float32), bits=bits)
  common.check_finite_model("CVH", model)
  return model


# Codes: sign((x - mean_m) P_m - threshold_m), shared by every linear baseline.
encode = common.encode
