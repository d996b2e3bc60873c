"""Multi-host launch helpers (GPU/TPU slices).

On a multi-host slice every host runs the same command. ``initialize()`` calls
``jax.distributed.initialize`` (auto-detected on TPU pods, SLURM and Open MPI; or from
``HASHJAX_COORDINATOR``, ``HASHJAX_NUM_PROCESSES``, ``HASHJAX_PROCESS_ID``), and
``host_shard`` gives each host its slice of the global example indices, so the global
batch is the concatenation of per-host batches in process order. Checkpoints must go
to storage every host sees (GCS, NFS); only process 0 writes metrics and configs.
On a single host ``initialize()`` is a no-op and ``host_shard`` returns everything.
See experiments/CLUSTER.md for launch recipes.

  from hashjax import distributed
  distributed.initialize()                      # before any other jax call
  mine = distributed.host_shard(global_batch_indices)
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["host_shard", "initialize", "is_multi_host"]

_ENV_COORDINATOR = "HASHJAX_COORDINATOR"
_ENV_NUM_PROCESSES = "HASHJAX_NUM_PROCESSES"
_ENV_PROCESS_ID = "HASHJAX_PROCESS_ID"

_initialized = False


def _env_int(name: str) -> int:
  value = os.environ.get(name)
  if value is None:
    raise ValueError(
        f"{_ENV_COORDINATOR} is set, so {name} must be set too (an integer); it is "
        "missing.")
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name} must be an integer, got {value!r}.") from None


def _num_tpu_hosts() -> int:
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return len([h for h in hosts.split(",") if h.strip()])


def initialize() -> bool:
  """Initialises the JAX distributed runtime when the environment asks for it.

  Call it once per process before any other JAX call (``python -m hashjax.main``
  does). Sources, in order:

  1. ``HASHJAX_COORDINATOR`` (``host:port`` of process 0) with
     ``HASHJAX_NUM_PROCESSES`` and ``HASHJAX_PROCESS_ID``: explicit settings;
  2. SLURM (``SLURM_NTASKS`` > 1), Open MPI (``OMPI_COMM_WORLD_SIZE`` > 1) or a
     multi-host TPU VM (``TPU_WORKER_HOSTNAMES`` listing more than one host):
     ``jax.distributed.initialize()`` detects everything itself;
  3. otherwise (one process): nothing happens.

  Returns:
    True when ``jax.distributed.initialize`` was called (now or by an earlier call
    of this function), False on a single process.

  Raises:
    ValueError: ``HASHJAX_COORDINATOR`` without a valid process count / id, or an
      id outside ``[0, num_processes)``.
  """
  global _initialized
  if _initialized:
    return True
  coord = os.environ.get(_ENV_COORDINATOR)
  if coord:
    num = _env_int(_ENV_NUM_PROCESSES)
    pid = _env_int(_ENV_PROCESS_ID)
    if num < 1 or not 0 <= pid < num:
      raise ValueError(
          f"expected 0 <= {_ENV_PROCESS_ID} < {_ENV_NUM_PROCESSES}, got process id "
          f"{pid} of {num} processes.")
    if num == 1:
      return False
    jax.distributed.initialize(coordinator_address=coord, num_processes=num,
                               process_id=pid)
  else:
    world = max(int(os.environ.get("SLURM_NTASKS", "1") or 1),
                int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1))
    if world <= 1 and _num_tpu_hosts() <= 1:
      return False
    jax.distributed.initialize()
  _initialized = True
  return True


def is_multi_host() -> bool:
  """Whether more than one JAX process takes part (``jax.process_count() > 1``)."""
  return jax.process_count() > 1


def host_shard(indices: np.ndarray, *, process_index: int | None = None,
               process_count: int | None = None) -> np.ndarray:
  """This host's contiguous share of ``indices`` [n] (n must divide evenly).

  Process p gets rows ``[p * n / P, (p + 1) * n / P)``, so concatenating the shares
  in process order gives ``indices`` back (what
  ``jax.make_array_from_process_local_data`` expects for a batch sharded over the
  ``"data"`` axis). The DCGH input pipeline slices its batches the same way.

  Args:
    indices: ``[n]`` global example indices for one global batch or one epoch.
    process_index: defaults to ``jax.process_index()``.
    process_count: defaults to ``jax.process_count()``.

  Returns:
    ``[n // process_count]`` indices for this host.

  Raises:
    ValueError: ``indices`` is not 1-D, ``n`` is not a multiple of the process
      count, or the process index is out of range.
  """
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  indices = np.asarray(indices)
  if indices.ndim != 1:
    raise ValueError(f"indices must be 1-D [n], got shape {indices.shape}.")
  if pc < 1 or not 0 <= pi < pc:
    raise ValueError(f"expected 0 <= process_index < process_count, got {pi} of {pc}.")
  if indices.shape[0] % pc:
    raise ValueError(
        f"{indices.shape[0]} indices do not split evenly over {pc} hosts; make the "
        "global batch a multiple of the host count.")
  per = indices.shape[0] // pc
  return indices[pi * per:(pi + 1) * per]
