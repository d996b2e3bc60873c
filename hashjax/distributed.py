"""Multi-host launch helpers (GPU/TPU slices).

On a multi-host slice every host runs the same command. ``initialize()`` calls
``jax.distributed.initialize`` (auto-detected on TPU pods, SLURM and Open MPI; or from
``HASHJAX_COORDINATOR``, ``HASHJAX_NUM_PROCESSES``, ``HASHJAX_PROCESS_ID``), and
``host_shard`` gives each host its slice of the global example indices, so the global
batch is the concatenation of per-host batches in process order. Checkpoints must go
to storage every host sees (GCS, NFS); only process 0 writes metrics and configs.
On a single host ``initialize()`` is a no-op and ``host_shard`` returns everything.
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["host_shard", "initialize", "is_multi_host"]


def initialize() -> None:
  """Initialises the JAX distributed runtime when the environment asks for it."""
  coord = os.environ.get("HASHJAX_COORDINATOR")
  if coord:
    num = int(os.environ["HASHJAX_NUM_PROCESSES"])
    pid = int(os.environ["HASHJAX_PROCESS_ID"])
    if num > 1:
      jax.distributed.initialize(coordinator_address=coord, num_processes=num,
                                 process_id=pid)
    return
  if any(k in os.environ for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
                                   "TPU_WORKER_HOSTNAMES")):
    world = int(os.environ.get("SLURM_NTASKS",
                               os.environ.get("OMPI_COMM_WORLD_SIZE", "2")))
    if world > 1 or "TPU_WORKER_HOSTNAMES" in os.environ:
      jax.distributed.initialize()


def is_multi_host() -> bool:
  return jax.process_count() > 1


def host_shard(indices: np.ndarray, *, process_index: int | None = None,
               process_count: int | None = None) -> np.ndarray:
  """This host's contiguous share of ``indices`` [n] (n must divide evenly).

  Args:
    indices: ``[n]`` global example indices for one global batch or one epoch.
    process_index: defaults to ``jax.process_index()``.
    process_count: defaults to ``jax.process_count()``.

  Returns:
    ``[n // process_count]`` indices for this host.
  """
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  indices = np.asarray(indices)
  if indices.shape[0] % pc:
    raise ValueError(
        f"{indices.shape[0]} indices do not split evenly over {pc} hosts; make the "
        "global batch a multiple of the host count.")
  per = indices.shape[0] // pc
  return indices[pi * per:(pi + 1) * per]
