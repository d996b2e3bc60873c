"""Single-host behaviour of the multi-host helpers."""

import numpy as np
import pytest

from hashjax import distributed


def test_initialize_is_noop_on_one_host(monkeypatch):
  for k in ("HASHJAX_COORDINATOR", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE",
            "TPU_WORKER_HOSTNAMES"):
    monkeypatch.delenv(k, raising=False)
  distributed.initialize()
  assert not distributed.is_multi_host()


def test_host_shards_partition_the_global_batch():
  idx = np.arange(12) * 10
  parts = [distributed.host_shard(idx, process_index=p, process_count=3)
           for p in range(3)]
  np.testing.assert_array_equal(np.concatenate(parts), idx)
  assert [len(p) for p in parts] == [4, 4, 4]
  np.testing.assert_array_equal(distributed.host_shard(idx), idx)  # one host here


def test_host_shard_rejects_uneven_batches():
  with pytest.raises(ValueError, match="do not split evenly over 5 hosts"):
    distributed.host_shard(np.arange(12), process_index=0, process_count=5)
