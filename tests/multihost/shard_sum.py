"""CLUSTER.md's minimal multi-process check: ``python -m tests.multihost.shard_sum OUT``.

Calls ``hashjax.distributed.initialize()``, builds the one-axis mesh over every
process's devices, takes this process's ``host_shard`` of ``arange(8)``, assembles the
global array with ``jax.make_array_from_process_local_data`` and sums it under jit.
Writes ``OUT/process<i>.json`` with what this process saw.
"""

import json
import os
import sys

from hashjax import distributed


def main(out_dir: str) -> None:
  started = distributed.initialize()
  again = distributed.initialize()   # must not start the runtime a second time
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  mine = distributed.host_shard(np.arange(8))
  x = jax.make_array_from_process_local_data(sharding, mine)
  total = int(jax.jit(lambda a: a.sum(), out_shardings=jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))(x))
  row = {"initialized": started, "second_call": again, "process_index": jax.process_index(),
         "process_count": jax.process_count(), "device_count": jax.device_count(),
         "local_device_count": jax.local_device_count(), "rows": mine.tolist(),
         "global_shape": list(x.shape), "sum": total}
  with open(os.path.join(out_dir, f"process{jax.process_index()}.json"), "w") as f:
    json.dump(row, f)


if __name__ == "__main__":
  main(sys.argv[1])
