"""experiments/benchmarks/bench_select_cost.py runs (one UCI case, one rep): the fits
it times are the library defaults and ridge_cap=0, and its ratio is theirs."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "bench_select_cost.py"


def test_bench_select_cost_small(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, str(SCRIPT), "--cases=uci_fac+zer", "--reps=2",
                        "--max_load=1000", f"--out={tmp_path}"], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  (r,) = json.loads((tmp_path / "bench_select_cost.json").read_text())["results"]
  a, b = (np.asarray(r["seconds"][k]) for k in ("defaults", "ridge_cap=0"))
  assert a.shape == b.shape == (2,) and np.all(a > 0) and np.all(b > 0)
  np.testing.assert_allclose(r["ratio_per_rep"], a / b)
  np.testing.assert_allclose(r["ratio"], np.median(a / b))
  assert r["host"]["kept"] == 4
  assert "uci_fac+zer" in (tmp_path / "bench_select_cost.md").read_text()
