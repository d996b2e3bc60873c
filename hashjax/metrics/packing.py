"""Bit-packing of {-1, +1} codes into uint32 words and Hamming distances on them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["hamming_distance", "num_words", "pack_codes"]


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
  return jnp.sum(jax.lax.population_count(x).astype(jnp.int32), axis=-1)
