"""RREH alternating solver, after jaxopt / ott-jax: ``init``, ``update``, ``run``.

The data of one problem (:class:`RREHProblem`: centred kernel features of every
modality, row masks, the reference rows of the reconstruction) is fixed; the
continuous hyper-parameters (:class:`RREHHyper`: theta, beta, lambda) are traced, so
sweeping them does not recompile; bits, iterations and ``orthogonal_v`` are static.

One iteration (:func:`update`), for all modalities at once (vmapped):

1. W-step ``W_i = ((1+beta) Phi_i^T Phi_i + lambda I)^-1 Phi_i^T (Z_i + beta B_i)``
   (solved through QR factors of ``Phi_i``, see :func:`hashjax.rreh.steps.w_factor`);
2. B-step ``B_i = sign(Phi_i W_i)``;
3. V-step (``k x k`` solve for the reference rows, mean over modalities elsewhere);
4. objective with the new (W, B, V), written to ``objective[iteration]``.

With view weights alpha_i (:class:`RREHHyper`, docs/rreh.md#weights) the objective
is ``sum_i alpha_i f_i``: steps 1 and 2 are unchanged (scaling view i's own term
does not move its minimiser), step 3 is the alpha-weighted least squares and step 4
the weighted sum.

Each step minimises the objective exactly in its block, so without the optional
orthogonal projection of V the recorded objective never increases.
Hyper-parameter-dependent constants (R, the QR factors of the W-step and the
inverse of the ``s x s`` V-step system) are built once per solve by :func:`prepare`,
so an iteration is matrix products only.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hashjax.rreh import steps

__all__ = [
    "INIT_V",
    "RREHAux",
    "RREHHyper",
    "RREHProblem",
    "RREHState",
    "GRID_MODES",
    "init",
    "RIDGE_CAP_FLOOR",
    "make_hyper",
    "prepare",
    "ridge_spectrum",
    "run",
    "run_grid",
    "update",
]


@partial(jax.tree_util.register_dataclass,
         data_fields=["phi", "mask", "ref_idx", "width", "paired_rows"],
         meta_fields=["num_paired", "mesh"])
@dataclasses.dataclass(frozen=True)
class RREHProblem:
  """One RREH problem on the padded item axis.

  Attributes:
    phi: ``[M, n, k]`` centred kernel features; paired item i is row
      ``paired_rows[i]`` in every modality (the same row index in every modality),
      every other real row is an unpaired item of its modality, and padded rows are 0.
      One process: rows ``[0, n_p)`` are the paired items, then each modality's
      unpaired items, then padding. P processes: the item axis is P blocks of equal
      size, block p laid out that way with process p's own rows (see
      :func:`hashjax.rreh.make_problem`).
    mask: ``[M, n]`` float, 1 for real rows, 0 for padding.
    ref_idx: int32 ``[s]`` paired items (indices into ``[0, n_p)``) the unpaired
      items are reconstructed from: the anchors (``s = k``) or all paired items
      (``s = n_p``).
    num_paired: n_p (static).
    width: float ``[M]`` real feature width of every modality (the columns past it
      are zero padding; raw features without the kernel step differ in width), or
      None: every modality is ``k`` wide. Scales the relative ridge ``lam``.
    paired_rows: int32 ``[n_p]`` row of paired item i on the item axis, or None:
      ``arange(n_p)`` (the single-process layout).
    mesh: the mesh whose ``"data"`` axis shards the item axis (static), or None.
      With more than one device on it, the W-step's QR is a TSQR
      (:func:`hashjax.rreh.steps.tsqr`): per-device memory falls with the device
      count instead of every device holding all of ``Phi``.
  """

  phi: jax.Array
  mask: jax.Array
  ref_idx: jax.Array
  num_paired: int
  width: jax.Array | None = None
  mesh: jax.sharding.Mesh | None = None
  paired_rows: jax.Array | None = None

  def paired_index(self) -> jax.Array:
    """int32 ``[n_p]`` row of every paired item (default ``arange(n_p)``)."""
    if self.paired_rows is None:
      return jnp.arange(self.num_paired, dtype=jnp.int32)
    return self.paired_rows


class RREHHyper(NamedTuple):
  """Continuous hyper-parameters (scalars, traced; a leading axis for grids).

  ``theta`` and ``lam`` are relative ridges: modality i's reconstruction ridge is
  ``theta * tr(Phi_S,i Phi_S,i^T) / s`` and its W ridge ``lam * tr(Phi_i^T Phi_i) / k``
  (the mean eigenvalue of the system each regularises, see
  :func:`hashjax.rreh.steps.relative_scale`), so one setting holds across feature
  widths, scales and item counts.

  ``weights`` (``[M]``, or None) are the view weights alpha_i of the weighted
  objective ``sum_i alpha_i f_i`` (docs/rreh.md#weights): they enter the V-step, the
  PCA start of V and the reported objective; None is the unweighted model, computed
  exactly as before weights existed (``make_hyper`` leaves it None).

  ``cap`` (a scalar, or None) caps every modality's W ridge at ``cap`` times the
  ``bits``-th eigenvalue of ``Phi_i^T Phi_i`` (floored at :data:`RIDGE_CAP_FLOOR`
  times the mean eigenvalue; :func:`hashjax.rreh.steps.capped_ridge`,
  docs/rreh.md#ridge-cap); None leaves the ridge ``lam * tr / k``, computed exactly
  as before the cap existed.
  """

  theta: jax.Array  # relative ridge of the reconstruction step
  beta: jax.Array   # weight of the quantisation term ||B - Phi W||^2
  lam: jax.Array    # relative weight of ||W||^2
  weights: jax.Array | None = None  # [M] view weights alpha_i, or None (uniform)
  cap: jax.Array | None = None      # spectral cap of the W ridge, or None (no cap)


class RREHAux(NamedTuple):
  """Constants of one solve (depend on the problem and the hyper-parameters)."""

  r: jax.Array         # [M, n, s] reconstruction coefficients (0 in paired/padded rows)
  w_q: jax.Array    # [M, n, min(n, k)] Q of Phi_i = Q R (W-step, steps.w_factor)
  w_p: jax.Array    # [M, k, min(n, k)] W = w_p @ w_q^T (Z + beta B)
  v_inv: jax.Array  # [s, s] inverse of the V-step system
  lam: jax.Array    # [M] absolute W ridge of every modality (lam * relative scale)
  weights: jax.Array | None = None  # [M] view weights (RREHHyper.weights) or None


class RREHState(NamedTuple):
  """Solver state.

  Attributes:
    W: ``[M, k, b]`` hash projections.
    B: ``[M, n, b]`` codes in {-1, +1} (padded rows +1 and masked out).
    V: ``[n_p, b]`` shared latent of the paired items.
    objective: ``[iterations]``, the objective after each iteration (-1 = not
      reached).
  """

  W: jax.Array
  B: jax.Array
  V: jax.Array
  objective: jax.Array


def make_hyper(*, theta: float, beta: float, lam: float, weights=None, cap=None,
               dtype=jnp.float32) -> RREHHyper:
  """Hyper-parameters as scalar arrays (so that different values share a trace).

  ``weights``: None (unweighted) or M view weights (used as given: normalise them
  first, e.g. with :func:`hashjax.checks.check_view_weights`). ``cap``: None (no
  cap of the W ridge) or a positive scalar (see :class:`RREHHyper`).
  """
  return RREHHyper(jnp.asarray(theta, dtype), jnp.asarray(beta, dtype),
                   jnp.asarray(lam, dtype),
                   None if weights is None else jnp.asarray(weights, dtype),
                   None if cap is None else jnp.asarray(cap, dtype))


# Floor of the spectral cap of the W ridge, relative to the mean eigenvalue of
# Phi_i^T Phi_i (a view with fewer than ``bits`` directions keeps a positive ridge).
RIDGE_CAP_FLOOR = 1e-4


def ridge_spectrum(problem: "RREHProblem", bits: int) -> jax.Array:
  """``[M]`` ``bits``-th eigenvalue of every modality's ``Phi_i^T Phi_i``: what the
  spectral cap of :class:`RREHHyper` compares the ridge with (:func:`prepare`
  computes it from the QR factors it builds anyway)."""
  return jnp.stack([steps.bits_eigenvalue(steps.thin_qr(problem.phi[i], problem.mesh)[1],
                                          bits) for i in range(problem.phi.shape[0])])


def _paired_mask(problem: RREHProblem) -> jax.Array:
  """``[n]`` 1 on the rows of paired items, 0 elsewhere."""
  n = problem.phi.shape[1]
  if problem.paired_rows is None:
    return (jnp.arange(n) < problem.num_paired).astype(problem.phi.dtype)
  return jnp.zeros((n,), problem.phi.dtype).at[problem.paired_rows].set(1.0)


def prepare(problem: RREHProblem, hyper: RREHHyper, *, bits: int | None = None
            ) -> RREHAux:
  """Reconstruction coefficients and the inverses of the W and V systems.

  Args:
    problem: the problem.
    hyper: theta, beta, lambda (and the optional view weights and ridge cap).
    bits: b (static); needed only with ``hyper.cap``.

  Returns:
    :class:`RREHAux`.
  """
  phi, ref_idx = problem.phi, problem.ref_idx
  unpaired = (1.0 - _paired_mask(problem))[None, :, None]
  phi_s = phi[:, problem.paired_index()[ref_idx]]               # [M, s, k]
  m = phi.shape[0]
  width = (jnp.full((m,), phi.shape[-1], phi.dtype) if problem.width is None
           else problem.width.astype(phi.dtype))
  theta = [hyper.theta * steps.relative_scale(phi_s[i].T) for i in range(m)]
  mean_ev = [steps.relative_scale(phi[i], width[i]) for i in range(m)]
  lam = [hyper.lam * mean_ev[i] for i in range(m)]
  # The M factorisations (Cholesky, QR) run once per fit, one modality after
  # another: vmapped (batched) LAPACK custom calls deadlock jaxlib 0.10's CPU batch
  # thread pool on small machines (seen on 2 cores: the fit never returned).
  qrs = [steps.thin_qr(phi[i], problem.mesh) for i in range(m)]
  if hyper.cap is not None:   # the cap reads the spectrum off the same R factors
    if bits is None:
      raise ValueError("prepare: a ridge cap needs bits.")
    lam = [steps.capped_ridge(lam[i], steps.bits_eigenvalue(qrs[i][1], bits),
                              mean_ev[i], hyper.cap, RIDGE_CAP_FLOOR)
           for i in range(m)]
  r = jnp.stack([
      steps.reconstruction_step(phi[i] * unpaired[0], phi_s[i], theta[i])
      for i in range(m)])                                       # [M, n, s]
  factors = [steps.w_factor(phi[i], beta=hyper.beta, lam=lam[i], qr=qrs[i])
             for i in range(m)]
  return RREHAux(r=r, w_q=jnp.stack([f[0] for f in factors]),
                 w_p=jnp.stack([f[1] for f in factors]),
                 v_inv=steps.v_inverse(r, hyper.weights), lam=jnp.stack(lam),
                 weights=hyper.weights)


def _targets(v: jax.Array, aux: RREHAux, problem: RREHProblem) -> jax.Array:
  return jax.vmap(steps.latent_targets, in_axes=(None, 0, None, None))(
      v, aux.r, problem.ref_idx, problem.paired_rows)


INIT_V = ("gaussian", "pca")


def _mean_features(phi: jax.Array, weights: jax.Array | None) -> jax.Array:
  """``[n, k]`` mean over modalities of ``phi``, alpha-weighted if ``weights``."""
  if weights is None:
    return jnp.mean(phi, axis=0)
  a = weights.astype(phi.dtype)[:, None, None]
  return jnp.sum(a * phi, axis=0) / jnp.sum(a)


def _pca_directions(problem: RREHProblem, rng: jax.Array, bits: int,
                    weights: jax.Array | None = None) -> jax.Array:
  """``[k, bits]``: top principal directions of the paired kernel features.

  Kernel feature j is the similarity to anchor j in every modality (anchors are
  paired), so the modalities' centred paired features are averaged (alpha-weighted
  with view weights) and the top eigenvectors of the ``k x k`` Gram of that average
  are taken (a reduction over the item axis), each signed so that its
  largest-magnitude entry is positive. Columns beyond ``k`` are Gaussian.
  """
  phi = problem.phi
  k = phi.shape[-1]
  paired = _paired_mask(problem)[:, None]
  mean_phi = _mean_features(phi, weights) * paired              # [n, k]
  _, vecs = jnp.linalg.eigh(steps.gram(mean_phi))              # ascending
  top = vecs[:, ::-1][:, :min(bits, k)]
  # Deterministic signs: the largest-magnitude entry of each direction is positive.
  pivot = jnp.take_along_axis(top, jnp.argmax(jnp.abs(top), axis=0)[None], axis=0)
  top = top * jnp.where(pivot < 0, -1.0, 1.0).astype(top.dtype)
  if bits > k:
    top = jnp.concatenate(
        [top, jax.random.normal(rng, (k, bits - k), phi.dtype)], axis=1)
  return top


def init(problem: RREHProblem, aux: RREHAux, rng: jax.Array, *, bits: int,
         iterations: int, init_v: str = "gaussian") -> RREHState:
  """Initial state: ``V = sign(Phi_paired G)``, ``B_i = sign(Z_i)``, ``W = 0``.

  Args:
    problem: the problem.
    aux: from :func:`prepare`.
    rng: key of ``G = jax.random.normal(rng, (k, bits), phi.dtype)``.
    bits: b (static).
    iterations: length of the objective history (static).
    init_v: ``"gaussian"`` (docs/rreh.md: ``V = sign(Phi_paired,1 G)``, G Gaussian) or
      ``"pca"`` (``V = sign(mean_i Phi_paired,i U)``, U the top ``bits`` principal
      directions of that mean, see :func:`_pca_directions`; the mean is weighted
      by ``aux.weights`` when given) (static).

  Returns:
    :class:`RREHState`.
  """
  phi = problem.phi
  m, _, k = phi.shape
  if init_v == "gaussian":
    g = jax.random.normal(rng, (k, bits), phi.dtype)
    v = steps.binarize(steps.matmul(phi[0, problem.paired_index()], g))
  elif init_v == "pca":
    u = _pca_directions(problem, rng, bits, aux.weights)
    v = steps.binarize(steps.matmul(
        _mean_features(phi, aux.weights)[problem.paired_index()], u))
  else:
    raise ValueError(f"init_v must be one of {INIT_V}, got {init_v!r}.")
  z = _targets(v, aux, problem)
  return RREHState(
      W=jnp.zeros((m, k, bits), phi.dtype),
      B=steps.binarize(z),
      V=v,
      objective=jnp.full((iterations,), -1.0, phi.dtype))


def update(state: RREHState, problem: RREHProblem, aux: RREHAux, hyper: RREHHyper,
           iteration: jax.Array, *, orthogonal_v: bool = False) -> RREHState:
  """One alternating iteration: W-, B-, V-step, then the objective.

  Args:
    state: current state.
    problem: the problem.
    aux: from :func:`prepare` with the same ``hyper``.
    hyper: theta, beta, lambda.
    iteration: int scalar, where the objective is written.
    orthogonal_v: SVD projection of V onto the balanced, decorrelated set (static).

  Returns:
    the new state.
  """
  phi, ref_idx = problem.phi, problem.ref_idx
  z = _targets(state.V, aux, problem)
  w = jax.vmap(lambda q, p, zz, bb, mm: steps.w_step(q, p, zz, bb, mm, beta=hyper.beta))(
      aux.w_q, aux.w_p, z, state.B, problem.mask)
  b = jax.vmap(steps.b_step)(phi, w)
  p = jax.vmap(steps.matmul)(phi, w)
  v = steps.v_step(p, aux.r, aux.v_inv, ref_idx, n_paired=problem.num_paired,
                   orthogonal=orthogonal_v, paired_rows=problem.paired_rows,
                   weights=aux.weights)
  z = _targets(v, aux, problem)
  per_view = jax.vmap(partial(steps.objective, beta=hyper.beta))(
      phi, problem.mask, w, b, z, lam=aux.lam)                  # [M]
  if aux.weights is None:
    obj = jnp.sum(per_view)
  else:
    obj = jnp.sum(aux.weights.astype(per_view.dtype) * per_view)
  return RREHState(W=w, B=b, V=v,
                   objective=state.objective.at[iteration].set(obj.astype(
                       state.objective.dtype)))


def _iterate(problem, aux, hyper, rng, *, bits, iterations, orthogonal_v, init_v,
             state=None):
  if state is None:
    state = init(problem, aux, rng, bits=bits, iterations=iterations, init_v=init_v)

  def body(s, it):
    return update(s, problem, aux, hyper, it, orthogonal_v=orthogonal_v), None

  state, _ = jax.lax.scan(body, state, jnp.arange(iterations))
  return state


@partial(jax.jit, static_argnames=("bits", "iterations", "orthogonal_v", "init_v"))
def run(problem: RREHProblem, hyper: RREHHyper, rng: jax.Array, *, bits: int,
        iterations: int, orthogonal_v: bool = False,
        init_v: str = "gaussian") -> RREHState:
  """``prepare``, ``init`` and ``iterations`` updates under ``lax.scan``.

  Args:
    problem: the problem (arrays may be sharded along the item axis).
    hyper: theta, beta, lambda (traced: new values do not recompile).
    rng: key for the initial V.
    bits: b (static).
    iterations: number of iterations (static).
    orthogonal_v: see :func:`update` (static).
    init_v: see :func:`init` (static).

  Returns:
    the final :class:`RREHState`.
  """
  aux = prepare(problem, hyper, bits=bits)
  return _iterate(problem, aux, hyper, rng, bits=bits, iterations=iterations,
                  orthogonal_v=orthogonal_v, init_v=init_v)


GRID_MODES = ("map", "vmap")


@partial(jax.jit, static_argnames=("bits", "iterations", "orthogonal_v", "init_v",
                                   "mode"))
def run_grid(problem: RREHProblem, hypers: RREHHyper, rng: jax.Array, *, bits: int,
             iterations: int, orthogonal_v: bool = False, init_v: str = "gaussian",
             mode: str = "vmap") -> RREHState:
  """:func:`run` for a grid of hyper-parameters in one compiled program.

  ``jax.vmap(run)`` over hyper-parameters batches the factorisations of
  :func:`prepare` (Cholesky, QR: LAPACK custom calls on CPU; with view weights also
  the PCA start's eigh), and batched LAPACK
  calls wedge jaxlib 0.10's CPU thread pool on small machines (2 cores: no result
  after 400 s for a run that takes 9 s alone; experiments/rreh_vmap_hang.py
  reproduces it). Here the factorisations of the G grid points always run one
  after another under ``lax.map``; ``mode`` picks how the iterations (matrix
  products only, plus an SVD with ``orthogonal_v``) run:

  * ``"map"``: one grid point after another (``lax.map``);
  * ``"vmap"`` (default): batched over the grid (``jax.vmap``); with
    ``orthogonal_v`` the batched SVD is a LAPACK call again, so ``"map"`` is used
    instead. Measured on Wikipedia (n = 1195, k = 217, 6 points, 2 busy cores):
    14 s, against 41 s for ``"map"`` and 29 s for six calls of :func:`run`
    (experiments/results/rreh_grid.md).

  Args:
    problem: the problem.
    hypers: :class:`RREHHyper` whose fields have a leading grid axis ``[G]``.
    rng: key for the initial V (the same for every grid point).
    bits, iterations, orthogonal_v, init_v: as :func:`run` (static).
    mode: ``"map"`` or ``"vmap"`` (static).

  Returns:
    :class:`RREHState` with a leading ``[G]`` axis on every field.
  """
  if mode not in GRID_MODES:
    raise ValueError(f"mode must be one of {GRID_MODES}, got {mode!r}.")
  kw = dict(bits=bits, iterations=iterations, orthogonal_v=orthogonal_v,
            init_v=init_v)
  auxes = jax.lax.map(lambda h: prepare(problem, h, bits=bits), hypers)
  if mode == "vmap" and not orthogonal_v:
    starts = None
    if init_v == "pca" and hypers.weights is not None:
      # The weighted PCA start depends on the grid point: its eigh is a LAPACK
      # call, so the starts run one after another too (unweighted, it is shared).
      starts = jax.lax.map(lambda a: init(problem, a, rng, bits=bits,
                                          iterations=iterations, init_v=init_v),
                           auxes)
    return jax.vmap(lambda a, h, s0: _iterate(problem, a, h, rng, **kw, state=s0))(
        auxes, hypers, starts)
  return jax.lax.map(lambda ah: _iterate(problem, ah[0], ah[1], rng, **kw),
                     (auxes, hypers))
