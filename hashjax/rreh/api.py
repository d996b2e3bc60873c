"""RREH front end: ``fit`` on semi-paired views, ``encode`` out-of-sample items.

  model = hashjax.rreh.fit(paired_views, unpaired_views, config, rng)
  codes = hashjax.rreh.encode(model, x, modality)      # int8 [n, bits] in {-1, +1}

``fit`` validates the inputs, samples paired anchors, computes every modality's
kernel features ``[n, k]`` from its raw rows streamed in chunks (paired rows first,
then the modality's unpaired rows, then padding; rows masked), stacks them on an
``[M, n, k]`` array, runs the solver of :mod:`hashjax.rreh.solver`, and returns an
:class:`RREHModel` pytree. The raw features are read chunk by chunk from wherever
they live (NumPy arrays, ``np.memmap`` files, any dtype) and never copied whole, so
memory grows with ``n * k``, not ``n * d``. The item axis is sharded over ``mesh``
(default: every device on one ``"data"`` axis), so the ``k x k`` Gram products
become cross-device reductions; n is padded to a multiple of the device count with
masked rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hashjax import checks
from hashjax.codes import binarize, modality_index
from hashjax.rreh import criterion as crit
from hashjax.rreh import solver, steps

__all__ = [
    "CHUNK_ELEMENTS",
    "DEFAULTS",
    "RECONSTRUCT_AGAINST",
    "RREHModel",
    "RREHFeatures",
    "check_finite_state",
    "default_mesh",
    "encode",
    "fit",
    "make_problem",
    "resolve_config",
    "select",
]

RECONSTRUCT_AGAINST = ("anchors", "paired")

# Raw feature values per streamed chunk (64 MiB of float32): the default chunk of
# ``fit`` and ``encode`` is ``CHUNK_ELEMENTS // d`` rows of a d-wide modality.
CHUNK_ELEMENTS = 1 << 24

# theta, lam, init_v = None: chosen without labels by :func:`select` (``select``
# True) or taken from hashjax.rreh.criterion.FIXED (``select`` False). theta and lam are
# relative ridges (see hashjax.rreh.RREHHyper).
DEFAULTS: dict[str, Any] = dict(
    bits=64, num_anchors=600, theta=None, beta=0.1, lam=None, iterations=20,
    orthogonal_v=False, kernel=True, delta2=None, reconstruct_against="anchors",
    init_v=None, select=True)


class RREHModel(NamedTuple):
  """A fitted RREH model (a pytree of arrays; saved with ``hashjax.serialization``).

  Raw features are standardised before anything else: modality m's rows become
  ``(x - shift[m, :d_m]) / scale[m]`` (the paired items' mean and root mean squared
  centred norm), so features of any scale (1e-30 or 1e18) give the same model.

  Attributes:
    shift: ``[M, d_max]`` per-feature shift of every modality (zero-padded).
    scale: ``[M]`` scale of every modality.
    anchors: ``[M, k, d_max]`` standardised anchor features (zero-padded).
    delta2: ``[M]`` kernel widths (of the standardised features).
    mean: ``[M, f]`` training mean of the features (``f = k`` kernel features, or
      ``f = d_max`` raw features when ``kernel`` is false).
    W: ``[M, f, b]`` hash projections.
    dims: int32 ``[M]`` raw feature width of every modality.
    anchor_index: int32 ``[k]`` rows of the paired training items used as anchors.
    kernel: bool ``[]`` whether features are kernelized.
    objective: ``[iterations]`` objective after each iteration.
  """

  shift: jax.Array
  scale: jax.Array
  anchors: jax.Array
  delta2: jax.Array
  mean: jax.Array
  W: jax.Array
  dims: jax.Array
  anchor_index: jax.Array
  kernel: jax.Array
  objective: jax.Array


class RREHFeatures(NamedTuple):
  """How :func:`make_problem` turned raw rows into the problem's features.

  The fields of :class:`RREHModel` that do not come from the solver:
  ``RREHModel(**features._asdict(), W=state.W, objective=state.objective)``.
  """

  shift: jax.Array
  scale: jax.Array
  anchors: jax.Array
  delta2: jax.Array
  mean: jax.Array
  dims: jax.Array
  anchor_index: jax.Array
  kernel: jax.Array


def default_mesh() -> jax.sharding.Mesh:
  """One ``"data"`` axis over every device (a single device is a mesh of size 1).

  The axis is ``AxisType.Auto``: the compiler propagates the item-axis sharding
  through the solver (the ``k x k`` Gram products become all-reduces).
  """
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def _auto_mesh(mesh: jax.sharding.Mesh) -> jax.sharding.Mesh:
  """The same devices and axis names with every axis ``Auto``."""
  return jax.sharding.Mesh(mesh.devices, mesh.axis_names,
                           axis_types=(jax.sharding.AxisType.Auto,) * len(
                               mesh.axis_names))


def _number(name: str, value: Any, *, positive: bool) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                       np.floating)):
    raise ValueError(f"{name} must be a number, got {value!r}.")
  v = float(value)
  if not math.isfinite(v) or (v <= 0 if positive else v < 0):
    raise ValueError(
        f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value}.")
  return v


def resolve_config(config: Any) -> dict[str, Any]:
  """Validated RREH settings from a ConfigDict or mapping (missing keys: DEFAULTS).

  Raises:
    ValueError: unknown keys or invalid values.
  """
  if config is None:
    cfg = {}
  elif hasattr(config, "to_dict"):
    cfg = dict(config.to_dict())
  elif isinstance(config, Mapping):
    cfg = dict(config)
  else:
    raise ValueError(f"config must be a ConfigDict or mapping, got {type(config).__name__}.")
  unknown = sorted(set(cfg) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"unknown RREH config key(s) {unknown}; known: {sorted(DEFAULTS)}.")
  out = {**DEFAULTS, **cfg}
  out["bits"] = checks.check_bits(out["bits"])
  out["num_anchors"] = checks.check_positive_int("num_anchors", out["num_anchors"])
  out["iterations"] = checks.check_positive_int("iterations", out["iterations"])
  for key in ("theta", "lam"):
    if out[key] is not None:
      out[key] = _number(key, out[key], positive=True)
  out["beta"] = _number("beta", out["beta"], positive=False)
  for key in ("orthogonal_v", "kernel", "select"):
    if not isinstance(out[key], (bool, np.bool_)):
      raise ValueError(f"{key} must be a bool, got {out[key]!r}.")
    out[key] = bool(out[key])
  if out["init_v"] is not None and out["init_v"] not in solver.INIT_V:
    raise ValueError(f"init_v must be one of {solver.INIT_V}, got {out['init_v']!r}.")
  if out["reconstruct_against"] not in RECONSTRUCT_AGAINST:
    raise ValueError(
        f"reconstruct_against must be one of {RECONSTRUCT_AGAINST}, got "
        f"{out['reconstruct_against']!r}.")
  d2 = out["delta2"]
  if d2 is not None:
    if isinstance(d2, (list, tuple, np.ndarray)):
      out["delta2"] = tuple(_number("delta2", v, positive=True) for v in d2)
    else:
      out["delta2"] = _number("delta2", d2, positive=True)
  return out


def _check_views(paired_views: Any, unpaired_views: Any
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  for name, views in (("paired_views", paired_views), ("unpaired_views", unpaired_views)):
    if hasattr(views, "shape") or not isinstance(views, Sequence):
      raise ValueError(
          f"{name} must be a list of M arrays [n, d_m], got {type(views).__name__}.")
  m = len(paired_views)
  if m < 2:
    raise ValueError(f"RREH needs at least 2 modalities, got {m} paired view(s).")
  if len(unpaired_views) != m:
    raise ValueError(
        f"unpaired_views must have one array per modality ({m}), got "
        f"{len(unpaired_views)}.")
  names = [f"paired_views[{i}]" for i in range(m)]
  for nm, v in zip(names, paired_views):
    checks.check_matrix(nm, v)
  checks.check_same_rows(names, paired_views)
  for i, (p, u) in enumerate(zip(paired_views, unpaired_views)):
    shape = getattr(u, "shape", None)
    if shape is None or len(shape) != 2:
      raise ValueError(
          f"unpaired_views[{i}] must be 2-D [n_u, d], got "
          f"{'no array' if shape is None else tuple(shape)}.")
    if shape[1] != p.shape[1]:
      raise ValueError(
          f"unpaired_views[{i}] has {shape[1]} columns but paired_views[{i}] has "
          f"{p.shape[1]}; a modality's paired and unpaired items need the same width.")
  # No float32 copies: rows are converted chunk by chunk where they are used.
  paired = [np.asarray(v) for v in paired_views]
  unpaired = [np.asarray(v) for v in unpaired_views]
  for name, views in (("paired_views", paired), ("unpaired_views", unpaired)):
    for i, v in enumerate(views):
      if v.dtype.kind not in "biuf":
        raise ValueError(f"{name}[{i}] must hold real numbers, got dtype {v.dtype}.")
      checks.check_finite(f"{name}[{i}]", v)
  return paired, unpaired


def _layout(paired: list[np.ndarray], unpaired: list[np.ndarray], multiple: int
            ) -> tuple[int, np.ndarray]:
  """Padded item count n (a multiple of ``multiple``) and the ``[M, n]`` row mask."""
  n_p = paired[0].shape[0]
  n = -(-(n_p + max(u.shape[0] for u in unpaired)) // multiple) * multiple
  mask = np.zeros((len(paired), n), np.float32)
  for i, u in enumerate(unpaired):
    mask[i, :n_p + u.shape[0]] = 1.0
  return n, mask


def _standardise(x: Any, shift: np.ndarray, scale: float) -> np.ndarray:
  """float32 ``(x - shift) / scale``, computed in float64 (no overflow/underflow)."""
  return ((np.asarray(x, np.float64) - shift) / scale).astype(np.float32)


def _standardisation(p: np.ndarray, name: str, chunk: int
                     ) -> tuple[np.ndarray, float]:
  """Shift (column mean) and scale (RMS centred row norm) of one modality's paired rows.

  Read in row chunks, accumulated in float64.

  Raises:
    ValueError: every paired row is the same (all-zero or constant view): the
      anchors, drawn from the paired rows, would all coincide.
  """
  n, d = p.shape
  total = np.zeros(d)
  for start in range(0, n, chunk):
    total += np.asarray(p[start:start + chunk], np.float64).sum(axis=0)
  shift = total / n
  ss = 0.0
  for start in range(0, n, chunk):
    ss += float(np.sum((np.asarray(p[start:start + chunk], np.float64) - shift) ** 2))
  scale = math.sqrt(ss / n)
  if not math.isfinite(scale) or scale == 0.0 or scale < 1e-300:
    raise ValueError(
        f"{name} is constant (every paired item has the same features): it carries no "
        "information and RREH's anchors, drawn from the paired items, would coincide.")
  return shift, scale


def _rows(p: np.ndarray, u: np.ndarray, start: int, stop: int, shift: np.ndarray,
          scale: float) -> np.ndarray:
  """Standardised float32 rows ``[start, stop)`` of a modality's ``[paired; unpaired]``."""
  n_p = p.shape[0]
  parts = [p[start:min(stop, n_p)], u[max(start - n_p, 0):max(stop - n_p, 0)]]
  return np.concatenate([_standardise(x, shift, scale) for x in parts if len(x)])


def _chunks(p: np.ndarray, u: np.ndarray, chunk: int, shift: np.ndarray, scale: float):
  """Yields ``[chunk, d]`` standardised float32 row blocks of ``[p; u]``, the last
  zero-padded.

  Every chunk has the same shape, so a jitted consumer compiles once.
  """
  total = p.shape[0] + u.shape[0]
  for start in range(0, total, chunk):
    block = _rows(p, u, start, min(start + chunk, total), shift, scale)
    yield np.pad(block, ((0, chunk - block.shape[0]), (0, 0)))


def _chunk_rows(chunk_rows: int | None, d: int, total: int, multiple: int) -> int:
  c = min(chunk_rows or max(1, CHUNK_ELEMENTS // d), total)
  return -(-c // multiple) * multiple


_distances = jax.jit(steps.squared_distances)


@partial(jax.jit, static_argnames=("n", "sharding"))
def _kernel_rows(dist, mask, delta2, *, n, sharding):
  """Pads/cuts the streamed distances to n rows, then the kernel step of one modality."""
  dist = jnp.pad(dist, ((0, max(n - dist.shape[0], 0)), (0, 0)))[:n]
  return steps.kernel_from_distances(
      jax.lax.with_sharding_constraint(dist, sharding), mask, delta2)


def _kernel_step_streamed(paired, unpaired, anchors, delta2, mask, *, n, chunk_rows,
                          mesh, shifts, scales):
  """Kernel features of every modality from raw rows streamed in chunks.

  Per modality only the ``[n, k]`` distances are materialised (computed chunk by
  chunk, every chunk sharded over the mesh's ``"data"`` axis), never a padded
  ``[M, n, d_max]`` stack of raw features.

  Returns:
    ``(phi [M, n, k] centred, padded rows 0; mean [M, k]; delta2 [M])``.
  """
  devices = mesh.shape["data"]
  row_sh = NamedSharding(mesh, P("data", None))
  rep = NamedSharding(mesh, P())
  phis, means, widths = [], [], []
  for i, (p, u) in enumerate(zip(paired, unpaired)):
    d = p.shape[1]
    chunk = _chunk_rows(chunk_rows, d, p.shape[0] + u.shape[0], devices)
    a = jax.device_put(anchors[i, :, :d], rep)
    parts = [_distances(jax.device_put(block, row_sh), a)
             for block in _chunks(p, u, chunk, shifts[i], scales[i])]
    dist = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    del parts
    # Rows past the modality's items are padding: masked out of delta2 and phi.
    phi, mean, width = _kernel_rows(
        dist, jax.device_put(mask[i], NamedSharding(mesh, P("data"))),
        None if delta2 is None else delta2[i], n=n, sharding=row_sh)
    del dist
    phis.append(phi)
    means.append(mean)
    widths.append(width)
  phi = jax.device_put(jnp.stack(phis), NamedSharding(mesh, P(None, "data", None)))
  return phi, jnp.stack(means), jnp.stack(widths)


def _stack_raw(paired: list[np.ndarray], unpaired: list[np.ndarray], n: int,
               shifts, scales) -> np.ndarray:
  """``[M, n, d_max]`` standardised float32 rows paired | unpaired | zero padding."""
  d_max = max(p.shape[1] for p in paired)
  x = np.zeros((len(paired), n, d_max), np.float32)
  for i, (p, u) in enumerate(zip(paired, unpaired)):
    x[i, :p.shape[0] + u.shape[0], :p.shape[1]] = _rows(
        p, u, 0, p.shape[0] + u.shape[0], shifts[i], scales[i])
  return x


@jax.jit
def _linear_features(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jax.vmap(steps.center_features)(x, mask)


def make_problem(paired_views: Sequence[Any], unpaired_views: Sequence[Any],
                 config: Any, rng: jax.Array, *, mesh: jax.sharding.Mesh | None = None,
                 chunk_rows: int | None = None
                 ) -> tuple[solver.RREHProblem, RREHFeatures]:
  """The solver's problem from semi-paired views: standardise, anchors, kernel step.

  For researchers who call the solver themselves::

    problem, features = rreh.make_problem(paired, unpaired, config, rng_anchor)
    state = rreh.run(problem, rreh.make_hyper(theta=1.0, beta=0.1, lam=1e-3),
                     rng_init, bits=64, iterations=20)
    model = rreh.RREHModel(**features._asdict(), W=state.W,
                           objective=state.objective)

  Args:
    paired_views, unpaired_views, mesh, chunk_rows: as :func:`fit`.
    config: as :func:`fit`; ``num_anchors``, ``kernel``, ``delta2``,
      ``reconstruct_against`` shape the problem (``bits`` and ``orthogonal_v`` are
      only checked).
    rng: key of the anchor sample (:func:`fit` passes the first half of its key).

  Returns:
    ``(problem, features)``: :class:`hashjax.rreh.RREHProblem` (item axis sharded
    over the mesh's ``"data"`` axis) and :class:`RREHFeatures`.

  Raises:
    ValueError: as :func:`fit`.
  """
  cfg = resolve_config(config)
  if chunk_rows is not None:
    chunk_rows = checks.check_positive_int("chunk_rows", chunk_rows)
  paired, unpaired = _check_views(paired_views, unpaired_views)
  m, n_p = len(paired), paired[0].shape[0]
  if cfg["orthogonal_v"] and cfg["bits"] >= n_p:
    raise ValueError(
        f"orthogonal_v needs bits < n_p (balanced, decorrelated V), got "
        f"bits={cfg['bits']}, n_p={n_p}.")
  if isinstance(cfg["delta2"], tuple) and len(cfg["delta2"]) != m:
    raise ValueError(f"delta2 must have one value per modality ({m}), got "
                     f"{len(cfg['delta2'])}.")
  stats = [_standardisation(p, f"paired_views[{i}]",
                            chunk_rows or max(1, CHUNK_ELEMENTS // p.shape[1]))
           for i, p in enumerate(paired)]
  shifts = [st[0] for st in stats]
  scales = np.asarray([st[1] for st in stats])
  mesh = default_mesh() if mesh is None else mesh
  if "data" not in mesh.axis_names:
    raise ValueError(f"mesh needs a 'data' axis, got axes {mesh.axis_names}.")
  mesh = _auto_mesh(mesh)

  n, mask = _layout(paired, unpaired, mesh.shape["data"])
  mask_dev = jax.device_put(mask, NamedSharding(mesh, P(None, "data")))
  rep = NamedSharding(mesh, P())

  anchor_index = steps.sample_anchors(rng, n_p, cfg["num_anchors"])
  idx = np.asarray(anchor_index)
  d_max = max(p.shape[1] for p in paired)
  anchors_host = np.zeros((m, len(idx), d_max), np.float32)
  shift_host = np.zeros((m, d_max), np.float32)
  for i, p in enumerate(paired):
    anchors_host[i, :, :p.shape[1]] = _standardise(p[idx], shifts[i], scales[i])
    shift_host[i, :p.shape[1]] = shifts[i]
  anchors = jax.device_put(anchors_host, rep)                       # [M, k, d_max]
  # A fixed delta2 is given in raw units: in standardised units it is / scale^2.
  fixed = None if cfg["delta2"] is None else jnp.asarray(
      np.broadcast_to(np.asarray(cfg["delta2"], np.float64), (m,)) / scales ** 2,
      jnp.float32)
  if cfg["kernel"]:
    phi, mean, delta2 = _kernel_step_streamed(
        paired, unpaired, anchors_host, fixed, mask, n=n, chunk_rows=chunk_rows,
        mesh=mesh, shifts=shifts, scales=scales)
  else:
    x_dev = jax.device_put(_stack_raw(paired, unpaired, n, shifts, scales),
                           NamedSharding(mesh, P(None, "data", None)))
    phi, mean = _linear_features(x_dev, mask_dev)
    delta2 = fixed if fixed is not None else jnp.ones((m,), jnp.float32)
  if cfg["reconstruct_against"] == "anchors":
    ref_idx = anchor_index
  else:
    ref_idx = jnp.arange(n_p, dtype=jnp.int32)
  width = (np.full(m, phi.shape[-1]) if cfg["kernel"]
           else np.asarray([p.shape[1] for p in paired]))
  problem = solver.RREHProblem(
      phi=phi, mask=mask_dev, ref_idx=jax.device_put(ref_idx, rep), num_paired=n_p,
      width=jax.device_put(jnp.asarray(width, jnp.float32), rep), mesh=mesh)
  features = RREHFeatures(
      shift=jax.device_put(shift_host, rep),
      scale=jnp.asarray(scales, jnp.float32), anchors=anchors, delta2=delta2,
      mean=mean, dims=jnp.asarray([p.shape[1] for p in paired], jnp.int32),
      anchor_index=anchor_index, kernel=jnp.asarray(cfg["kernel"]))
  return problem, features


def select(paired_views: Sequence[Any], unpaired_views: Sequence[Any], config: Any,
           rng: jax.Array, *, grid: Mapping[str, Sequence[Any]] | None = None,
           folds: int = 3, holdout: float = 0.2,
           mesh: jax.sharding.Mesh | None = None
           ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """Chooses hyper-parameters by held-out pair retrieval (no labels).

  See :mod:`hashjax.rreh.criterion` for the criterion.

  Args:
    paired_views, unpaired_views: as :func:`fit`.
    config: as :func:`fit`; keys in the grid are searched, the others
      are fixed (theta / lam / init_v left None and not searched:
      :data:`hashjax.rreh.criterion.FIXED`).
    rng: PRNG key (fold split, anchors and initial V of every fold).
    grid: ``{key: values}`` over any of theta, beta, lam, init_v (default: the
      :data:`hashjax.rreh.criterion.GRID` entries of the keys in
      :data:`hashjax.rreh.criterion.SELECT_KEYS` that ``config`` leaves None).
    folds: disjoint held-out shares (capped so that they fit in the paired items).
    holdout: share of the paired items held out per fold (at least 2 items).

  Returns:
    ``(chosen, rows)``: the grid point picked by
    :func:`hashjax.rreh.criterion.choose` (one-standard-error rule) and one row per
    grid point with its ``score`` (mean over folds) and ``fold_scores``.

  Raises:
    ValueError: a grid key that cannot be searched, or too few paired items.
  """
  cfg = resolve_config(config)
  if grid is None:
    grid = {k: crit.GRID[k] for k in crit.SELECT_KEYS if cfg[k] is None}
  bad = sorted(set(grid) - {"theta", "beta", "lam", "init_v"})
  if bad:
    raise ValueError(f"grid keys must be among theta, beta, lam, init_v; got {bad}.")
  for k in crit.SELECT_KEYS:
    if cfg[k] is None and k not in grid:
      cfg[k] = crit.FIXED[k]
  paired, unpaired = _check_views(paired_views, unpaired_views)
  n_p = paired[0].shape[0]
  h = max(2, int(round(holdout * n_p)))
  folds = max(1, min(int(folds), n_p // h))
  if n_p - h < 2:
    raise ValueError(f"label-free selection needs at least {h + 2} paired items, got "
                     f"{n_p}; give theta, lam and init_v or set select=False.")
  points = crit.grid_points(grid) if grid else [{}]
  rng_perm, rng_fold = jax.random.split(rng)
  perm = np.asarray(jax.random.permutation(rng_perm, n_p))
  scores = np.full((len(points), folds), -np.inf)
  for f in range(folds):
    held = np.sort(perm[f * h:(f + 1) * h])
    keep = np.setdiff1d(np.arange(n_p), held)
    tp = [p[keep] for p in paired]
    tu = [np.concatenate([np.asarray(u), p[held]]) for p, u in zip(paired, unpaired)]
    rows = [keep.size + u.shape[0] + np.arange(h) for u in unpaired]
    rng_anchor, rng_init = jax.random.split(jax.random.fold_in(rng_fold, f))
    problem, _ = make_problem(tp, tu, dict(cfg, init_v=cfg["init_v"] or "pca"),
                                  rng_anchor, mesh=mesh)
    by_init = {}
    for j, pt in enumerate(points):
      by_init.setdefault(pt.get("init_v", cfg["init_v"]), []).append(j)
    for init_v, idx in by_init.items():
      hv = {k: jnp.asarray([points[j].get(k, cfg[k]) for j in idx], jnp.float32)
            for k in ("theta", "beta", "lam")}
      state = solver.run_grid(
          problem, solver.RREHHyper(hv["theta"], hv["beta"], hv["lam"]), rng_init,
          bits=cfg["bits"], iterations=cfg["iterations"],
          orthogonal_v=cfg["orthogonal_v"], init_v=init_v)
      w_ok = np.asarray(jnp.all(jnp.isfinite(state.W), axis=(1, 2, 3)))
      b = np.asarray(state.B)                                     # [G, M, n, bits]
      for g, j in enumerate(idx):
        if w_ok[g]:
          scores[j, f] = crit.pair_score([b[g, i, rows[i]] for i in range(len(paired))])
  mean = scores.mean(axis=1)
  table = [dict(pt, score=float(mean[j]), fold_scores=scores[j].tolist())
           for j, pt in enumerate(points)]
  return dict(points[crit.choose(table)]), table


def check_finite_state(state: solver.RREHState) -> None:
  """Raises FloatingPointError if W or the objective of a solve is not finite."""
  for name, value in (("W", state.W), ("objective", state.objective)):
    if not bool(jnp.all(jnp.isfinite(value))):
      raise FloatingPointError(
          f"RREH produced a non-finite {name}; no model is returned. Check the views "
          "for degenerate scales and the hyper-parameters (theta, lam > 0).")


def fit(paired_views: Sequence[Any], unpaired_views: Sequence[Any], config: Any,
        rng: jax.Array, *, mesh: jax.sharding.Mesh | None = None,
        chunk_rows: int | None = None) -> RREHModel:
  """Fits RREH on semi-paired data (docs/rreh.md).

  Args:
    paired_views: M >= 2 arrays ``[n_p, d_m]``; row i is the same item in every
      modality.
    unpaired_views: M arrays ``[n_u_m, d_m]`` of items seen in one modality only
      (may be ``[0, d_m]``); the counts may differ between modalities.
    config: ConfigDict or mapping with any of ``bits, num_anchors, theta, beta, lam
      (theta and lam relative: see :class:`hashjax.rreh.RREHHyper`), iterations,
      orthogonal_v, kernel, delta2 (None: from the data; a number or one per
      modality, in the raw features' units), reconstruct_against ('anchors' |
      'paired'), init_v ('gaussian' | 'pca', the initial V; see
      :func:`hashjax.rreh.solver.init`), select``; see :data:`DEFAULTS`. theta,
      lam and init_v left None are chosen without labels by :func:`select` (held-out
      pair retrieval over :data:`hashjax.rreh.criterion.GRID`), or, with
      ``select=False``, taken from :data:`hashjax.rreh.criterion.FIXED`. Given values
      are never searched.
    rng: PRNG key; split into the anchor key and the key of the initial V.
    mesh: a mesh with a ``"data"`` axis for the item axis (default
      :func:`default_mesh`).
    chunk_rows: raw rows per streamed chunk of the kernel step (default
      ``CHUNK_ELEMENTS // d``; rounded up to a multiple of the device count).
      The views may be ``np.memmap`` arrays of any real dtype: rows are read and
      converted to float32 chunk by chunk.

  Returns:
    :class:`RREHModel`.

  Raises:
    ValueError: invalid settings; fewer than 2 modalities; paired views with
      different row counts; NaN / inf; a constant (e.g. all-zero) paired view; a
      modality whose unpaired width differs from its paired width;
      ``orthogonal_v`` with ``bits >= n_p``.
    FloatingPointError: the solve gave a non-finite W or objective.
  """
  cfg = resolve_config(config)
  if chunk_rows is not None:
    chunk_rows = checks.check_positive_int("chunk_rows", chunk_rows)
  if mesh is not None and "data" not in mesh.axis_names:
    raise ValueError(f"mesh needs a 'data' axis, got axes {mesh.axis_names}.")
  free = [k for k in crit.SELECT_KEYS if cfg[k] is None]
  if free and cfg["select"]:
    chosen, _ = select(paired_views, unpaired_views, cfg, jax.random.fold_in(rng, 1),
                       mesh=mesh)
    cfg.update(chosen)
  cfg.update({k: crit.FIXED[k] for k in free if cfg[k] is None})
  rng_anchor, rng_init = jax.random.split(rng)
  problem, features = make_problem(paired_views, unpaired_views, cfg, rng_anchor,
                                   mesh=mesh, chunk_rows=chunk_rows)
  hyper = solver.make_hyper(theta=cfg["theta"], beta=cfg["beta"], lam=cfg["lam"])
  state = solver.run(problem, hyper, rng_init, bits=cfg["bits"],
                     iterations=cfg["iterations"], orthogonal_v=cfg["orthogonal_v"],
                     init_v=cfg["init_v"])
  check_finite_state(state)
  return RREHModel(**features._asdict(), W=state.W, objective=state.objective)


@partial(jax.jit, static_argnames=("kernel",))
def _encode(x, anchors, delta2, mean, w, *, kernel):
  """Codes of standardised rows ``x`` ``[n, d]``."""
  if kernel:
    phi = steps.kernel_features(x, anchors, delta2)
  else:
    phi = x
  return binarize(steps.matmul(phi - mean, w), jnp.int8)


def encode(model: RREHModel, x: Any, modality: int, *,
           chunk_rows: int | None = None) -> jax.Array:
  """Out-of-sample codes ``b(x) = sign(phi_m(x) W_m)`` of items of one modality.

  Args:
    model: from :func:`fit` (or loaded from disk).
    x: ``[n, d_m]`` items of modality ``modality`` (an array or ``np.memmap`` of
      any real dtype; encoded in chunks of ``chunk_rows`` rows, default
      ``CHUNK_ELEMENTS // d_m``).
    modality: index m in ``[0, M)``.
    chunk_rows: rows per chunk (positive int) or None.

  Returns:
    int8 ``[n, b]`` codes in {-1, +1} (``z >= 0`` -> +1).

  Raises:
    ValueError: modality out of range, wrong width, or NaN / inf in ``x``.
  """
  num = int(np.shape(model.dims)[0])
  mi = modality_index(modality, num)
  d = int(np.asarray(model.dims)[mi])
  checks.check_matrix("x", x, cols=d)
  if chunk_rows is not None:
    chunk_rows = checks.check_positive_int("chunk_rows", chunk_rows)
  checks.check_finite("x", x)
  x = x if isinstance(x, jax.Array) else np.asarray(x)
  kernel = bool(np.asarray(model.kernel))
  # Only the modality's own d columns: the padded columns of anchors are 0.
  anchors = jnp.asarray(model.anchors[mi])[:, :d]
  mean, w = jnp.asarray(model.mean[mi]), jnp.asarray(model.W[mi])
  if not kernel:
    mean, w = mean[:d], w[:d]
  delta2 = jnp.asarray(model.delta2[mi])
  shift = np.asarray(model.shift[mi], np.float64)[:d]
  scale = float(np.asarray(model.scale[mi]))
  n = x.shape[0]
  chunk = _chunk_rows(chunk_rows, d, n, 1)
  codes = []
  for start in range(0, n, chunk):
    if isinstance(x, jax.Array):
      block = (x[start:start + chunk].astype(jnp.float32) - shift.astype(np.float32)
               ) / scale
    else:
      block = jnp.asarray(_standardise(x[start:start + chunk], shift, scale))
    real = block.shape[0]
    if real < chunk:    # one compiled shape for every chunk
      block = jnp.pad(block, ((0, chunk - real), (0, 0)))
    codes.append(_encode(block, anchors, delta2, mean, w, kernel=kernel)[:real])
  return codes[0] if len(codes) == 1 else jnp.concatenate(codes)
