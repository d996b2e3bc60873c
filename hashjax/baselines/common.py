"""Shared pieces of the classic cross-modal hashing baselines.

Input validation for ``fit`` / ``encode``, float32 matrix products at full precision,
per-view centring and covariances, a generalized symmetric eigensolver (JAX has no
``eigh(a, b)``) and the linear hash function every baseline ends in:

  code_m(x) = where((x - mean_m) @ P_m - t_m >= 0, 1, -1)     (int8, ``[n, b]``)

Every model is a NamedTuple whose first three fields are ``means`` (M x ``[d_m]``),
``projections`` (M x ``[d_m, b]``) and ``thresholds`` (M x ``[b]``), stored as tuples
because the feature widths ``d_m`` differ between modalities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hashjax import checks, ops
from hashjax.codes import binarize, modality_index

__all__ = [
    "center_views",
    "check_encode_args",
    "check_finite_model",
    "check_views",
    "covariance_blocks",
    "encode",
    "encode_linear",
    "generalized_eigh",
    "matmul",
    "split_rows",
]

matmul = ops.matmul  # full float32 precision, shared with the other solvers


def _as_float(x: Any) -> jax.Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


def check_views(views: Any, *, min_views: int = 2, min_rows: int = 2
                ) -> tuple[jax.Array, ...]:
  """Validates paired training views and returns them as a tuple of float arrays.

  Args:
    views: a sequence of M arrays ``[n, d_m]``; row i of every array is the same
      training item (paired data).
    min_views: smallest accepted M.
    min_rows: smallest accepted n (covariances need at least 2 items).

  Returns:
    tuple of M float arrays ``[n, d_m]``.

  Raises:
    ValueError: not a sequence of 2-D arrays, too few views or rows, row counts that
      differ between views, or NaN / inf values.
  """
  if hasattr(views, "shape") or not isinstance(views, Sequence):
    raise ValueError(
        "views must be a list or tuple of M arrays [n, d_m], got "
        f"{type(views).__name__}.")
  if len(views) < min_views:
    raise ValueError(
        f"need at least {min_views} views (modalities), got {len(views)}.")
  names = [f"views[{m}]" for m in range(len(views))]
  for name, v in zip(names, views):
    checks.check_matrix(name, v)
  checks.check_same_rows(names, views)
  if views[0].shape[0] < min_rows:
    raise ValueError(
        f"need at least {min_rows} paired training items, got {views[0].shape[0]}.")
  for name, v in zip(names, views):
    checks.check_finite(name, v)
  return tuple(_as_float(v) for v in views)


def check_finite_model(name: str, model: Any) -> None:
  """Raises ``FloatingPointError`` when any array of a fitted model is NaN or inf.

  A diverged solver would otherwise give constant codes and a plausible-looking
  chance-level mAP.
  """
  for path, leaf in jax.tree_util.tree_leaves_with_path(model):
    arr = np.asarray(leaf)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
      raise FloatingPointError(
          f"{name} fit produced non-finite values in {jax.tree_util.keystr(path)}; "
          "the features are probably badly scaled or rank-deficient: standardise "
          "them or raise the regularisation.")


def check_encode_args(model: Any, x: Any, modality: Any) -> tuple[int, jax.Array]:
  """Validates ``encode`` arguments; returns ``(modality, x as float)``."""
  num = len(model.means)
  m = modality_index(modality, num)
  checks.check_matrix("x", x, cols=int(model.means[m].shape[0]))
  checks.check_finite("x", x)
  return m, _as_float(x)


@jax.jit
def encode_linear(mean: jax.Array, projection: jax.Array, threshold: jax.Array,
                  x: jax.Array) -> jax.Array:
  """Linear hash function of one modality.

  Args:
    mean: ``[d]`` training mean of the modality.
    projection: ``[d, b]`` projection.
    threshold: ``[b]`` value subtracted before binarisation.
    x: ``[n, d]`` items of the modality.

  Returns:
    int8 ``[n, b]`` codes in {-1, +1} (``z >= 0`` -> +1).
  """
  dtype = projection.dtype
  z = matmul(x.astype(dtype) - mean.astype(dtype), projection) - threshold.astype(dtype)
  return binarize(z, jnp.int8)


def encode(model: Any, x: Any, modality: int) -> jax.Array:
  """Hash codes of items of one modality, for every linear baseline model.

  Args:
    model: a fitted model with ``means``, ``projections`` and ``thresholds`` (one per
      view): CCA-ITQ, CVH or CMFH.
    x: ``[n, d_m]`` items of modality ``modality``.
    modality: view index m in [0, M).

  Returns:
    int8 ``[n, b]`` codes in {-1, +1}.
  """
  m, x = check_encode_args(model, x, modality)
  return encode_linear(model.means[m], model.projections[m], model.thresholds[m], x)


def center_views(views: Sequence[jax.Array]
                 ) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
  """Subtracts each view's column mean.

  Args:
    views: M arrays ``[n, d_m]``.

  Returns:
    ``(centred views, means)``: M arrays ``[n, d_m]`` and M arrays ``[d_m]``.
  """
  means = tuple(jnp.mean(v, axis=0) for v in views)
  return tuple(v - mu for v, mu in zip(views, means)), means


def covariance_blocks(xs: Sequence[jax.Array], reg: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
  """Off-diagonal cross-covariances and regularised within-view covariances.

  With centred views X_m ``[n, d_m]``, C_mk = X_m^T X_k / n. The ridge added to C_mm is
  ``reg * trace(C_mm) / d_m`` (``reg`` times the mean eigenvalue), so ``reg`` does not
  depend on the scale of the features.

  Args:
    xs: M centred views ``[n, d_m]``.
    reg: scalar ridge factor (traced).

  Returns:
    ``(offdiag, blockdiag)``, both ``[D, D]`` with D = sum_m d_m: ``offdiag`` holds
    C_mk in block (m, k) for m != k and zeros on the diagonal blocks; ``blockdiag``
    holds C_mm + ridge_m I on the diagonal blocks and zeros elsewhere.
  """
  n = xs[0].shape[0]
  x = jnp.concatenate(xs, axis=1)
  full = matmul(x.T, x) / n
  dims = [v.shape[1] for v in xs]
  starts = np.cumsum([0] + dims)
  block_id = np.repeat(np.arange(len(dims)), dims)
  same = jnp.asarray(block_id[:, None] == block_id[None, :])
  ridge = []
  for m, d in enumerate(dims):
    blk = full[starts[m]:starts[m + 1], starts[m]:starts[m + 1]]
    ridge.append(jnp.full((d,), reg * jnp.trace(blk) / d, full.dtype))
  ridge = jnp.concatenate(ridge)
  offdiag = jnp.where(same, 0.0, full)
  blockdiag = jnp.where(same, full, 0.0) + jnp.diag(ridge)
  return offdiag, blockdiag


def generalized_eigh(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Solves the symmetric-definite problem ``a v = w b v`` via a Cholesky factor of b.

  Args:
    a: ``[D, D]`` symmetric.
    b: ``[D, D]`` symmetric positive definite.

  Returns:
    ``(w, v)``: eigenvalues ``[D]`` ascending and eigenvectors ``[D, D]`` (columns),
    normalised so that ``v^T b v = I``.
  """
  chol = jnp.linalg.cholesky(b)
  tri = jax.scipy.linalg.solve_triangular
  left = tri(chol, a, lower=True)                # L^-1 A
  c = tri(chol, left.T, lower=True)              # L^-1 A L^-T (A symmetric)
  c = 0.5 * (c + c.T)
  w, y = jnp.linalg.eigh(c)
  v = tri(chol.T, y, lower=False)                # L^-T y
  return w, v


def split_rows(v: jax.Array, dims: Sequence[int]) -> tuple[jax.Array, ...]:
  """Splits ``[D, b]`` into M blocks ``[d_m, b]`` (static ``dims``)."""
  starts = np.cumsum([0] + list(dims))
  return tuple(v[starts[m]:starts[m + 1]] for m in range(len(dims)))
