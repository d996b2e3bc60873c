"""experiments/benchmarks/device_check.py --dry-run: every part at a tiny size on CPU."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "device_check.py"


@pytest.mark.slow
def test_dry_run_runs_every_part(tmp_path):
  p = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
                     cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
  assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
  report = json.loads((tmp_path / "device_check.json").read_text())
  parts = {r["part"]: r for r in report["parts"]}
  assert list(parts) == ["parity", "dcgh_step", "kernels", "map", "topr", "rreh"]
  for name, r in parts.items():
    assert r["status"] in ("ok", "skipped"), (name, r["log_tail"])
  if parts["parity"]["status"] == "ok":
    par = parts["parity"]["results"]["parity.json"]
    assert par["max_abs_diff_image"] < 1e-4 and par["max_abs_diff_text"] < 1e-4
  rows = parts["dcgh_step"]["results"]["dcgh_step.json"]["rows"]
  runs = [r for r in rows if r["kind"] == "steps" and r.get("framework") == "jax"]
  assert {(r["dtype"], r["parallelism"]) for r in runs} == {
      (d, p) for d in ("float32", "bfloat16") for p in ("jit", "pmap")}
  assert all(r["finite_loss"] and r["params_changed"] for r in runs)
  checks = [r for r in parts["kernels"]["results"]["kernels.json"] if "check" in r]
  assert len(checks) >= 10 and all(r["exact"] for r in checks)
  assert (tmp_path / "device_check.md").read_text().startswith("# Device check (dry run")


def test_unknown_part_exits_2(tmp_path):
  p = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path),
                      "--parts", "parity,warp"], cwd=ROOT, capture_output=True,
                     text=True, timeout=60, check=False)
  assert p.returncode == 2 and "unknown parts ['warp']" in p.stderr


def test_dry_run_times_each_kernel_once(tmp_path):
  """A dry run checks that each part runs: its timings are taken once, not repeated
  while the host is loaded (on a loaded CI box the repeats, 10 s apart, ran the map
  part past its limit). The device run keeps the gate."""
  sys.path.insert(0, str(SCRIPT.parent))
  try:
    import device_check  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(str(SCRIPT.parent))
  for part in ("map", "topr"):
    dry = device_check.part_commands(part, tmp_path, dry=True)
    assert "--retries=0" in dry and "--max_load=1000" in dry, dry
    full = device_check.part_commands(part, tmp_path, dry=False)
    assert "--retries=0" not in full and not any(a.startswith("--max_load=1000")
                                                  for a in full), full
