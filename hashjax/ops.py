"""Small numerical helpers shared by the solvers (RREH, baselines)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["matmul"]


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a @ b`` at full float32 precision (no TF32 / bf16 passes on accelerators)."""
  return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
