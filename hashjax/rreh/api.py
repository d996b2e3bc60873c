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

Several JAX processes (docs/rreh.md#multihost): with ``process_local=True`` every
process passes only its own block of the rows; the item axis is one block per
process, each device computes the features of its own rows, and what needs every
item (standardisation, anchors, kernel width) comes from small cross-process
reductions, so the fit is that of the concatenated blocks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hashjax import checks, distributed
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
# relative ridges (see hashjax.rreh.RREHHyper). view_weights: None (uniform, the
# unweighted model), one positive weight per view (normalised to sum to M), or
# "auto" (chosen without labels by :func:`select`; docs/rreh.md#weights).
# ridge_cap: a positive cap kappa (the W ridge is at most kappa times the bits-th
# eigenvalue of Phi_i^T Phi_i, docs/rreh.md#ridge-cap), 0 (no cap: the ridge is lam
# times the mean eigenvalue), or None: chosen by :func:`select` (none or 3) together
# with lam when lam is left None, else no cap.
DEFAULTS: dict[str, Any] = dict(
    bits=64, num_anchors=600, theta=None, beta=0.1, lam=None, iterations=20,
    orthogonal_v=False, kernel=True, delta2=None, reconstruct_against="anchors",
    init_v=None, select=True, view_weights=None, ridge_cap=None)


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


def _hyper_cap(value: float | None) -> float | None:
  """The cap of :class:`hashjax.rreh.RREHHyper` for a resolved ``ridge_cap`` setting:
  None (no cap) for None or 0, else the value."""
  return None if not value else float(value)


def _cap_array(values: Sequence[float | None]) -> jax.Array | None:
  """``[G]`` caps of a grid's points (no cap: ``inf``, which never binds), or None
  when no point has a cap (the uncapped program, as before caps existed)."""
  caps = [_hyper_cap(v) for v in values]
  if all(c is None for c in caps):
    return None
  return jnp.asarray([np.inf if c is None else c for c in caps], jnp.float32)


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
  if out["ridge_cap"] is not None:   # 0: no cap
    out["ridge_cap"] = _number("ridge_cap", out["ridge_cap"], positive=False)
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
  out["view_weights"] = checks.check_view_weights("view_weights", out["view_weights"])
  if out["view_weights"] == checks.VIEW_WEIGHTS_AUTO and not out["select"]:
    raise ValueError("view_weights='auto' is chosen by label-free selection; it needs "
                     "select=True (or give the weights).")
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


class _Rows(NamedTuple):
  """How many rows every process holds (the same on every process after exchange).

  Attributes:
    paired: int ``[P]`` paired rows of every process.
    unpaired: int ``[P, M]`` unpaired rows of every process and modality.
    dims: raw feature width of every modality.
  """

  paired: np.ndarray
  unpaired: np.ndarray
  dims: tuple[int, ...]

  @property
  def num_paired(self) -> int:
    return int(self.paired.sum())

  def paired_offset(self, p: int) -> int:
    """Global index (in ``[0, n_p)``) of process p's first paired item."""
    return int(self.paired[:p].sum())


def _mesh_error(mesh: jax.sharding.Mesh) -> str | None:
  """Why ``mesh`` cannot hold process blocks of the item axis (None: it can).

  The item axis is one block per process (see :func:`_layout`), so each process's
  devices must be a contiguous run of the ``"data"`` axis, in process order.
  """
  if "data" not in mesh.axis_names:
    return f"mesh needs a 'data' axis, got axes {mesh.axis_names}."
  procs = jax.process_count()
  size = mesh.shape["data"]
  if size % procs:
    return (f"the mesh's 'data' axis has {size} devices, not a multiple of the "
            f"{procs} processes.")
  axis = mesh.axis_names.index("data")
  order = np.moveaxis(np.vectorize(lambda d: d.process_index)(mesh.devices), axis, 0)
  order = order.reshape(size, -1)[:, 0]
  if list(order) != sorted(order) or len(set(order)) != procs:
    return ("every process's devices must form one contiguous run of the mesh's 'data' "
            f"axis, in process order; got processes {order.tolist()} along it.")
  return None


def _share(views: list[np.ndarray]) -> list[np.ndarray]:
  """This process's contiguous block of every view's rows (:func:`host_rows`)."""
  return [v[distributed.host_rows(v.shape[0])] for v in views]


def _first_rows(views: Any) -> int | None:
  """Row count of the first view (None if there is no such array)."""
  try:
    return int(np.shape(views[0])[0])
  except (TypeError, IndexError, KeyError):
    return None


def _fingerprint(cfg: Mapping[str, Any], rng: jax.Array) -> str:
  """What must be the same on every process: the settings and the PRNG key."""
  return repr((sorted(cfg.items()), np.asarray(jax.random.key_data(rng)).tolist()))


def _checked_inputs(paired_views: Any, unpaired_views: Any, cfg: Mapping[str, Any],
                    rng: jax.Array, *, mesh: jax.sharding.Mesh | None,
                    chunk_rows: int | None, process_local: bool):
  """``(chunk_rows, mesh, paired, unpaired, rows)`` checked, as :func:`make_problem`
  and :func:`fit` take them (:func:`_local_views` with the settings' fingerprint)."""
  if chunk_rows is not None:
    chunk_rows = checks.check_positive_int("chunk_rows", chunk_rows)
  mesh = _resolve_mesh(mesh)
  paired, unpaired, rows = _local_views(paired_views, unpaired_views,
                                        process_local=process_local, mesh=mesh,
                                        same=_fingerprint(cfg, rng))
  checks.check_view_weights("view_weights", cfg["view_weights"], len(rows.dims))
  return chunk_rows, mesh, paired, unpaired, rows


def _local_views(paired_views: Any, unpaired_views: Any, *, process_local: bool,
                 mesh: jax.sharding.Mesh | None, same: str = ""
                 ) -> tuple[list[np.ndarray], list[np.ndarray], _Rows]:
  """Checks this process's views and agrees on every process's row counts.

  With ``process_local`` false on more than one process, every process holds every
  row and keeps its :func:`hashjax.distributed.host_rows` block of each view. Every
  process takes part in one :func:`hashjax.distributed.exchange` of its counts and
  widths (or its error), so a mistake on one process raises the same ``ValueError``
  on every process instead of leaving the others waiting in a collective.
  """
  procs = jax.process_count()
  error = None if mesh is None else _mesh_error(mesh)
  paired = unpaired = None
  try:
    if procs > 1 and process_local and _first_rows(paired_views) == 0:
      raise ValueError(
          "this process holds no paired rows; every process needs a block of the "
          "paired items (hashjax.distributed.host_rows).")
    paired, unpaired = _check_views(paired_views, unpaired_views)
  except ValueError as e:
    if procs == 1:
      raise
    error = error or str(e)
  if error and procs == 1:
    raise ValueError(error)
  if paired is not None and procs > 1 and not process_local:
    paired, unpaired = _share(paired), _share(unpaired)
  mine = {"error": error} if paired is None or error else {
      "error": None, "same": same, "paired": int(paired[0].shape[0]),
      "unpaired": [int(u.shape[0]) for u in unpaired],
      "dims": [int(v.shape[1]) for v in paired]}
  every = distributed.exchange(mine)
  for i, e in enumerate(every):
    if e["error"]:
      raise ValueError(f"process {i} of {procs}: {e['error']}")
  if any(e["same"] != every[0]["same"] for e in every):
    raise ValueError(
        "the processes were given different settings or PRNG keys; every process "
        "must call the fit with the same config and key.")
  dims = [e["dims"] for e in every]
  if any(d != dims[0] for d in dims):
    raise ValueError(
        "the processes disagree on the modalities: feature widths per process "
        f"{dims}; every process passes the same M views with the same widths.")
  rows = _Rows(np.asarray([e["paired"] for e in every], np.int64),
               np.asarray([e["unpaired"] for e in every], np.int64), tuple(dims[0]))
  if procs > 1 and not rows.paired.all():
    empty = [i for i in range(procs) if rows.paired[i] == 0]
    raise ValueError(
        f"process(es) {empty} of {procs} hold no paired rows (paired rows per process: "
        f"{rows.paired.tolist()}); give every process a block of the paired items "
        "(hashjax.distributed.host_rows).")
  if rows.num_paired == 0:
    raise ValueError("there are no paired items; RREH needs at least one.")
  return paired, unpaired, rows


def _layout(rows: _Rows, devices: int) -> tuple[int, int, np.ndarray, np.ndarray | None]:
  """The item axis: one block of ``r`` rows per process, ``n = P r`` rows in all.

  Block p holds process p's paired rows, then its unpaired rows of the modality,
  then padding; ``r`` is a multiple of the process's share of the ``devices``. With
  one process this is rows ``[0, n_p)`` paired, then the unpaired rows, then padding.

  Returns:
    ``(n, r, mask [M, n], paired_rows [n_p] or None (one process: arange(n_p)))``.
  """
  procs, m = rows.unpaired.shape
  per = devices // procs
  used = int((rows.paired[:, None] + rows.unpaired).max())
  r = max(-(-used // per) * per, per)
  n = procs * r
  mask = np.zeros((m, n), np.float32)
  for p in range(procs):
    for i in range(m):
      mask[i, p * r:p * r + rows.paired[p] + rows.unpaired[p, i]] = 1.0
  paired_rows = None if procs == 1 else np.concatenate(
      [p * r + np.arange(rows.paired[p]) for p in range(procs)]).astype(np.int32)
  return n, r, mask, paired_rows


def _standardise(x: Any, shift: np.ndarray, scale: float) -> np.ndarray:
  """float32 ``(x - shift) / scale``, computed in float64 (no overflow/underflow)."""
  return ((np.asarray(x, np.float64) - shift) / scale).astype(np.float32)


def _standardisation(p: np.ndarray, name: str, chunk: int, num_paired: int
                     ) -> tuple[np.ndarray, float]:
  """Shift (column mean) and scale (RMS centred row norm) of one modality's paired rows.

  ``p`` is this process's ``[n_p_local, d]`` block of the ``num_paired`` paired rows;
  the float64 sums of every process are summed in process order
  (:func:`hashjax.distributed.allgather_exact`, ``d + 1`` numbers per process).

  Raises:
    ValueError: every paired row is the same (all-zero or constant view): the
      anchors, drawn from the paired rows, would all coincide.
  """
  n, d = p.shape
  total = np.zeros(d)
  for start in range(0, n, chunk):
    total += np.asarray(p[start:start + chunk], np.float64).sum(axis=0)
  shift = distributed.allgather_exact(total).sum(axis=0) / num_paired
  ss = 0.0
  for start in range(0, n, chunk):
    ss += float(np.sum((np.asarray(p[start:start + chunk], np.float64) - shift) ** 2))
  ss = float(distributed.allgather_exact(np.float64(ss)).sum())
  scale = math.sqrt(ss / num_paired)
  if not math.isfinite(scale) or scale == 0.0 or scale < 1e-300:
    raise checks.constant_view_error(name)
  return shift, scale


def _rows(p: np.ndarray, u: np.ndarray, start: int, stop: int, shift: np.ndarray,
          scale: float) -> np.ndarray:
  """Standardised float32 rows ``[start, stop)`` of a modality's ``[paired; unpaired]``
  (rows past the end are left out)."""
  n_p = p.shape[0]
  parts = [p[start:min(stop, n_p)], u[max(start - n_p, 0):max(stop - n_p, 0)]]
  out = [_standardise(x, shift, scale) for x in parts if len(x)]
  return np.concatenate(out) if out else np.zeros((0, p.shape[1]), np.float32)


def _chunk_rows(chunk_rows: int | None, d: int, total: int, multiple: int) -> int:
  c = min(chunk_rows or max(1, CHUNK_ELEMENTS // d), max(total, 1))
  return -(-c // multiple) * multiple


_distances = jax.jit(steps.squared_distances)


def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A host array that is the same on every process, laid out as ``sharding``."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _sharded_rows(p: np.ndarray, u: np.ndarray, fn, *, width: int, n: int, r: int,
                  mesh: jax.sharding.Mesh, chunk_rows: int | None, shift: np.ndarray,
                  scale: float) -> jax.Array:
  """``[n, width]`` rows ``fn(standardised raw rows)`` of one modality, item axis sharded.

  Every device of this process computes its own rows of the process's block (see
  :func:`_layout`) from this process's raw rows ``[p; u]``, streamed in chunks of
  ``chunk_rows`` (default ``CHUNK_ELEMENTS // d``); rows past them are computed from
  zeros (padding, masked). No raw row leaves its process.

  Args:
    p, u: this process's paired ``[n_p_local, d]`` and unpaired ``[n_u_local, d]``
      rows of the modality.
    fn: ``fn(x [c, d] on one device) -> [c, width]`` (row by row).
  """
  sharding = NamedSharding(mesh, P("data", None))
  base = jax.process_index() * r
  total = p.shape[0] + u.shape[0]
  shards = []
  for device, idx in sharding.addressable_devices_indices_map((n, width)).items():
    lo, hi = idx[0].start or 0, n if idx[0].stop is None else idx[0].stop
    lo, hi = lo - base, hi - base                     # rows of this process's block
    chunk = _chunk_rows(chunk_rows, p.shape[1], hi - lo, 1)
    parts = []
    for start in range(lo, hi, chunk):
      block = _rows(p, u, min(start, total), min(start + chunk, total), shift, scale)
      block = np.pad(block, ((0, chunk - block.shape[0]), (0, 0)))
      parts.append(fn(jax.device_put(block, device))[:min(chunk, hi - start)])
    shards.append(parts[0] if len(parts) == 1 else jnp.concatenate(parts))
  return jax.make_array_from_single_device_arrays((n, width), sharding, shards)


@partial(jax.jit, static_argnames=("sharding",))
def _kernel_rows(dist, mask, delta2, *, sharding):
  """The kernel step of one modality from its sharded ``[n, k]`` distances."""
  return steps.kernel_from_distances(
      jax.lax.with_sharding_constraint(dist, sharding), mask, delta2)


def _kernel_step_streamed(paired, unpaired, anchors, delta2, mask, *, n, r, chunk_rows,
                          mesh, shifts, scales):
  """Kernel features of every modality from this process's raw rows, streamed.

  Per modality only the ``[n, k]`` distances are materialised (each device computes
  its own rows, :func:`_sharded_rows`), never a padded ``[M, n, d_max]`` stack of
  raw features. The kernel width and the feature mean are reductions over the
  sharded item axis (over every process).

  Returns:
    ``(phi [M, n, k] centred, padded rows 0; mean [M, k]; delta2 [M])``.
  """
  row_sh = NamedSharding(mesh, P("data", None))
  phis, means, widths = [], [], []
  for i, (p, u) in enumerate(zip(paired, unpaired)):
    d = p.shape[1]
    a = {dev: jax.device_put(anchors[i, :, :d], dev)
         for dev in row_sh.addressable_devices}
    dist = _sharded_rows(
        p, u, lambda x, a=a: _distances(x, a[next(iter(x.devices()))]),
        width=anchors.shape[1], n=n, r=r, mesh=mesh, chunk_rows=chunk_rows,
        shift=shifts[i], scale=scales[i])
    # Rows past the modality's items are padding: masked out of delta2 and phi.
    phi, mean, width = _kernel_rows(
        dist, _put(mask[i], NamedSharding(mesh, P("data"))),
        None if delta2 is None else delta2[i], sharding=row_sh)
    del dist
    phis.append(phi)
    means.append(mean)
    widths.append(width)
  return _stack(mesh)(phis, means, widths)


@functools.cache
def _replicator(mesh: jax.sharding.Mesh):
  """Jitted identity whose outputs are replicated over ``mesh`` (small arrays)."""
  return jax.jit(lambda t: t, out_shardings=NamedSharding(mesh, P()))


@functools.cache
def _stack(mesh: jax.sharding.Mesh):
  """Stacks per-modality ``phi`` (item axis sharded), means and widths (replicated)."""
  rep = NamedSharding(mesh, P())
  return jax.jit(lambda ps, ms, ws: (jnp.stack(ps), jnp.stack(ms), jnp.stack(ws)),
                 out_shardings=(NamedSharding(mesh, P(None, "data", None)), rep, rep))


@jax.jit
def _linear_features(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jax.vmap(steps.center_features)(x, mask)


def _anchor_rows(paired: list[np.ndarray], rows: _Rows, index: np.ndarray,
                 shifts: list[np.ndarray], scales: np.ndarray,
                 mesh: jax.sharding.Mesh) -> np.ndarray:
  """``[M, k, d_max]`` standardised anchor rows, on every process.

  Anchor j is paired item ``index[j]``; the process holding it contributes the row,
  every other process zeros, and the contributions are summed over the mesh (an
  all-reduce of ``k x d_max`` per device: exact, each sum has one non-zero term).
  Only anchors travel between processes, never other rows.
  """
  m, k, d_max = len(paired), len(index), max(rows.dims)
  mine = np.zeros((m, k, d_max), np.float32)
  lo = rows.paired_offset(jax.process_index())
  own = (index >= lo) & (index < lo + paired[0].shape[0])
  for i, p in enumerate(paired):
    if own.any():
      mine[i, own, :p.shape[1]] = _standardise(p[index[own] - lo], shifts[i], scales[i])
  return _sum_over_processes(mine, mesh)


def _sum_over_processes(mine: np.ndarray, mesh: jax.sharding.Mesh) -> np.ndarray:
  """The sum over processes of every process's float32 ``mine`` (same shape), on
  every process. Rows that one process fills and the others leave 0 arrive exactly."""
  if jax.process_count() == 1:
    return mine
  local = np.zeros((mesh.shape["data"] // jax.process_count(),) + mine.shape, np.float32)
  local[0] = mine
  spread = jax.make_array_from_process_local_data(
      NamedSharding(mesh, P("data")), local, (mesh.shape["data"],) + mine.shape)
  return np.asarray(_replicator(mesh)(jnp.sum(spread, axis=0)))


def _build_problem(paired: list[np.ndarray], unpaired: list[np.ndarray], rows: _Rows,
                   cfg: dict[str, Any], rng: jax.Array, mesh: jax.sharding.Mesh,
                   chunk_rows: int | None
                   ) -> tuple[solver.RREHProblem, RREHFeatures]:
  """:func:`make_problem` on checked process-local views (see there)."""
  m, n_p = len(rows.dims), rows.num_paired
  if cfg["orthogonal_v"] and cfg["bits"] >= n_p:
    raise ValueError(
        f"orthogonal_v needs bits < n_p (balanced, decorrelated V), got "
        f"bits={cfg['bits']}, n_p={n_p}.")
  if isinstance(cfg["delta2"], tuple) and len(cfg["delta2"]) != m:
    raise ValueError(f"delta2 must have one value per modality ({m}), got "
                     f"{len(cfg['delta2'])}.")
  stats = [_standardisation(p, f"paired_views[{i}]",
                            chunk_rows or max(1, CHUNK_ELEMENTS // p.shape[1]), n_p)
           for i, p in enumerate(paired)]
  shifts = [st[0] for st in stats]
  scales = np.asarray([st[1] for st in stats])
  rep = NamedSharding(mesh, P())

  n, r, mask, paired_rows = _layout(rows, mesh.shape["data"])
  mask_dev = _put(mask, NamedSharding(mesh, P(None, "data")))

  anchor_index = np.asarray(steps.sample_anchors(rng, n_p, cfg["num_anchors"]))
  anchors_host = _anchor_rows(paired, rows, anchor_index, shifts, scales, mesh)
  d_max = max(rows.dims)
  shift_host = np.zeros((m, d_max), np.float32)
  for i, p in enumerate(paired):
    shift_host[i, :p.shape[1]] = shifts[i]
  # A fixed delta2 is given in raw units: in standardised units it is / scale^2.
  fixed = None if cfg["delta2"] is None else _put(np.asarray(
      np.broadcast_to(np.asarray(cfg["delta2"], np.float64), (m,)) / scales ** 2,
      np.float32), rep)
  if cfg["kernel"]:
    phi, mean, delta2 = _kernel_step_streamed(
        paired, unpaired, anchors_host, fixed, mask, n=n, r=r, chunk_rows=chunk_rows,
        mesh=mesh, shifts=shifts, scales=scales)
  else:
    raw = [_sharded_rows(p, u, lambda x, d=p.shape[1]: jnp.pad(x, ((0, 0), (0, d_max - d))),
                         width=d_max, n=n, r=r, mesh=mesh, chunk_rows=chunk_rows,
                         shift=shifts[i], scale=scales[i])
           for i, (p, u) in enumerate(zip(paired, unpaired))]
    x_dev = jax.jit(jnp.stack, out_shardings=NamedSharding(mesh, P(None, "data", None)))(raw)
    phi, mean = _linear_features(x_dev, mask_dev)
    mean = _replicator(mesh)(mean)
    delta2 = fixed if fixed is not None else _put(np.ones((m,), np.float32), rep)
  if cfg["reconstruct_against"] == "anchors":
    ref_idx = anchor_index
  else:
    ref_idx = np.arange(n_p, dtype=np.int32)
  width = (np.full(m, phi.shape[-1]) if cfg["kernel"] else np.asarray(rows.dims))
  problem = solver.RREHProblem(
      phi=phi, mask=mask_dev, ref_idx=_put(ref_idx.astype(np.int32), rep),
      num_paired=n_p, width=_put(width.astype(np.float32), rep), mesh=mesh,
      paired_rows=None if paired_rows is None else _put(paired_rows, rep))
  features = RREHFeatures(
      shift=_put(shift_host, rep), scale=_put(scales.astype(np.float32), rep),
      anchors=_put(anchors_host, rep), delta2=delta2, mean=mean,
      dims=_put(np.asarray(rows.dims, np.int32), rep),
      anchor_index=_put(anchor_index.astype(np.int32), rep),
      kernel=_put(np.asarray(cfg["kernel"]), rep))
  return problem, features


def _resolve_mesh(mesh: jax.sharding.Mesh | None) -> jax.sharding.Mesh:
  return _auto_mesh(default_mesh() if mesh is None else mesh)


def make_problem(paired_views: Sequence[Any], unpaired_views: Sequence[Any],
                 config: Any, rng: jax.Array, *, mesh: jax.sharding.Mesh | None = None,
                 chunk_rows: int | None = None, process_local: bool = False
                 ) -> tuple[solver.RREHProblem, RREHFeatures]:
  """The solver's problem from semi-paired views: standardise, anchors, kernel step.

  For researchers who call the solver themselves::

    problem, features = rreh.make_problem(paired, unpaired, config, rng_anchor)
    state = rreh.run(problem, rreh.make_hyper(theta=1.0, beta=0.1, lam=1e-3),
                     rng_init, bits=64, iterations=20)
    model = rreh.RREHModel(**features._asdict(), W=state.W,
                           objective=state.objective)

  Args:
    paired_views, unpaired_views, mesh, chunk_rows, process_local: as :func:`fit`.
    config: as :func:`fit`; ``num_anchors``, ``kernel``, ``delta2``,
      ``reconstruct_against`` shape the problem (``bits`` and ``orthogonal_v`` are
      only checked).
    rng: key of the anchor sample (:func:`fit` passes the first half of its key).

  Returns:
    ``(problem, features)``: :class:`hashjax.rreh.RREHProblem` (item axis sharded
    over the mesh's ``"data"`` axis, one block per process) and
    :class:`RREHFeatures` (replicated).

  Raises:
    ValueError: as :func:`fit`.
  """
  cfg = resolve_config(config)
  chunk_rows, mesh, paired, unpaired, rows = _checked_inputs(
      paired_views, unpaired_views, cfg, rng, mesh=mesh, chunk_rows=chunk_rows,
      process_local=process_local)
  return _build_problem(paired, unpaired, rows, cfg, rng, mesh, chunk_rows)


def select(paired_views: Sequence[Any], unpaired_views: Sequence[Any], config: Any,
           rng: jax.Array, *, grid: Mapping[str, Sequence[Any]] | None = None,
           folds: int = 3, holdout: float = 0.2, criterion: str = "neighbourhood",
           mesh: jax.sharding.Mesh | None = None, process_local: bool = False
           ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """Chooses hyper-parameters without labels, from held-out paired items.

  See :mod:`hashjax.rreh.criterion` for the criteria.

  Args:
    paired_views, unpaired_views, mesh, process_local: as :func:`fit`.
    config: as :func:`fit`; keys in the grid are searched, the others
      are fixed (theta / lam / init_v left None and not searched:
      :data:`hashjax.rreh.criterion.FIXED`).
    rng: PRNG key (fold split, anchors and initial V of every fold).
    grid: ``{key: values}`` over any of theta, beta, lam, init_v (default: the
      :data:`hashjax.rreh.criterion.GRID` entries of the keys in
      :data:`hashjax.rreh.criterion.SELECT_KEYS` that ``config`` leaves None).
    folds: disjoint held-out shares (capped so that they fit in the paired items).
    holdout: share of the paired items held out per fold (at least 2 items).
    criterion: ``"neighbourhood"`` (default: held-out items retrieve their
      counterparts' feature-space neighbours among every item of the other
      modality) or ``"pair"`` (held-out items retrieve their own counterparts; the
      former default); see :mod:`hashjax.rreh.criterion`.

  Returns:
    ``(chosen, rows)``: the grid point picked by
    :func:`hashjax.rreh.criterion.choose` for the criterion and one row per grid
    point with its ``score`` (mean over folds) and ``fold_scores``. With every
    item paired only the smallest theta is fitted (theta has no effect on the fit
    then); the other thetas' rows have score -inf and a ``skipped`` reason.

  Raises:
    ValueError: a grid key that cannot be searched, or too few paired items.
  """
  cfg = resolve_config(config)
  if criterion not in crit.CRITERIA:
    raise ValueError(f"criterion must be one of {crit.CRITERIA}, got {criterion!r}.")
  if grid is None:
    grid = {k: crit.GRID[k] for k in crit.free_keys(cfg)}
  bad = sorted(set(grid) - {"theta", "beta", "lam", "init_v", "ridge_cap"})
  if bad:
    raise ValueError(f"grid keys must be among theta, beta, lam, init_v, ridge_cap; "
                     f"got {bad}.")
  for k in crit.SELECT_KEYS:
    if cfg[k] is None and k not in grid:
      cfg[k] = crit.FIXED[k]
  mesh = _resolve_mesh(mesh)
  paired, unpaired, rows = _local_views(
      paired_views, unpaired_views, process_local=process_local, mesh=mesh,
      same=_fingerprint(dict(cfg, grid=repr(grid)), rng))
  m = len(rows.dims)
  checks.check_view_weights("view_weights", cfg["view_weights"], m)
  auto = cfg["view_weights"] == checks.VIEW_WEIGHTS_AUTO
  # Given weights apply to every grid point; "auto" picks the grid point unweighted,
  # then the weights (:func:`_select_weights`).
  given = None if auto else cfg["view_weights"]
  n_p = rows.num_paired
  h = max(2, int(round(holdout * n_p)))
  folds = max(1, min(int(folds), n_p // h))
  if n_p - h < 2:
    raise ValueError(f"label-free selection needs at least {h + 2} paired items, got "
                     f"{n_p}; give theta, lam and init_v or set select=False.")
  points = crit.grid_points(grid) if grid else [{}]
  # With every item paired theta has no effect on the fit (it only ridges the
  # reconstruction of unpaired rows) and crit.choose scores the smallest theta
  # only: the other thetas are not fitted (their rows keep score -inf).
  all_paired = not np.any(rows.unpaired)
  fitted = crit.smallest_theta(points) if all_paired else list(range(len(points)))
  rng_perm, rng_fold = jax.random.split(rng)
  perm = np.asarray(jax.random.permutation(rng_perm, n_p))
  scores = np.full((len(points), folds), -np.inf)
  procs, me = jax.process_count(), jax.process_index()
  rep = NamedSharding(mesh, P())
  kept = []     # per fold, for the weight search: (problem, held_rows, key, codes)
  for f in range(folds):
    held = np.sort(perm[f * h:(f + 1) * h])
    # Every process keeps its own paired items that are not held out and moves its
    # held-out items to the end of its unpaired rows (in index order), so the held-out
    # items are the same rows of the same problem as on one process.
    lo = [rows.paired_offset(p) for p in range(procs)]
    own_held = [held[(held >= lo[p]) & (held < lo[p] + rows.paired[p])] - lo[p]
                for p in range(procs)]
    keep = np.setdiff1d(np.arange(rows.paired[me]), own_held[me])
    tp = [p[keep] for p in paired]
    tu = [np.concatenate([np.asarray(u), p[own_held[me]]])
          for p, u in zip(paired, unpaired)]
    fold_rows = _Rows(rows.paired - [len(x) for x in own_held],
                      rows.unpaired + np.asarray([len(x) for x in own_held])[:, None],
                      rows.dims)
    _, r, _, _ = _layout(fold_rows, mesh.shape["data"])
    # Row of held-out item j in modality i: its process's block, after that
    # process's kept paired rows and its own unpaired rows.
    held_rows = [np.concatenate([
        p * r + fold_rows.paired[p] + rows.unpaired[p, i] + np.arange(len(own_held[p]))
        for p in range(procs)]).astype(np.int32) for i in range(len(rows.dims))]
    rng_anchor, rng_init = jax.random.split(jax.random.fold_in(rng_fold, f))
    problem, feats = _build_problem(tp, tu, fold_rows,
                                    dict(cfg, init_v=cfg["init_v"] or "pca"),
                                    rng_anchor, mesh, None)
    near = None if criterion == "pair" else _neighbour_fold(
        tp, tu, fold_rows, held_rows, r, feats,
        jax.random.fold_in(jax.random.fold_in(rng_fold, f), 1), mesh)
    by_init = {}
    for j in fitted:
      by_init.setdefault(points[j].get("init_v", cfg["init_v"]), []).append(j)
    codes = {}
    for init_v, idx in by_init.items():
      hv = {k: jnp.asarray([points[j].get(k, cfg[k]) for j in idx], jnp.float32)
            for k in ("theta", "beta", "lam")}
      weights = None if given is None else jnp.tile(
          jnp.asarray(given, jnp.float32), (len(idx), 1))
      cap = _cap_array([points[j].get("ridge_cap", cfg["ridge_cap"]) for j in idx])
      state = solver.run_grid(
          problem, solver.RREHHyper(hv["theta"], hv["beta"], hv["lam"], weights, cap),
          rng_init, bits=cfg["bits"], iterations=cfg["iterations"],
          orthogonal_v=cfg["orthogonal_v"], init_v=init_v)
      w_ok, b = _held_codes(state, held_rows, rep)   # [G], M x [G, h, bits]
      fold_scores = _fold_scores(state, b, near, rep)
      for g, j in enumerate(idx):
        if w_ok[g]:
          scores[j, f] = fold_scores[g]
          codes[j] = [x[g] for x in b]
    if auto:
      kept.append((problem, held_rows, rng_init, codes, near))
  mean = scores.mean(axis=1)
  table = [dict(pt, score=float(mean[j]), fold_scores=scores[j].tolist())
           for j, pt in enumerate(points)]
  for j in sorted(set(range(len(points))) - set(fitted)):
    table[j]["skipped"] = "every item paired: theta has no effect on the fit"
  # The folds' theta must not pick init_v when every item is paired.
  best = crit.choose(table, all_paired=all_paired)
  chosen = dict(points[best])
  if given is not None:
    chosen["view_weights"] = given
  if auto:
    point = {k: chosen.get(k, cfg[k])
             for k in ("theta", "beta", "lam", "init_v", "ridge_cap")}
    chosen["view_weights"], rows_w = _select_weights(
        kept, best, scores[best], point, cfg, m, rep)
    table += rows_w
  return chosen, table


def _select_weights(kept: list, best: int, uniform_scores: np.ndarray,
                    point: Mapping[str, Any], cfg: Mapping[str, Any], m: int,
                    rep: NamedSharding
                    ) -> tuple[tuple[float, ...] | None, list[dict[str, Any]]]:
  """``view_weights="auto"``: picks view weights by the selection criterion.

  With the chosen grid point fixed, scores the candidates of
  :func:`hashjax.rreh.criterion.weight_candidates` (each view down-weighted; weights
  proportional to each view's held-out pair MRR under the uniform fit, measured on
  the same folds) on the folds of :func:`select` (their problems and held-out rows
  are reused), all candidates of a fold in one :func:`hashjax.rreh.run_grid`; the
  uniform fit's scores are the grid point's own. The best mean score wins (ties:
  uniform).

  Returns:
    ``(weights, rows)``: None (uniform) or the winning normalised weights, and one
    table row per candidate (``view_weights``, ``candidate``, ``score``,
    ``fold_scores``).
  """
  quality = np.mean([crit.view_quality(c[best]) for _, _, _, c, _ in kept], axis=0)
  cands = crit.weight_candidates(m, quality)
  scores = np.full((len(cands), len(kept)), -np.inf)
  weights = jnp.asarray([w for _, w in cands], jnp.float32)               # [G, M]
  g = len(cands)
  cap = _cap_array([point["ridge_cap"]] * g)
  hyper = solver.RREHHyper(*(jnp.full((g,), point[k], jnp.float32)
                             for k in ("theta", "beta", "lam")), weights, cap)
  for f, (problem, held_rows, rng_init, _, near) in enumerate(kept):
    state = solver.run_grid(problem, hyper, rng_init, bits=cfg["bits"],
                            iterations=cfg["iterations"],
                            orthogonal_v=cfg["orthogonal_v"], init_v=point["init_v"])
    w_ok, b = _held_codes(state, held_rows, rep)
    fold_scores = _fold_scores(state, b, near, rep)
    for j in range(g):
      if w_ok[j]:
        scores[j, f] = fold_scores[j]
  rows = [{"candidate": "uniform", "view_weights": None,
           "score": float(np.mean(uniform_scores)),
           "fold_scores": np.asarray(uniform_scores).tolist()}]
  rows += [{"candidate": name, "view_weights": w, "score": float(scores[j].mean()),
            "fold_scores": scores[j].tolist()} for j, (name, w) in enumerate(cands)]
  win = int(np.argmax([r["score"] for r in rows]))   # first on ties: uniform
  return rows[win]["view_weights"], rows


def _held_codes(state: solver.RREHState, held_rows: list[np.ndarray],
                rep: NamedSharding) -> tuple[np.ndarray, list[np.ndarray]]:
  """Whether each grid point's W is finite ``[G]`` and the held-out rows of B.

  Only the ``[G, h, bits]`` held-out codes of every modality leave the devices
  (replicated on every process), never the whole sharded B.
  """
  ok, b = jax.jit(lambda w, bb: (jnp.all(jnp.isfinite(w), axis=(1, 2, 3)),
                                 [bb[:, i, x] for i, x in enumerate(held_rows)]),
                  out_shardings=rep)(state.W, state.B)
  return np.asarray(ok), [np.asarray(x) for x in b]


class _NeighbourFold(NamedTuple):
  """What the neighbourhood criterion needs of one fold (identical on every process).

  Attributes:
    rows: M int32 arrays ``[s_i]``, the sampled rows of modality i on the item axis
      (in random order).
    queries: M int arrays ``[h]``: position in ``rows[i]`` of held-out item q's row.
    relevant: M bool arrays ``[h, s_i]``: the ``NEIGHBOUR_SHARE`` of modality i's
      sampled rows nearest to held-out item q's row there.
  """

  rows: list[np.ndarray]
  queries: list[np.ndarray]
  relevant: list[np.ndarray]


def _neighbour_fold(tp: list[np.ndarray], tu: list[np.ndarray], fold_rows: _Rows,
                    held_rows: list[np.ndarray], r: int, feats: RREHFeatures,
                    key: jax.Array, mesh: jax.sharding.Mesh) -> _NeighbourFold:
  """Samples each modality's rows and finds the held-out items' neighbours there.

  Every real row of modality i (kept paired, unpaired and held-out) when there are
  at most :data:`~hashjax.rreh.criterion.MAX_SAMPLE_ROWS`, else the held-out items'
  rows and a uniform sample of the others; queries are the first
  :data:`~hashjax.rreh.criterion.MAX_QUERIES` held-out items. The sampled rows'
  features (standardised as the fold's problem does, then per column) are summed
  over processes like the anchors: they are the only raw rows that travel.
  """
  procs, me = jax.process_count(), jax.process_index()
  m = len(fold_rows.dims)
  h = min(len(held_rows[0]), crit.MAX_QUERIES)
  shift, scale = np.asarray(feats.shift), np.asarray(feats.scale)
  out = _NeighbourFold([], [], [])
  for i, k in enumerate(jax.random.split(key, m)):
    valid = np.concatenate([p * r + np.arange(fold_rows.paired[p] + fold_rows.unpaired[p, i])
                            for p in range(procs)])
    query_rows = np.asarray(held_rows[i][:h])
    rows = valid
    if valid.size > crit.MAX_SAMPLE_ROWS:
      others = np.setdiff1d(valid, query_rows)
      pick = np.asarray(jax.random.choice(jax.random.fold_in(k, 0), others.size,
                                          (crit.MAX_SAMPLE_ROWS - h,), replace=False))
      rows = np.concatenate([query_rows, others[np.sort(pick)]])
    rows = rows[np.asarray(jax.random.permutation(jax.random.fold_in(k, 1), rows.size))]
    where = np.argsort(rows)
    queries = where[np.searchsorted(rows[where], query_rows)]
    # This process's sampled rows: kept paired rows, then unpaired (held-out last).
    d = fold_rows.dims[i]
    mine = np.zeros((rows.size, d), np.float32)
    local = rows - me * r
    own = np.flatnonzero((local >= 0) & (local < r))
    n_tp = int(fold_rows.paired[me])
    for j in own:
      raw = tp[i][local[j]] if local[j] < n_tp else tu[i][local[j] - n_tp]
      mine[j] = _standardise(raw, shift[i, :d], float(scale[i]))
    x = crit.standardise_columns(_sum_over_processes(mine, mesh))
    out.rows.append(rows.astype(np.int32))
    out.queries.append(queries)
    out.relevant.append(crit.neighbour_sets(x, queries))
  return out


def _fold_scores(state: solver.RREHState, held: list[np.ndarray],
                 near: _NeighbourFold | None, rep: NamedSharding) -> np.ndarray:
  """``[G]`` criterion of every grid point of one fold: pair MRR of the held-out
  codes ``held`` (M x ``[G, h, bits]``) when ``near`` is None, else the
  neighbourhood score on the sampled rows (only those rows of B leave the devices)."""
  if near is None:
    return np.asarray([crit.pair_score([x[g] for x in held])
                       for g in range(held[0].shape[0])])
  codes = jax.jit(lambda bb: [bb[:, i, x] for i, x in enumerate(near.rows)],
                  out_shardings=rep)(state.B)
  codes = [np.asarray(c) for c in codes]                    # M x [G, s_i, bits]
  return np.asarray([crit.neighbourhood_score([c[g] for c in codes], near.queries,
                                              near.relevant)
                     for g in range(codes[0].shape[0])])


def check_finite_state(state: solver.RREHState) -> None:
  """Raises FloatingPointError if W or the objective of a solve is not finite."""
  for name, value in (("W", state.W), ("objective", state.objective)):
    if not bool(jnp.all(jnp.isfinite(value))):
      raise FloatingPointError(
          f"RREH produced a non-finite {name}; no model is returned. Check the views "
          "for degenerate scales and the hyper-parameters (theta, lam > 0).")


def fit(paired_views: Sequence[Any], unpaired_views: Sequence[Any], config: Any,
        rng: jax.Array, *, mesh: jax.sharding.Mesh | None = None,
        chunk_rows: int | None = None, process_local: bool = False,
        on_select: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None
        ) -> RREHModel:
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
      lam and init_v left None are chosen without labels by :func:`select` (the
      neighbourhood criterion over :data:`hashjax.rreh.criterion.GRID`), or, with
      ``select=False``, taken from :data:`hashjax.rreh.criterion.FIXED`. Given values
      are never searched.
    rng: PRNG key; split into the anchor key and the key of the initial V.
    mesh: a mesh with a ``"data"`` axis for the item axis (default
      :func:`default_mesh`).
    chunk_rows: raw rows per streamed chunk of the kernel step, per device
      (default ``CHUNK_ELEMENTS // d``; at most the device's rows).
      The views may be ``np.memmap`` arrays of any real dtype: rows are read and
      converted to float32 chunk by chunk.
    process_local: False (default): every process passes every item (with more
      than one process each keeps its :func:`hashjax.distributed.host_rows` block
      of every view). True: every process passes only its own items, a block of
      the paired items (in process order: the paired items of process 0, then of
      process 1, ...) and a block of each modality's unpaired items. The fit is
      the fit of the concatenation of the blocks in process order (the same model
      as one process given that concatenation, up to float rounding; see
      docs/rreh.md#multihost); no raw row leaves its process (the anchors do, and
      in label-free selection the criterion's sample of at most 4096 rows per
      modality and fold).
      Every process must call ``fit`` with the same config and key.
    on_select: called as ``on_select(chosen, table)`` with what :func:`select`
      returned when label-free selection ran (e.g. to record the chosen
      hyper-parameters); not called otherwise.

  Returns:
    :class:`RREHModel` (every leaf replicated over the mesh).

  Raises:
    ValueError: invalid settings; fewer than 2 modalities; paired views with
      different row counts; NaN / inf; a constant (e.g. all-zero) paired view; a
      modality whose unpaired width differs from its paired width;
      ``orthogonal_v`` with ``bits >= n_p``; with several processes also a
      process without paired rows, processes whose widths, settings or keys
      differ, a mesh whose ``"data"`` axis does not list each process's devices
      contiguously. Raised on every process, before any collective work.
    FloatingPointError: the solve gave a non-finite W or objective.
  """
  cfg = resolve_config(config)
  chunk_rows, mesh, paired, unpaired, rows = _checked_inputs(
      paired_views, unpaired_views, cfg, rng, mesh=mesh, chunk_rows=chunk_rows,
      process_local=process_local)
  free = crit.free_keys(cfg)
  if (free or cfg["view_weights"] == checks.VIEW_WEIGHTS_AUTO) and cfg["select"]:
    chosen, table = select(paired, unpaired, cfg, jax.random.fold_in(rng, 1),
                           mesh=mesh, process_local=True)
    if on_select is not None:
      on_select(dict(chosen), table)
    cfg.update(chosen)
  cfg.update({k: crit.FIXED[k] for k in free if cfg[k] is None})
  rng_anchor, rng_init = jax.random.split(rng)
  problem, features = _build_problem(paired, unpaired, rows, cfg, rng_anchor, mesh,
                                     chunk_rows)
  hyper = solver.make_hyper(theta=cfg["theta"], beta=cfg["beta"], lam=cfg["lam"],
                            weights=cfg["view_weights"], cap=_hyper_cap(cfg["ridge_cap"]))
  state = solver.run(problem, hyper, rng_init, bits=cfg["bits"],
                     iterations=cfg["iterations"], orthogonal_v=cfg["orthogonal_v"],
                     init_v=cfg["init_v"])
  w, objective = _replicator(mesh)((state.W, state.objective))
  check_finite_state(state._replace(W=w, objective=objective))
  return RREHModel(**features._asdict(), W=w, objective=objective)


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
  # The model's leaves may be replicated over a multi-process mesh: read them back
  # (small) so that this process encodes its own rows on its own devices.
  checks.check_matrix("x", x, cols=d)
  if chunk_rows is not None:
    chunk_rows = checks.check_positive_int("chunk_rows", chunk_rows)
  checks.check_finite("x", x)
  x = x if isinstance(x, jax.Array) else np.asarray(x)
  kernel = bool(np.asarray(model.kernel))
  # Only the modality's own d columns: the padded columns of anchors are 0.
  anchors = jnp.asarray(np.asarray(model.anchors)[mi, :, :d])
  mean, w = jnp.asarray(np.asarray(model.mean)[mi]), jnp.asarray(np.asarray(model.W)[mi])
  if not kernel:
    mean, w = mean[:d], w[:d]
  delta2 = jnp.asarray(np.asarray(model.delta2)[mi])
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
