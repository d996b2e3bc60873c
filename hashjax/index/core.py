"""HammingIndex: the pytree, building (create/add/shard) and search entry points."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hashjax import checks
from hashjax.codes import num_words, pack_host
from hashjax.topk import (
    DATA_AXIS,
    DEFAULT_GROUP_SIZE,
    MAX_REFINE_CANDIDATES,
    METHODS,
    count_kernel,
    default_group_size,
    default_method,
    topk_kernel,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_GROUP_SIZE",
    "DEFAULT_QUERY_CHUNK_SIZE",
    "MAX_REFINE_CANDIDATES",
    "HammingIndex",
    "RadiusResult",
    "add",
    "create",
    "default_group_size",
    "default_method",
    "iter_search",
    "num_query_batches",
    "pack_host",
    "radius_search",
    "search",
    "shard",
]

DEFAULT_CHUNK_SIZE = 32768
DEFAULT_QUERY_CHUNK_SIZE = 1024


def _id_dtype() -> np.dtype:
  return np.dtype(np.int64 if jax.config.jax_enable_x64 else np.int32)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["packed", "ids"],
    meta_fields=["bits", "count"])
@dataclasses.dataclass(frozen=True)
class HammingIndex:
  """Packed database codes (a pytree; ``bits`` and ``count`` are static).

  Attributes:
    packed: ``[capacity, w]`` uint32, ``w = ceil(bits / 32)``. Rows ``count:`` are
      padding (only a sharded index has any) and never returned.
    ids: ``[capacity]`` int32 (int64 under x64) user ids; padding rows hold -1.
    bits: code length b.
    count: number of items.
  """

  packed: jax.Array
  ids: jax.Array
  bits: int
  count: int

  @property
  def num_words(self) -> int:
    return num_words(self.bits)

  @property
  def capacity(self) -> int:
    return int(self.packed.shape[0])

  @property
  def mesh(self) -> Mesh | None:
    """The mesh whose ``"data"`` axis holds the rows, or None when unsharded."""
    return _data_mesh(self)

  def __len__(self) -> int:
    return self.count

  def add(self, codes: Any, ids: Any = None) -> HammingIndex:
    return add(self, codes, ids)

  def search(self, queries: Any, k: int, **kwargs) -> tuple[jax.Array, jax.Array]:
    return search(self, queries, k, **kwargs)

  def radius_search(self, queries: Any, radius: int, **kwargs) -> RadiusResult:
    return radius_search(self, queries, radius, **kwargs)

  def shard(self, mesh: Mesh | None = None) -> HammingIndex:
    return shard(self, mesh)


class RadiusResult(NamedTuple):
  """Padded result of :func:`radius_search`.

  Attributes:
    distances: ``[nq, m]`` int32, row i holds ``counts[i]`` distances sorted
      ascending (ties by insertion order), then -1 padding. ``m = max(counts)``.
    ids: ``[nq, m]`` ids of those items, -1 padding (use ``counts``, not -1, to
      tell padding apart: -1 may be a user id).
    counts: ``[nq]`` int32, number of items within the radius of each query.
  """

  distances: np.ndarray
  ids: np.ndarray
  counts: np.ndarray

  def to_lists(self) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-query ``(distances, ids)`` NumPy arrays without padding."""
    return [(self.distances[i, :c], self.ids[i, :c])
            for i, c in enumerate(self.counts.tolist())]


# ----------------------------------------------------------------------------------
# Packing and validation (host side).
# ----------------------------------------------------------------------------------
def _padding_mask(bits: int) -> int:
  """Bits of the last word that must be 0 (above ``bits``)."""
  used = bits - 32 * (num_words(bits) - 1)
  return 0 if used == 32 else (0xFFFFFFFF ^ ((1 << used) - 1))


def _to_packed(name: str, x: Any, bits: int) -> np.ndarray:
  """Validates {-1,+1} codes ``[n, bits]`` or packed uint32 ``[n, w]``; returns packed."""
  shape = getattr(x, "shape", None)
  if shape is None:
    raise ValueError(f"{name} must be an array, got {type(x).__name__}.")
  w = num_words(bits)
  if np.dtype(x.dtype) == np.uint32:
    checks.check_matrix(name, x)
    if shape[1] != w:
      raise ValueError(
          f"packed {name} must have {w} uint32 words per row for a {bits}-bit index, "
          f"got shape {tuple(shape)}.")
    arr = np.asarray(x)
    mask = _padding_mask(bits)
    if mask and np.any(arr[:, -1] & np.uint32(mask)):
      raise ValueError(
          f"packed {name} has bits set above bit {bits} in the last word; they must "
          "be 0 (use hashjax.codes.pack_codes).")
    return arr
  checks.check_matrix(name, x)
  if shape[1] != bits:
    raise ValueError(
        f"{name} have {shape[1]} bits per row but the index has {bits} bits "
        f"(shape {tuple(shape)}).")
  checks.check_codes(name, x, bits=bits)
  return pack_host(x)


def _check_ids(ids: Any, n: int, start: int) -> np.ndarray:
  dtype = _id_dtype()
  if ids is None:
    if start + n > np.iinfo(dtype).max:
      raise ValueError(f"index too large for {dtype} ids; enable jax_enable_x64.")
    return np.arange(start, start + n, dtype=dtype)
  arr = np.asarray(ids)
  if arr.ndim != 1 or arr.shape[0] != n:
    raise ValueError(f"ids must have shape ({n},), got {arr.shape}.")
  if arr.dtype.kind not in "iu":
    raise ValueError(f"ids must be integers, got dtype {arr.dtype}.")
  info = np.iinfo(dtype)
  if n and (arr.min() < info.min or arr.max() > info.max):
    raise ValueError(
        f"ids must fit in {dtype} (range [{arr.min()}, {arr.max()}] given); "
        "enable jax_enable_x64 for int64 ids.")
  return arr.astype(dtype)


# ----------------------------------------------------------------------------------
# Building.
# ----------------------------------------------------------------------------------
def create(bits: int) -> HammingIndex:
  """An empty index for ``bits``-bit codes."""
  bits = checks.check_bits(bits)
  return HammingIndex(
      packed=jnp.zeros((0, num_words(bits)), jnp.uint32),
      ids=jnp.zeros((0,), _id_dtype()), bits=bits, count=0)


def add(index: HammingIndex, codes: Any, ids: Any = None) -> HammingIndex:
  """Returns a new index with ``codes`` appended (the input is unchanged).

  Args:
    index: the index.
    codes: ``[n, bits]`` codes in {-1, +1} (any numeric dtype except uint32), or
      ``[n, w]`` uint32 packed codes (padding bits 0).
    ids: optional ``[n]`` integer ids; default: insertion positions
      ``count, ..., count + n - 1``.

  Returns:
    The index with ``count + n`` items, sharded like ``index``.
  """
  new = _to_packed("codes", codes, index.bits)
  new_ids = _check_ids(ids, new.shape[0], index.count)
  mesh = _data_mesh(index)
  if mesh is None:
    packed = jnp.concatenate([index.packed[:index.count], jnp.asarray(new)])
    all_ids = jnp.concatenate([index.ids[:index.count], jnp.asarray(new_ids)])
    return HammingIndex(packed=packed, ids=all_ids, bits=index.bits,
                        count=index.count + new.shape[0])
  packed = np.concatenate([np.asarray(index.packed)[:index.count], new])
  all_ids = np.concatenate([np.asarray(index.ids)[:index.count], new_ids])
  return _place(packed, all_ids, index.bits, mesh)


def _data_mesh(index: HammingIndex) -> Mesh | None:
  sh = getattr(index.packed, "sharding", None)
  if not isinstance(sh, NamedSharding) or not sh.spec:
    return None
  if sh.spec[0] != DATA_AXIS or sh.mesh.shape[DATA_AXIS] == 1:
    return None
  return sh.mesh


def _place(packed: np.ndarray, ids: np.ndarray, bits: int, mesh: Mesh) -> HammingIndex:
  count = packed.shape[0]
  size = mesh.shape[DATA_AXIS]
  capacity = max(size, -(-count // size) * size)
  pad = capacity - count
  packed = np.pad(packed, ((0, pad), (0, 0)))
  ids = np.pad(ids, (0, pad), constant_values=-1)
  return HammingIndex(
      packed=jax.device_put(packed, NamedSharding(mesh, P(DATA_AXIS, None))),
      ids=jax.device_put(ids, NamedSharding(mesh, P(DATA_AXIS))),
      bits=bits, count=count)


def shard(index: HammingIndex, mesh: Mesh | None = None) -> HammingIndex:
  """Lays the database rows over the ``"data"`` axis of ``mesh``.

  Args:
    index: the index (sharded or not).
    mesh: a mesh with a ``"data"`` axis (other axes replicate the rows); default
      ``jax.make_mesh((jax.device_count(),), ("data",))``.

  Returns:
    The same items, rows padded to a multiple of the axis size and placed with
    ``NamedSharding(mesh, P("data", None))`` (ids ``P("data")``).
  """
  if mesh is None:
    mesh = jax.make_mesh((jax.device_count(),), (DATA_AXIS,))
  if DATA_AXIS not in mesh.shape:
    raise ValueError(
        f"mesh must have a {DATA_AXIS!r} axis, got axes {tuple(mesh.axis_names)}.")
  packed = np.asarray(index.packed)[:index.count]
  ids = np.asarray(index.ids)[:index.count]
  return _place(packed, ids, index.bits, mesh)



# ----------------------------------------------------------------------------------
# Search (host entry points).
# ----------------------------------------------------------------------------------
def _query_batches(queries: np.ndarray, query_chunk_size: int
                   ) -> Iterator[tuple[int, int, np.ndarray]]:
  """Yields ``(start, n_valid, batch)``; batches padded to one power-of-two size."""
  nq = queries.shape[0]
  size = min(query_chunk_size, 1 << max(0, (nq - 1).bit_length()))
  for start in range(0, nq, size):
    batch = queries[start:start + size]
    n = batch.shape[0]
    if n < size:
      batch = np.pad(batch, ((0, size - n), (0, 0)))
    yield start, n, batch


def _check_search_args(index: HammingIndex, chunk_size: int, query_chunk_size: int):
  if not isinstance(index, HammingIndex):
    raise ValueError(f"index must be a HammingIndex, got {type(index).__name__}.")
  checks.check_positive_int("chunk_size", chunk_size)
  checks.check_positive_int("query_chunk_size", query_chunk_size)
  if index.count == 0:
    raise ValueError("the index is empty; add codes before searching.")


def num_query_batches(nq: int, query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE) -> int:
  """How many batches :func:`iter_search` yields for ``nq`` queries."""
  size = min(query_chunk_size, 1 << max(0, (nq - 1).bit_length()))
  return -(-nq // size)


def iter_search(index: HammingIndex, queries: Any, k: int, *,
                chunk_size: int = DEFAULT_CHUNK_SIZE,
                query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
                group_size: int | None = None, method: str | None = None
                ) -> Iterator[tuple[int, jax.Array, jax.Array]]:
  """Like :func:`search`, yielding ``(start, distances, ids)`` per query batch."""
  _check_search_args(index, chunk_size, query_chunk_size)
  k = checks.check_positive_int("k", k)
  if k > index.count:
    raise ValueError(f"k must be at most the index size {index.count}, got k={k}.")
  if method is not None and method not in METHODS:
    raise ValueError(f"method must be one of {METHODS} or None, got {method!r}.")
  if method is None:
    method = ("group" if group_size is not None
              else default_method(k, index.bits, index.count))
  if method == "group":
    if group_size is None:
      group_size = default_group_size(k)
    group_size = checks.check_positive_int("group_size", group_size)
  q = _to_packed("queries", queries, index.bits)
  mesh = _data_mesh(index)
  count = jnp.int32(index.count)
  for start, n, batch in _query_batches(q, query_chunk_size):
    d, i = topk_kernel(index.packed, index.ids, batch, count, k=k, bits=index.bits,
                       chunk_size=chunk_size, group_size=group_size, mesh=mesh,
                       method=method)
    yield start, d[:n], i[:n]


def search(index: HammingIndex, queries: Any, k: int, *,
           chunk_size: int = DEFAULT_CHUNK_SIZE,
           query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
           group_size: int | None = None, method: str | None = None
           ) -> tuple[jax.Array, jax.Array]:
  """Exact k nearest neighbours by Hamming distance.

  A host-level function (validates concrete inputs, loops over query batches);
  the per-batch kernel (:func:`hashjax.topk.topk_kernel`) is jitted and streams
  the database in chunks, by one of two exact methods (see :mod:`hashjax.topk`):
  the group scan keeps a running top-k of *groups* of ``group_size`` consecutive
  rows ranked by their minimum distance, then re-scores the rows of the ``k``
  best groups; the counting select builds each query's distance histogram, takes
  the threshold distance from it and keeps the rows below it and the first ones
  at it.

  Args:
    index: a non-empty index.
    queries: ``[nq, bits]`` {-1, +1} codes or ``[nq, w]`` uint32 packed codes.
    k: number of neighbours, ``1 <= k <= len(index)``.
    chunk_size: database rows per streamed chunk (per device when sharded),
      rounded up to a multiple of the group size.
    query_chunk_size: queries per jitted call (batches are padded to one size).
    group_size: rows per group of the group scan; default
      :func:`default_group_size` (32 for ``k <= 256``, else 1). Any positive
      value gives the same results.
    method: "group" (group scan), "count" (counting select), "group_count"
      (two-level counting select) or None: :func:`default_method` (group scan
      for ``k < 32``, two-level counting with at least ``64 k`` rows, else
      counting), or the group scan when ``group_size`` is given. Every method
      gives the same results.

  Returns:
    ``distances`` int32 ``[nq, k]`` ascending and ``ids`` ``[nq, k]``; equal
    distances are ordered by insertion order.
  """
  parts = list(iter_search(index, queries, k, chunk_size=chunk_size,
                           query_chunk_size=query_chunk_size,
                           group_size=group_size, method=method))
  return (jnp.concatenate([p[1] for p in parts]),
          jnp.concatenate([p[2] for p in parts]))


def radius_search(index: HammingIndex, queries: Any, radius: int, *,
                  chunk_size: int = DEFAULT_CHUNK_SIZE,
                  query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE) -> RadiusResult:
  """All items within Hamming distance ``radius`` of each query.

  Two streamed passes: count the hits per query, then an exact top-m search with
  ``m = max(counts)``. The padded result holds ``[nq, m]`` entries, so a radius
  that covers most of the database costs ``nq * n`` memory.

  Args:
    index: a non-empty index.
    queries: ``[nq, bits]`` {-1, +1} or ``[nq, w]`` uint32 packed codes.
    radius: integer ``>= 0``; items with distance ``<= radius`` are returned.
    chunk_size: database rows per streamed chunk.
    query_chunk_size: queries per jitted call.

  Returns:
    A :class:`RadiusResult` of NumPy arrays, rows sorted by (distance, insertion
    order).
  """
  _check_search_args(index, chunk_size, query_chunk_size)
  if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
    raise ValueError(f"radius must be a non-negative integer, got {radius!r}.")
  q = _to_packed("queries", queries, index.bits)
  mesh = _data_mesh(index)
  count = jnp.int32(index.count)
  r = jnp.int32(min(int(radius), index.bits))
  counts = np.zeros((q.shape[0],), np.int32)
  for start, n, batch in _query_batches(q, query_chunk_size):
    c = count_kernel(index.packed, batch, count, r, chunk_size=chunk_size, mesh=mesh)
    counts[start:start + n] = np.asarray(c)[:n]
  m = int(counts.max()) if counts.size else 0
  dist = np.full((q.shape[0], m), -1, np.int32)
  ids = np.full((q.shape[0], m), -1, np.dtype(index.ids.dtype))
  if m:
    for start, d, i in iter_search(index, q, m, chunk_size=chunk_size,
                                   query_chunk_size=query_chunk_size):
      dist[start:start + d.shape[0]] = np.asarray(d)
      ids[start:start + d.shape[0]] = np.asarray(i)
    outside = np.arange(m)[None, :] >= counts[:, None]
    dist[outside] = -1
    ids[outside] = -1
  return RadiusResult(distances=dist, ids=ids, counts=counts)
