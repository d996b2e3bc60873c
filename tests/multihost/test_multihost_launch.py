"""``hashjax.distributed.initialize()`` starting JAX's real multi-controller runtime.

Two OS processes x 2 CPU devices on 127.0.0.1, once from the explicit
``HASHJAX_*`` settings and once from a SLURM-like environment (what ``srun`` sets for a
2-task step on one node), each running :mod:`tests.multihost.shard_sum`.
"""

import json
import os
import socket

from tests.multihost import launch


def _check(out_dir):
  rows = []
  for i in range(2):
    with open(os.path.join(out_dir, f"process{i}.json")) as f:
      rows.append(json.load(f))
  for i, r in enumerate(rows):
    assert r["initialized"] is True and r["second_call"] is True
    assert (r["process_index"], r["process_count"]) == (i, 2)
    assert (r["device_count"], r["local_device_count"]) == (4, 2)
    assert r["rows"] == list(range(4 * i, 4 * i + 4))   # contiguous share, by hand
    assert r["global_shape"] == [8]
    assert r["sum"] == 28                              # 0 + 1 + ... + 7


def test_explicit_settings_start_two_processes(tmp_path):
  launch.run(["tests.multihost.shard_sum", str(tmp_path)], num_processes=2,
             devices_per_process=2, log_dir=str(tmp_path / "logs"), timeout=240)
  _check(tmp_path)


def test_slurm_environment_starts_two_processes(tmp_path):
  # JAX's SLURM detection puts the coordinator on the step's first node at port
  # 61440 + SLURM_JOB_ID % 4096; pick a job id whose port is free now.
  port = launch.free_port_in(61440, 65535)
  procs = []
  for i in range(2):
    env = {"SLURM_JOB_ID": str(port - 61440), "SLURM_STEP_NODELIST": "127.0.0.1",
           "SLURM_NTASKS": "2", "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i),
           "SLURM_STEP_NUM_NODES": "1"}
    procs += launch.start(["tests.multihost.shard_sum", str(tmp_path)], num_processes=1,
                          devices_per_process=2, log_dir=str(tmp_path / f"logs{i}"),
                          extra_env=env)
  for i, p in enumerate(procs):
    launch.wait([p], timeout=240, log_dir=str(tmp_path / f"logs{i}"))
  _check(tmp_path)


def test_a_coordinator_port_in_use_stops_process_zero_with_one_line(tmp_path):
  """The documented launch with a busy port: process 0 exits 2 naming the port at
  once, instead of JAX logging it and every process waiting for minutes."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    logs = str(tmp_path / "logs")
    args = ["hashjax.main", "--config", "configs/rreh_wikipedia.py",
            f"--workdir={tmp_path / 'work'}"]
    procs = launch.start(args, num_processes=2, devices_per_process=1, log_dir=logs,
                         port=port)
    # Process 1 waits for a coordinator that never comes: killed 5 s after 0 failed.
    codes = launch.wait_codes(procs, timeout=120, grace=5)
  assert codes is None and procs[0].returncode == 2, launch.tails(logs)
  with open(os.path.join(logs, "proc0.log")) as f:
    log = f.read()
  assert log == (f"hashjax: error: HASHJAX_COORDINATOR: port {port} is already in use "
                 "on this host, where process 0 starts the coordinator; choose a free "
                 "port.\n"), log
  assert not (tmp_path / "work" / "results.json").exists()
