"""Hash codes, the bottom layer: binarisation, bit packing, Hamming distances.

Every method produces codes in {-1, +1} through :func:`binarize`
(``sign(0) = +1``); the metrics and the index pack them into uint32 words
(:func:`pack_codes` on device, :func:`pack_host` in NumPy: bit ``j`` of word
``w`` is code entry ``32 w + j``, +1 -> 1, padding bits 0) and compare packed
codes by XOR and popcount (:func:`hamming_distance`, :func:`column_distance`).
:func:`modality_index` is the one check of a modality argument.

This module imports only JAX and NumPy, so both :mod:`hashjax.metrics` and
:mod:`hashjax.index` build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "binarize",
    "column_distance",
    "hamming_distance",
    "modality_index",
    "num_words",
    "pack_codes",
    "pack_host",
]


def binarize(z: jax.Array, dtype: Any = None) -> jax.Array:
  """``+1`` where ``z >= 0`` else ``-1`` (so ``sign(0) = +1``).

  Args:
    z: real array of any shape (jittable).
    dtype: output dtype; default ``z.dtype`` (codes are usually int8).

  Returns:
    array of ``z``'s shape with values in {-1, +1}.
  """
  return jnp.where(z >= 0, 1, -1).astype(z.dtype if dtype is None else dtype)


def num_words(bits: int) -> int:
  """Number of uint32 words that hold ``bits`` bits."""
  return (bits + 31) // 32


@jax.jit
def pack_codes(codes: jax.Array) -> jax.Array:
  """Packs codes into uint32 words; bit j of word w is code entry 32 w + j.

  Args:
    codes: ``[n, b]`` codes in {-1, +1} (any numeric dtype); +1 -> bit 1.

  Returns:
    ``[n, ceil(b / 32)]`` uint32. Padding bits are 0 for every item, so they never
    add to a Hamming distance.
  """
  n, b = codes.shape
  w = num_words(b)
  bits = (codes > 0).astype(jnp.uint32)
  bits = jnp.pad(bits, ((0, 0), (0, 32 * w - b))).reshape(n, w, 32)
  shifts = jnp.arange(32, dtype=jnp.uint32)
  return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)


def pack_host(codes: Any) -> np.ndarray:
  """NumPy twin of :func:`pack_codes` (no device memory).

  Args:
    codes: ``[n, b]`` {-1, +1} codes (+1 -> bit 1).

  Returns:
    ``[n, ceil(b / 32)]`` uint32, padding bits 0.
  """
  arr = np.asarray(codes)
  n, b = arr.shape
  w = num_words(b)
  by = np.packbits(arr > 0, axis=1, bitorder="little")
  out = np.zeros((n, 4 * w), np.uint8)
  out[:, :by.shape[1]] = by
  return out.view("<u4").astype(np.uint32)


@jax.jit
def hamming_distance(query_packed: jax.Array, db_packed: jax.Array) -> jax.Array:
  """All-pairs Hamming distances between packed codes.

  Args:
    query_packed: ``[nq, w]`` uint32 from :func:`pack_codes`.
    db_packed: ``[ndb, w]`` uint32.

  Returns:
    ``[nq, ndb]`` int32 distances.
  """
  x = jnp.bitwise_xor(query_packed[:, None, :], db_packed[None, :, :])
  return jnp.sum(lax.population_count(x).astype(jnp.int32), axis=-1)


def column_distance(queries: jax.Array, cols: jax.Array) -> jax.Array:
  """Hamming distances from a word-major (transposed) block of database codes.

  Word by word XOR + popcount, vectorised along database rows: XLA fuses it
  into one loop over ``[nq, c]`` without a ``[nq, c, w]`` temporary.

  Args:
    queries: ``[nq, w]`` uint32 packed queries.
    cols: ``[w, c]`` uint32, column ``i`` the packed code of database row ``i``.

  Returns:
    ``[nq, c]`` int32 distances (equal to :func:`hamming_distance` on ``cols.T``).
  """
  d = None
  for j in range(cols.shape[0]):
    p = lax.population_count(queries[:, j:j + 1] ^ cols[j][None, :]).astype(jnp.int32)
    d = p if d is None else d + p
  return d


def modality_index(modality: Any, num: int, names: Sequence[str] = ()) -> int:
  """Validates a modality argument; returns its index in ``[0, num)``.

  Args:
    modality: an int index, or (when ``names`` is given) one of ``names`` or a
      string of digits.
    num: number of modalities of the model or data.
    names: optional modality names, in index order.

  Raises:
    ValueError: not an index (or known name), or out of range.
  """
  if isinstance(modality, str) and names:
    if modality in names:
      return list(names).index(modality)
    if not modality.isdigit():
      raise ValueError(f"unknown modality {modality!r}; use one of {tuple(names)} "
                       f"or an index in [0, {num}).")
    modality = int(modality)
  if isinstance(modality, bool) or not isinstance(modality, (int, np.integer)):
    raise ValueError(f"modality must be an int index, got {modality!r}.")
  if not 0 <= int(modality) < num:
    raise ValueError(
        f"modality must be in [0, {num}) for a {num}-modality model, got {modality}.")
  return int(modality)
