"""Per-device memory of the RREH solver at 1, 2 and 4 devices: TSQR vs gathered QR.

The W-step factorises every modality's item-sharded ``Phi`` ``[n, k]``. With
``jnp.linalg.qr`` the compiler gathers all of ``Phi`` onto every device; with the
TSQR of :func:`hashjax.rreh.steps.tsqr` (local QR per shard, QR of the stacked R
factors, in ``shard_map``) each device keeps its ``n/D`` rows. For each device count
D the solver (``hashjax.rreh.run``) is lowered and compiled on a D-device CPU mesh
and XLA's ``memory_analysis()`` (per device) is printed for both ways.

  python experiments/rreh_tsqr_memory.py --out experiments/results   # the committed table
"""

import dataclasses
import json
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from hashjax import rreh  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(out_dir, n=32768, k=256, d=64, bits=32):
  rs = np.random.default_rng(0)
  n_p = n // 4
  views = [rs.normal(size=(n_p + (n - n_p) // 2, d)).astype(np.float32) for _ in range(2)]
  paired = [v[:n_p] for v in views]
  unpaired = [v[n_p:] for v in views]
  rows = []
  load0 = os.getloadavg()
  for dev in (1, 2, 4):
    mesh = jax.make_mesh((dev,), ("data",), devices=jax.devices()[:dev])
    problem, _ = rreh.make_problem(paired, unpaired, dict(num_anchors=k, bits=bits),
                                   jax.random.key(0), mesh=mesh)
    hyper = rreh.make_hyper(theta=0.3, beta=0.1, lam=1e-3)
    for way, prob in (("tsqr", problem),
                      ("gathered qr", dataclasses.replace(problem, mesh=None))):
      if dev == 1 and way == "tsqr":
        continue                          # one device: both are jnp.linalg.qr
      compiled = rreh.run.lower(prob, hyper, jax.random.key(1), bits=bits,
                                iterations=2).compile()
      mem = compiled.memory_analysis()
      rows.append(dict(devices=dev, way=way if dev > 1 else "qr (1 device)",
                       temp_mib=mem.temp_size_in_bytes / 2**20,
                       argument_mib=mem.argument_size_in_bytes / 2**20,
                       output_mib=mem.output_size_in_bytes / 2**20))
      print(json.dumps(rows[-1]), flush=True)
  phi_mib = 2 * n * k * 4 / 2**20
  lines = ["# RREH solver: per-device memory, TSQR vs gathered QR (compiled memory_analysis)",
           "", f"Command: `python {' '.join(sys.argv)}`; jax {jax.__version__}; CPU "
           f"devices forced with --xla_force_host_platform_device_count=4; load "
           f"{load0[0]:.1f} before, {os.getloadavg()[0]:.1f} after (shared box; memory "
           "figures do not depend on load).", "",
           f"Problem: 2 modalities, n = {n} items (padded), k = {k} anchors, {bits} bits, "
           f"2 iterations. Phi of both modalities: {phi_mib:.0f} MiB in all.", "",
           "| devices | W-step QR | temp per device (MiB) | arguments per device (MiB) |"
           " output (MiB) |", "|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['devices']} | {r['way']} | {r['temp_mib']:.1f} | "
                 f"{r['argument_mib']:.1f} | {r['output_mib']:.1f} |")
  os.makedirs(out_dir, exist_ok=True)
  out = os.path.join(out_dir, "rreh_tsqr_memory")
  with open(out + ".json", "w") as f:
    json.dump(dict(rows=rows, n=n, k=k, bits=bits, load_before=load0,
                   load_after=os.getloadavg()), f, indent=1)
  with open(out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import _common  # noqa: E402  pylint: disable=g-import-not-at-top
  main(_common.parser("rreh_tsqr_memory", __doc__).parse_args().out)
