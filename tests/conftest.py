"""Test set-up: 8 fake CPU devices (before jax is imported), ``rng`` fixtures, and
this folder on ``sys.path`` for the shared references (retrieval_reference.py)."""

import os
import sys

# Shared NumPy references (tests/retrieval_reference.py) import as top-level modules.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", False)


@pytest.fixture
def rng() -> jax.Array:
  return jax.random.key(0)


@pytest.fixture
def np_rng() -> np.random.Generator:
  return np.random.default_rng(0)
