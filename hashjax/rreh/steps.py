"""The steps of RREH (docs/rreh.md), one small pure function each.

One convention: every function here works on ONE modality's arrays, except
:func:`v_inverse` and :func:`v_step`, the step that couples the modalities (they take
the ``[M, ...]`` stacks). The solver (:mod:`hashjax.rreh.solver`) is the one place
that stacks the modalities along a leading axis M (zero-padded to a common size) and
``jax.vmap``-s these functions over it; nothing here is jitted except
:func:`sample_anchors` (static sizes). Row layout of the item axis n (the same in
every modality):

* rows ``[0, n_p)``: the paired items, row i the same item in every modality;
* rows ``[n_p, n)``: the modality's unpaired items, then padding. A float ``mask``
  ``[M, n]`` is 1 for real rows and 0 for padding; padded rows of every feature matrix
  are 0, so they add nothing to any Gram product or objective term.

Letters: M modalities, n items (padded), n_p paired items, d features (padded width),
k anchors, s reference items of the reconstruction (``s = k`` for anchors,
``s = n_p`` for all paired items), b bits.

All matrix products run at ``Precision.HIGHEST`` (no TF32 / bf16 passes on GPUs).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from hashjax import ops
from hashjax.codes import binarize

__all__ = [
    "b_step",
    "binarize",
    "bits_eigenvalue",
    "capped_ridge",
    "center_features",
    "floor_delta2",
    "gram",
    "kernel_features",
    "kernel_from_distances",
    "latent_targets",
    "matmul",
    "objective",
    "orthogonalize",
    "reconstruction_step",
    "relative_scale",
    "sample_anchors",
    "squared_distances",
    "thin_qr",
    "tsqr",
    "spd_inverse",
    "v_inverse",
    "v_step",
    "w_factor",
    "w_step",
]

matmul = ops.matmul  # full float32 precision, shared with the other solvers



# ----------------------------------------------------------------------------
# Anchors and kernel features.
# ----------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("n_paired", "k"))
def sample_anchors(rng: jax.Array, n_paired: int, k: int) -> jax.Array:
  """Draws ``min(k, n_paired)`` distinct paired items as anchors.

  The same indices are used in every modality, so anchors are paired.

  Args:
    rng: PRNG key.
    n_paired: n_p, number of paired items (static).
    k: requested number of anchors (static); capped at ``n_paired``.

  Returns:
    int32 ``[min(k, n_p)]`` indices into the paired rows, without repetition.
  """
  k = min(int(k), int(n_paired))
  return jax.random.choice(rng, n_paired, (k,), replace=False).astype(jnp.int32)


def squared_distances(x: jax.Array, a: jax.Array) -> jax.Array:
  """Squared Euclidean distances ``||x_i - a_j||^2``, clipped at 0.

  Args:
    x: ``[n, d]`` float items.
    a: ``[k, d]`` float anchors.

  Returns:
    ``[n, k]`` distances (zero-padded feature columns change nothing).
  """
  xx = jnp.sum(x * x, axis=-1, keepdims=True)
  aa = jnp.sum(a * a, axis=-1)[None, :]
  return jnp.maximum(xx + aa - 2.0 * matmul(x, a.T), 0.0)


def floor_delta2(delta2: jax.Array) -> jax.Array:
  """``delta^2`` floored at the smallest normal float of its dtype.

  A constant view gives ``delta^2 = 0`` and ``exp(-0 / 0) = NaN``; with the floor
  every kernel feature of such a view is ``exp(-0) = 1``, which centring turns
  into 0 (the view carries no information), never NaN.
  """
  return jnp.maximum(delta2, jnp.finfo(jnp.result_type(delta2)).tiny)


def kernel_features(x: jax.Array, anchors: jax.Array, delta2: jax.Array) -> jax.Array:
  """Gaussian kernel features of one modality (uncentred).

  ``phi(x)_j = exp(-||x - a_j||^2 / (2 delta^2))``.

  Args:
    x: ``[n, d]`` items.
    anchors: ``[k, d]`` anchors.
    delta2: scalar delta^2 > 0.

  Returns:
    ``[n, k]`` features in (0, 1].
  """
  return jnp.exp(-squared_distances(x, anchors) / (2.0 * floor_delta2(delta2)))


def center_features(phi: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Subtracts the mean over real rows; padded rows become 0.

  Args:
    phi: ``[n, k]`` features of one modality.
    mask: ``[n]`` 1 for real training rows, 0 for padding.

  Returns:
    ``(centred [n, k] (padded rows 0), mean [k])``.
  """
  mean = jnp.sum(phi * mask[:, None], axis=0) / jnp.maximum(jnp.sum(mask), 1.0)
  return (phi - mean) * mask[:, None], mean


def kernel_from_distances(dist: jax.Array, mask: jax.Array,
                          delta2: jax.Array | None = None
                          ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Kernel step of one modality from its item-anchor squared distances.

  The distances are computed elsewhere (:func:`squared_distances`), e.g. streamed
  in row chunks from host memory by :func:`hashjax.rreh.fit`.

  Args:
    dist: ``[n, k]`` squared distances to the anchors (padded rows arbitrary).
    mask: ``[n]`` 1 for real training rows, 0 for padding.
    delta2: scalar kernel width, or None for the default (mean squared
      item-anchor distance over the real rows); floored by :func:`floor_delta2`.

  Returns:
    ``(phi [n, k] centred, padded rows 0; mean [k]; delta2 scalar, floored)``.
  """
  if delta2 is None:
    count = jnp.maximum(jnp.sum(mask), 1.0) * dist.shape[1]
    delta2 = jnp.sum(dist * mask[:, None]) / count
  delta2 = floor_delta2(delta2)
  phi, mean = center_features(jnp.exp(-dist / (2.0 * delta2)), mask)
  return phi, mean, delta2


def gram(phi: jax.Array) -> jax.Array:
  """``phi^T phi`` ``[k, k]`` of ``phi`` ``[n, k]`` (a reduction over items)."""
  return matmul(phi.T, phi)


# ----------------------------------------------------------------------------
# Reconstruction step.
# ----------------------------------------------------------------------------


def reconstruction_step(phi_u: jax.Array, phi_s: jax.Array,
                        theta: jax.Array) -> jax.Array:
  """Ridge reconstruction of items from a reference set, in kernel space.

  ``R = argmin ||Phi_u - R Phi_S||^2 + theta ||R||^2
      = Phi_u Phi_S^T (Phi_S Phi_S^T + theta I_s)^-1
      = Phi_u (Phi_S^T Phi_S + theta I_k)^-1 Phi_S^T``  (push-through identity),
  so the solve is ``k x k`` whatever s is.

  Args:
    phi_u: ``[n, k]`` items to reconstruct (rows that must not be reconstructed,
      e.g. paired or padded rows, are 0 and give 0 rows of R).
    phi_s: ``[s, k]`` reference items (the anchors: ``s = k``).
    theta: scalar ridge theta > 0.

  Returns:
    ``R`` ``[n, s]``.
  """
  k = phi_s.shape[1]
  a = gram(phi_s) + theta * jnp.eye(k, dtype=phi_s.dtype)
  g = jax.scipy.linalg.solve(a, phi_s.T, assume_a="pos")  # [k, s]
  return matmul(phi_u, g)


def latent_targets(v: jax.Array, r: jax.Array, ref_idx: jax.Array,
                   paired_rows: jax.Array | None = None) -> jax.Array:
  """``Z = [V ; R V_S]`` for one modality, on the padded item axis.

  Args:
    v: ``[n_p, b]`` shared latent of the paired items.
    r: ``[n, s]`` reconstruction coefficients (0 in paired and padded rows).
    ref_idx: int ``[s]`` rows of ``v`` that form the reference set.
    paired_rows: int ``[n_p]`` item-axis row of every paired item, or None:
      rows ``[0, n_p)``.

  Returns:
    ``[n, b]``: the paired rows are ``V``, the others ``R V_S`` (0 for padding).
  """
  n, n_p = r.shape[0], v.shape[0]
  if paired_rows is None:
    placed = jnp.pad(v, ((0, n - n_p), (0, 0)))
  else:
    placed = jnp.zeros((n, v.shape[1]), v.dtype).at[paired_rows].set(v)
  return placed + matmul(r, v[ref_idx])


# ----------------------------------------------------------------------------
# W-, B- and V-steps.
# ----------------------------------------------------------------------------


def spd_inverse(a: jax.Array) -> jax.Array:
  """Inverse of a symmetric positive-definite matrix (Cholesky, then symmetrised).

  The solver inverts its ``k x k`` / ``s x s`` systems once per solve, so every
  iteration's W- and V-step is a matrix product: on CPU an XLA triangular solve
  costs far more than the matching ``matmul``.

  Args:
    a: ``[k, k]`` SPD matrix (symmetrised before the factorisation).

  Returns:
    ``[k, k]`` ``a^-1``.
  """
  k = a.shape[0]
  factor = jnp.linalg.cholesky(0.5 * (a + a.T))
  inv = jax.scipy.linalg.cho_solve((factor, True), jnp.eye(k, dtype=a.dtype))
  return 0.5 * (inv + inv.T)


def tsqr(phi: jax.Array, mesh: jax.sharding.Mesh, axis: str = "data"
         ) -> tuple[jax.Array, jax.Array]:
  """Thin QR of an item-sharded ``phi`` without gathering it (TSQR, one level).

  Each of the D shards ``[n/D, k]`` is factorised locally (``Q1_d R1_d``); the
  stacked ``R1`` factors ``[D r, k]`` (all-gathered, small) are factorised again
  (``Q2 R``), and shard d's rows of Q are ``Q1_d Q2[d]``. Per device the memory is
  ``n/D x k`` plus ``D r x k``, where ``jnp.linalg.qr`` on the sharded array
  gathers all ``n x k`` onto every device.

  Args:
    phi: ``[n, k]`` with n a multiple of the mesh's ``axis`` size (rows sharded).
    mesh: the mesh whose ``axis`` shards the rows.
    axis: the item axis name.

  Returns:
    ``(q [n, r], r [r, k])`` with ``q`` rows sharded like ``phi`` and
    ``q r = phi``, ``q^T q = I`` (signs may differ from ``jnp.linalg.qr``).
  """
  def local(x):
    q1, r1 = jnp.linalg.qr(x)                                  # [n/D, r1], [r1, k]
    stacked = jax.lax.all_gather(r1, axis, tiled=True)         # [D r1, k]
    q2, r = jnp.linalg.qr(stacked)                             # [D r1, r], [r, k]
    rows = r1.shape[0]
    block = jax.lax.dynamic_slice_in_dim(q2, jax.lax.axis_index(axis) * rows, rows)
    return matmul(q1, block), r

  spec = jax.sharding.PartitionSpec(axis, None)
  return jax.shard_map(local, mesh=mesh, in_specs=spec,
                       out_specs=(spec, jax.sharding.PartitionSpec()),
                       check_vma=False)(phi)


def thin_qr(phi: jax.Array, mesh: jax.sharding.Mesh | None = None
            ) -> tuple[jax.Array, jax.Array]:
  """Thin QR ``phi = q r`` (``[n, r]``, ``[r, k]``): :func:`tsqr` when ``mesh``'s
  ``"data"`` axis shards the rows over more than one device, else ``jnp.linalg.qr``."""
  if mesh is not None and mesh.shape.get("data", 1) > 1:
    return tsqr(phi, mesh)
  return jnp.linalg.qr(phi)


def w_factor(phi: jax.Array, *, beta: jax.Array, lam: jax.Array,
             mesh: jax.sharding.Mesh | None = None,
             qr: tuple[jax.Array, jax.Array] | None = None
             ) -> tuple[jax.Array, jax.Array]:
  """Factors of the W-step ridge regression, without forming ``Phi^T Phi``.

  The W-step solves ``((1+beta) Phi^T Phi + lambda I) W = Phi^T T``. In float32 the
  normal equations fail at scale: ``Phi^T Phi`` summed over n items carries errors of
  about ``eps ||Phi||^2``, which at n ~ 1e5 exceed the ridge ``lambda = 0.01`` and the
  objective stops decreasing. Instead, with the thin QR ``Phi = Q R`` and the QR
  ``[sqrt(1+beta) R; sqrt(lambda) I] = Q2 R2`` (so ``R2^T R2`` is the system
  matrix), ``W = P Q^T T`` with ``P = R2^-1 Q2_top^T / sqrt(1+beta)``: no matrix with
  the squared condition number is ever formed.

  Args:
    phi: ``[n, k]`` centred kernel features (padded rows 0).
    beta: scalar beta >= 0.
    lam: scalar lambda > 0.
    mesh: a mesh whose ``"data"`` axis shards the rows of ``phi``: the QR is then
      :func:`tsqr` (no gather of ``phi``); None or a 1-device axis: ``jnp.linalg.qr``.
    qr: ``thin_qr(phi, mesh)`` when the caller has it already (it is not redone).

  Returns:
    ``(q [n, r], p [k, r])``; use with :func:`w_step`.
  """
  k = phi.shape[1]
  q, r = thin_qr(phi, mesh) if qr is None else qr              # [n, r], [r, k]
  rows = r.shape[0]
  a = jnp.concatenate([jnp.sqrt(1.0 + beta) * r,
                       jnp.sqrt(lam) * jnp.eye(k, dtype=phi.dtype)])
  q2, r2 = jnp.linalg.qr(a)                                    # [r + k, k], [k, k]
  p = jax.scipy.linalg.solve_triangular(r2, q2[:rows].T, lower=False)
  return q, p / jnp.sqrt(1.0 + beta)


def w_step(q: jax.Array, p: jax.Array, z: jax.Array, b: jax.Array, mask: jax.Array,
           *, beta: jax.Array) -> jax.Array:
  """W-step of one modality: ``W = ((1+beta) Phi^T Phi + lambda I)^-1 Phi^T (Z + beta B)``.

  Args:
    q, p: from :func:`w_factor` (``[n, r]``, ``[k, r]``).
    z: ``[n, b]`` latent targets.
    b: ``[n, b]`` codes in {-1, +1}.
    mask: ``[n]`` 1 for real rows (padded rows of the target are zeroed).
    beta: scalar beta.

  Returns:
    ``W`` ``[k, b]``.
  """
  return matmul(p, matmul(q.T, (z + beta * b) * mask[:, None]))


def b_step(phi: jax.Array, w: jax.Array) -> jax.Array:
  """B-step of one modality: ``B = sign(Phi W)`` with ``sign(0) = +1``.

  Args:
    phi: ``[n, k]``.
    w: ``[k, b]``.

  Returns:
    ``[n, b]`` in {-1, +1}, dtype of ``phi``.
  """
  return binarize(matmul(phi, w))


def v_inverse(r: jax.Array, weights: jax.Array | None = None) -> jax.Array:
  """Inverse of the V-step system ``sum_i alpha_i (I_s + R_i^T R_i)``.

  Args:
    r: ``[M, n, s]`` reconstruction coefficients of every modality.
    weights: ``[M]`` view weights alpha_i > 0, or None: every alpha_i = 1 (the
      system ``M I_s + sum_i R_i^T R_i``, computed as before weights existed).

  Returns:
    ``[s, s]`` symmetric inverse.
  """
  m, _, s = r.shape
  grams = jax.vmap(gram)(r)                                    # [M, s, s]
  if weights is None:
    return spd_inverse(jnp.sum(grams, axis=0) + m * jnp.eye(s, dtype=r.dtype))
  weights = weights.astype(r.dtype)
  return spd_inverse(jnp.sum(weights[:, None, None] * grams, axis=0)
                     + jnp.sum(weights) * jnp.eye(s, dtype=r.dtype))


def orthogonalize(v: jax.Array) -> jax.Array:
  """Nearest ``V`` with ``V^T 1 = 0`` and ``V^T V = n_p I`` (SVD of the centred ``V``).

  Args:
    v: ``[n_p, b]`` with ``b < n_p``.

  Returns:
    ``sqrt(n_p) U Q^T`` where ``V - mean(V) = U S Q^T`` (thin SVD).
  """
  n_p = v.shape[0]
  vc = v - jnp.mean(v, axis=0, keepdims=True)
  u, _, qt = jnp.linalg.svd(vc, full_matrices=False)
  return jnp.sqrt(jnp.asarray(n_p, v.dtype)) * matmul(u, qt)


def v_step(p: jax.Array, r: jax.Array, v_inv: jax.Array, ref_idx: jax.Array, *,
           n_paired: int, orthogonal: bool = False,
           paired_rows: jax.Array | None = None,
           weights: jax.Array | None = None) -> jax.Array:
  """V-step: weighted least squares in V given ``P_i = Phi_i W_i``.

  Minimises ``sum_i alpha_i (||V - P_i^paired||^2 + ||R_i V_S - P_i^unpaired||^2)``.
  Rows of V outside the reference set S only meet the paired terms: their optimum is
  the alpha-weighted mean over modalities of the paired rows of ``P_i``. The
  reference rows solve ``sum_i alpha_i (I + R_i^T R_i) V_S = sum_i alpha_i
  (P_i^paired[S] + R_i^T P_i)`` (``s x s``; docs/rreh.md#weights).

  Args:
    p: ``[M, n, b]`` ``Phi_i W_i`` (padded rows 0).
    r: ``[M, n, s]`` reconstruction coefficients (0 in paired and padded rows).
    v_inv: ``[s, s]`` from :func:`v_inverse` (with the same ``weights``).
    ref_idx: int ``[s]`` reference rows among the n_p paired rows.
    n_paired: n_p (a Python int).
    orthogonal: project onto ``V^T 1 = 0, V^T V = n_p I`` afterwards (a bool).
    paired_rows: int ``[n_p]`` rows of ``p`` holding the paired items, or None:
      rows ``[0, n_p)``.
    weights: ``[M]`` view weights alpha_i > 0, or None: every alpha_i = 1 (the
      unweighted computation, unchanged).

  Returns:
    ``V`` ``[n_p, b]``.
  """
  if paired_rows is None:
    p_paired = p[:, :n_paired]                                 # [M, n_p, b]
  else:
    p_paired = p[:, paired_rows]
  if weights is None:
    v = jnp.mean(p_paired, axis=0)
    rhs = jnp.sum(p_paired[:, ref_idx], axis=0) + jnp.sum(
        jax.vmap(lambda ri, pi: matmul(ri.T, pi))(r, p), axis=0)
  else:
    a = weights.astype(p.dtype)[:, None, None]
    v = jnp.sum(a * p_paired, axis=0) / jnp.sum(a)
    back = jax.vmap(lambda ri, pi: matmul(ri.T, pi))(r, p)     # [M, s, b]
    rhs = jnp.sum(a * p_paired[:, ref_idx], axis=0) + jnp.sum(a * back, axis=0)
  v_ref = matmul(v_inv, rhs)
  v = v.at[ref_idx].set(v_ref)
  if orthogonal:
    v = orthogonalize(v)
  return v


def bits_eigenvalue(r: jax.Array, bits: int) -> jax.Array:
  """The ``bits``-th largest eigenvalue of ``Phi^T Phi`` (0 when ``bits`` exceeds
  its rank), from the singular values of the R factor of ``Phi = Q R``
  (:func:`thin_qr`, which the W-step factorisation computes anyway).

  Through R, not the ``k x k`` Gram: in float32 the Gram summed over many items
  carries errors of about ``eps ||Phi||^2``, the size of the small eigenvalues this
  is used for (see :func:`w_factor`).

  Args:
    r: ``[r, k]`` R factor of the features ``[n, k]`` (padded rows and columns 0).
    bits: b (static).

  Returns:
    float scalar.
  """
  sv = jnp.linalg.svd(r, compute_uv=False)                     # descending
  if bits > sv.shape[0]:
    return jnp.zeros((), r.dtype)
  return sv[bits - 1] ** 2


def capped_ridge(ridge: jax.Array, bits_ev: jax.Array, mean_ev: jax.Array,
                 cap: jax.Array, floor: float) -> jax.Array:
  """The W ridge of one modality under the spectral cap (docs/rreh.md#ridge-cap).

  ``min(ridge, cap * max(bits_ev, floor * mean_ev))``: the ridge never exceeds
  ``cap`` times the ``b``-th eigenvalue of ``Phi^T Phi`` (``bits_ev``), so it does
  not wipe out the directions a ``b``-bit code can use in a view whose spectrum
  falls off within b directions; ``floor`` (times the mean eigenvalue ``mean_ev``)
  keeps it positive where ``Phi`` has fewer than b directions. ``cap = inf`` never
  binds: the ridge is returned as it is (how a grid mixes capped and uncapped
  points in one batch).
  """
  capped = jnp.minimum(ridge, cap * jnp.maximum(bits_ev, floor * mean_ev))
  return jnp.where(jnp.isinf(cap), ridge, capped)


def relative_scale(a: jax.Array, cols: jax.Array | None = None) -> jax.Array:
  """Mean eigenvalue ``tr(a^T a) / cols`` of the Gram of ``a`` ``[rows, cols]``.

  ``cols`` (default ``a.shape[-1]``) is the real column count when trailing columns
  are zero padding.

  Ridge weights are given relative to this scale (theta to the reference Gram,
  lambda to ``Phi^T Phi``), so one setting means the same amount of shrinkage
  whatever the feature width, item count or feature scale. Floored at the smallest
  normal float, so an all-zero matrix gives a tiny positive ridge, never 0.
  """
  scale = jnp.sum(a * a) / (a.shape[-1] if cols is None else cols)
  return jnp.maximum(scale, jnp.finfo(a.dtype).tiny)


def objective(phi: jax.Array, mask: jax.Array, w: jax.Array, b: jax.Array,
              z: jax.Array, *, beta: jax.Array, lam: jax.Array) -> jax.Array:
  """RREH objective of one modality.

  ``||Z - Phi W||^2 + beta ||B - Phi W||^2 + lam ||W||^2``.

  The solver sums it over modalities.

  Args:
    phi: ``[n, k]``.
    mask: ``[n]`` (padded rows count for nothing).
    w: ``[k, b]``.
    b: ``[n, b]`` codes.
    z: ``[n, b]`` latent targets.
    beta: scalar beta.
    lam: scalar (absolute) lambda of this modality.

  Returns:
    scalar objective.
  """
  p = matmul(phi, w)
  fit = jnp.sum(mask[:, None] * ((z - p) ** 2 + beta * (b - p) ** 2))
  return fit + lam * jnp.sum(w * w)
