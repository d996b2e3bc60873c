"""experiments/benchmarks/bench_map.py runs small: its mAPs agree with its NumPy loop.

The script asserts that hashjax's mAP@all and mAP@K equal its stable NumPy
``calc_map_k`` loop to 1e-6 before it writes anything; here it runs on a small
problem, and the JSON must hold every round's timing and ratios built from the
medians.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "bench_map.py"


def test_bench_map_small(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, str(SCRIPT), "--nq=40", "--n=5000", "--bits=16",
                        "--top_k=50", "--query_chunk=16", "--repeats=3", "--retries=0",
                        "--max_load=1000", f"--out={tmp_path}"], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads((tmp_path / "bench_map.json").read_text())
  hist = res["floors"]["histogram_pass"]
  assert len(hist["all_s"]) == 3 and hist["seconds"] == sorted(hist["all_s"])[1]
  assert [r["metric"] for r in res["results"]] == ["mAP@all", "mAP@50 (calc_map_k)"]
  # Every kept timing carries the host-speed probe: 4 kernels x 3 rounds + 2 x 2 NumPy.
  assert res["host"]["kept"] == 16 and res["host"]["best_probe_s"] > 0
  assert "Host-speed probe" in (tmp_path / "bench_map.md").read_text()
  for r in res["results"]:
    t = r["hashjax_timing"]
    assert len(t["all_s"]) == 3 and r["hashjax_s"] == sorted(t["all_s"])[1]
    np.testing.assert_allclose(r["over_histogram_pass"], r["hashjax_s"] / hist["seconds"])
    assert r["abs_diff_vs_numpy_stable"] < 1e-6 and 0 < r["hashjax"] < 1
