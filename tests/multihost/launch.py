"""Starts hashjax commands as real JAX processes on 127.0.0.1, as CLUSTER.md tells users.

Every process runs the same command with ``HASHJAX_COORDINATOR``,
``HASHJAX_NUM_PROCESSES`` and ``HASHJAX_PROCESS_ID`` set; JAX's own multi-controller
runtime (``jax.distributed``) connects them and the CPU backend's collectives (gloo)
carry the cross-process reductions. Each process is bounded by a timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def free_port_in(low: int, high: int) -> int:
  """A port in ``[low, high]`` that nothing listens on now (random probes)."""
  import random  # pylint: disable=g-import-not-at-top
  for port in random.Random().sample(range(low, high + 1), 200):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      try:
        s.bind(("127.0.0.1", port))
      except OSError:
        continue
      return port
  raise RuntimeError(f"no free port in [{low}, {high}].")


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
          log_dir: str, extra_env: dict[str, str] | None = None
          ) -> list[subprocess.Popen]:
  """Starts ``python -m <args>`` once per process; returns the Popen handles.

  ``procs[i]`` is process ``i`` (``HASHJAX_PROCESS_ID=i``); its log is
  ``log_dir/proc<i>.log``.
  """
  os.makedirs(log_dir, exist_ok=True)
  port = free_port()
  procs = []
  for pid in range(num_processes):
    log = open(os.path.join(log_dir, f"proc{pid}.log"), "w")  # noqa: SIM115
    procs.append(subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env=env_for(pid, num_processes, port, devices_per_process, extra_env)))
  return procs


def wait(procs: Sequence[subprocess.Popen], *, timeout: float, log_dir: str) -> None:
  """Waits for every process; kills all and raises with the logs' tails on failure."""
  try:
    codes = [p.wait(timeout=timeout) for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    raise AssertionError(f"processes timed out after {timeout} s:\n{tails(log_dir)}")
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
