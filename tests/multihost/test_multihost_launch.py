"""``hashjax.distributed.initialize()`` starting JAX's real multi-controller runtime.

Two OS processes x 2 CPU devices on 127.0.0.1, once from the explicit
``HASHJAX_*`` settings and once from a SLURM-like environment (what ``srun`` sets for a
2-task step on one node), each running :mod:`tests.multihost.shard_sum`.
"""

import json
import os

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
