"""Starts hashjax commands as real JAX processes on 127.0.0.1, as CLUSTER.md tells users.

Every process runs the same command with ``HASHJAX_COORDINATOR``,
``HASHJAX_NUM_PROCESSES`` and ``HASHJAX_PROCESS_ID`` set; JAX's own multi-controller
runtime (``jax.distributed``) connects them and the CPU backend's collectives (gloo)
carry the cross-process reductions. Each process is bounded by a timeout.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence

from hashjax import distributed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ephemeral_range() -> tuple[int, int]:
  """The kernel's range for automatically assigned ports (outgoing connections)."""
  try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
      low, high = (int(x) for x in f.read().split())
    return low, high
  except (OSError, ValueError):
    return 32768, 60999       # the Linux default


def free_port_in(low: int, high: int) -> int:
  """A port in ``[low, high]`` that nothing listens on now (random probes)."""
  ports = range(low, high + 1)
  for port in random.Random().sample(ports, min(200, len(ports))):
    if not distributed.port_in_use(port):
      return port
  raise RuntimeError(f"no free port in [{low}, {high}].")


def free_port() -> int:
  """A coordinator port: free now, and outside the kernel's ephemeral range.

  A port the kernel hands out (``bind(0)``) is released before process 0 binds it
  again, and in that window any outgoing connection (gloo and gRPC open many, also
  in a concurrently running test) may take it; the coordinator then fails to bind
  and every process waits. Ports below the ephemeral range are never handed out
  automatically, and a random one rarely meets a parallel test's choice.
  """
  low, high = _ephemeral_range()
  if low > 12000:
    return free_port_in(10000, low - 1)
  return free_port_in(high + 1, 65535) if high < 64000 else free_port_in(1024, 65535)


def env_for(process_id: int, num_processes: int, port: int, devices_per_process: int,
            extra_env: dict[str, str] | None = None) -> dict[str, str]:
  # A launcher's variables inherited from the test's own environment (a CI job under
  # SLURM, say) would make every child join that job instead: drop them.
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("HASHJAX_", "SLURM_", "OMPI_", "TPU_WORKER_"))}
  env.update(extra_env or {})
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
  env["JAX_PLATFORMS"] = "cpu"
  if num_processes > 1:
    env.update(HASHJAX_COORDINATOR=f"127.0.0.1:{port}",
               HASHJAX_NUM_PROCESSES=str(num_processes),
               HASHJAX_PROCESS_ID=str(process_id))
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def start(args: Sequence[str], *, num_processes: int, devices_per_process: int,
          log_dir: str, extra_env: dict[str, str] | None = None,
          port: int | None = None) -> list[subprocess.Popen]:
  """Starts ``python -m <args>`` once per process; returns the Popen handles.

  ``procs[i]`` is process ``i`` (``HASHJAX_PROCESS_ID=i``); its log is
  ``log_dir/proc<i>.log``. The coordinator port is :func:`free_port` unless given.
  """
  os.makedirs(log_dir, exist_ok=True)
  port = free_port() if port is None else port
  procs = []
  for pid in range(num_processes):
    log = open(os.path.join(log_dir, f"proc{pid}.log"), "w")  # noqa: SIM115
    procs.append(subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env=env_for(pid, num_processes, port, devices_per_process, extra_env)))
  return procs


def wait_codes(procs: Sequence[subprocess.Popen], *, timeout: float,
               grace: float = 60.0) -> list[int] | None:
  """Every process's exit code, or None after killing them all on a timeout.

  Once one process has failed (non-zero exit), the others get ``grace`` seconds: a
  process left waiting for a coordinator or a collective that will never come
  would otherwise hold the test for the whole ``timeout``.
  """
  start, failed_at = time.monotonic(), None
  while True:
    codes = [p.poll() for p in procs]
    if all(c is not None for c in codes):
      return codes
    now = time.monotonic()
    if failed_at is None and any(c for c in codes):
      failed_at = now
    if now - start > timeout or (failed_at is not None and now - failed_at > grace):
      for p in procs:
        if p.poll() is None:
          p.kill()
          p.wait()
      return None
    time.sleep(0.1)


def wait(procs: Sequence[subprocess.Popen], *, timeout: float, log_dir: str) -> None:
  """Waits for every process; kills all and raises with the logs' tails on failure."""
  codes = wait_codes(procs, timeout=timeout)
  if codes is None:
    raise AssertionError(f"processes timed out after {timeout} s (or after another "
                         f"failed), exit codes {[p.returncode for p in procs]}:\n"
                         f"{tails(log_dir)}")
  if any(codes):
    raise AssertionError(f"exit codes {codes}:\n{tails(log_dir)}")


def tails(log_dir: str, n: int = 3000) -> str:
  out = []
  for name in sorted(os.listdir(log_dir)):
    if name.endswith(".log"):
      with open(os.path.join(log_dir, name), errors="replace") as f:
        out.append(f"--- {name}\n{f.read()[-n:]}")
  return "\n".join(out)


def run(args: Sequence[str], *, num_processes: int, devices_per_process: int,
        log_dir: str, timeout: float = 300, extra_env: dict[str, str] | None = None
        ) -> list[int]:
  """Runs the processes to completion; returns their OS process ids (in process order)."""
  procs = start(args, num_processes=num_processes, devices_per_process=devices_per_process,
                log_dir=log_dir, extra_env=extra_env)
  wait(procs, timeout=timeout, log_dir=log_dir)
  return [p.pid for p in procs]
