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

import errno
import json
import os
import socket
from typing import Any

import jax
import numpy as np

__all__ = ["allgather_exact", "exchange", "host_rows", "host_shard", "initialize",
           "is_multi_host", "port_in_use"]

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


def _coordinator_port(coord: str) -> int:
  """The port of ``HASHJAX_COORDINATOR`` (``host:port``, ``[v6]:port``)."""
  host, sep, port = coord.rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(
        f"{_ENV_COORDINATOR} must be host:port with a port in [1, 65535], got "
        f"{coord!r}.")
  return int(port)


def port_in_use(port: int) -> bool:
  """Whether something listens on ``port`` on this host.

  Probed as JAX's coordinator service binds (every interface, ``SO_REUSEADDR``), so
  connections of an earlier run still in TIME_WAIT do not count as a listener.
  """
  for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:           # no IPv6 on this host: try IPv4
      continue
    with s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        s.bind((addr, port))
      except OSError as e:
        if e.errno == errno.EADDRINUSE:
          return True
        continue              # e.g. IPv6 unavailable: the other family decides
      return False
  return False


def _check_port_free(port: int) -> None:
  """Raises if something listens on ``port`` here (process 0 serves the coordinator).

  JAX's coordinator service binds every interface; when the port is taken it logs
  one line and every process then waits for the initialisation timeout (minutes).
  """
  if port_in_use(port):
    raise ValueError(
        f"{_ENV_COORDINATOR}: port {port} is already in use on this host, where "
        "process 0 starts the coordinator; choose a free port.")


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
    ValueError: ``HASHJAX_COORDINATOR`` without a valid ``host:port``, process
      count or id, an id outside ``[0, num_processes)``, or (on process 0) a
      coordinator port something already listens on.
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
    port = _coordinator_port(coord)
    if pid == 0:
      _check_port_free(port)
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


def host_rows(n: int, *, process_index: int | None = None,
              process_count: int | None = None) -> slice:
  """This host's contiguous block of ``n`` rows (any n; block sizes differ by <= 1).

  Process p gets rows ``[p * n // P, (p + 1) * n // P)``, so the blocks in process
  order are ``0 .. n``. Use it to read a host's share of a data set's rows (the
  process-local RREH fit, :func:`hashjax.rreh.fit` with ``process_local=True``);
  :func:`host_shard` is the even split of one global batch.
  """
  pi = jax.process_index() if process_index is None else int(process_index)
  pc = jax.process_count() if process_count is None else int(process_count)
  if pc < 1 or not 0 <= pi < pc:
    raise ValueError(f"expected 0 <= process_index < process_count, got {pi} of {pc}.")
  n = int(n)
  return slice(pi * n // pc, (pi + 1) * n // pc)


def allgather_exact(x: Any) -> np.ndarray:
  """``[P, ...]``: ``x`` of every process, in process order, bit for bit.

  ``x`` must have the same shape and dtype on every process. The bytes travel, so
  float64 stays float64 whatever ``jax_enable_x64`` says (a plain
  ``process_allgather`` would round it to float32). One process: ``x[None]``.
  """
  x = np.ascontiguousarray(x)
  if jax.process_count() == 1:
    return x[None]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  raw = np.frombuffer(x.tobytes(), np.uint8)
  got = np.asarray(multihost_utils.process_allgather(raw))       # [P, nbytes]
  return np.stack([np.frombuffer(row.tobytes(), x.dtype).reshape(x.shape)
                   for row in got])


_EXCHANGE_BYTES = 1 << 16


def exchange(obj: Any) -> list[Any]:
  """Every process's JSON-serialisable ``obj``, in process order (one collective).

  For small facts that must agree before collective work starts (row counts,
  widths, an error message): every process reaches this call, so a mistake found on
  one process is reported by all of them instead of leaving the others waiting in
  a collective. At most 64 KiB of JSON per process.
  """
  if jax.process_count() == 1:
    return [obj]
  raw = json.dumps(obj).encode()
  if len(raw) > _EXCHANGE_BYTES - 4:
    raise ValueError(f"exchange: {len(raw)} bytes of JSON, more than "
                     f"{_EXCHANGE_BYTES - 4}.")
  buf = np.zeros(_EXCHANGE_BYTES, np.uint8)
  buf[:4] = np.frombuffer(np.uint32(len(raw)).tobytes(), np.uint8)
  buf[4:4 + len(raw)] = np.frombuffer(raw, np.uint8)
  out = []
  for row in allgather_exact(buf):
    size = int(np.frombuffer(row[:4].tobytes(), np.uint32)[0])
    out.append(json.loads(row[4:4 + size].tobytes().decode()))
  return out
