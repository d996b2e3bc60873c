"""experiments/benchmarks/profile_rank_pass.py runs small and its replica is the rank pass.

The script asserts that its replica of the "scan" rank pass gives the library's AP
(to 1e-6) before timing the variants with parts removed, so a change of the rank
pass that the replica does not follow fails here.
"""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "profile_rank_pass.py"


def test_profile_rank_pass_small(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, str(SCRIPT), "--nq=8", "--n=300", "--bits=16",
                        "--reps=1", f"--out={tmp_path}"], env=env, capture_output=True,
                       text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads((tmp_path / "profile_rank_pass_8x300x16.json").read_text())
  assert len(res["median_s"]) == 8  # library, replica, 3 single removals, all, 2 hist
  assert all(v > 0 for v in res["median_s"].values())
