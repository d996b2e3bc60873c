"""experiments/benchmarks/bench_dcgh_step.py: the paper-scale rehearsal, small.

The FLOP count XLA gives for the full-size step (configs/dcgh_mirflickr.py: ViT-B/32 +
text tower, batch 128) is checked against the analytic count, which is checked against
the hand count of issue 17 (4.32e12); a 1-layer version of the same model compiles on
the 8-device CPU mesh and trains for 2 steps in float32 and bfloat16.
"""

import pathlib
import subprocess
import sys

import experiment_scripts
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "bench_dcgh_step.py"


@pytest.fixture(scope="module")
def bench():
  return experiment_scripts.load("benchmarks/bench_dcgh_step.py")


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["--dtypes", "float16"], "--dtypes"),
    (["--config", "configs/missing.py"], "no such file")])
def test_bad_arguments_exit_2_before_any_work(args, needle):
  p = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                     text=True, timeout=60, check=False)
  assert p.returncode == 2, p.stderr
  assert needle in p.stderr and "Traceback" not in p.stderr


def test_settings_come_from_the_config(bench):
  s = bench.load_settings(bench.DEFAULT_CONFIG)
  assert s["batch"] == 128 and s["bits"] == 64 and s["num_classes"] == 24
  assert s["model"]["preset"] == "vit_b32" and s["model"]["context_length"] == 32
  assert s["optim"]["tower_lr"] == 1e-5 and s["loss"] == (0.8, 0.05)
  small = bench.resize(s, layers=1, image_size=64, batch=16, dtype="bfloat16")
  m = bench.model_of(small)
  assert (m.vision.layers, m.text.layers, m.vision.image_size) == (1, 1, 64)
  assert small["batch"] == 16 and small["model"]["dtype"] == "bfloat16"
  assert s["batch"] == 128   # the original is untouched


@pytest.mark.slow
def test_full_size_xla_flops_match_the_analytic_count(bench):
  s = bench.load_settings(bench.DEFAULT_CONFIG)
  m = bench.model_of(s)
  analytic = bench.analytic_flops(m.vision, m.text, 128, 64)
  # Hand count (issue 17): 3 x 128 x (8.82 GFLOP ViT-B/32 at 224 px + 2.44 GFLOP text
  # tower at 32 tokens) = 4.32e12; it also counts the patch conv's input gradient
  # (128 x 0.23 GFLOP), which no step computes (the images are not parameters).
  assert abs((analytic + 128 * 2 * 49 * 3072 * 768) / 4.32e12 - 1) < 0.001
  flops, num_params = bench.xla_global_flops(s, m)
  assert abs(flops / analytic - 1) < 0.005, (flops, analytic)   # measured: 1.0030
  assert 1.45e8 < num_params < 1.6e8   # CLIP ViT-B/32 (151M) + heads


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_small_step_compiles_on_8_devices_and_trains(bench, dtype):
  s = bench.resize(bench.load_settings(bench.DEFAULT_CONFIG), layers=1, image_size=32,
                   batch=16, dtype=dtype)
  report, compiled = bench.compile_step(s, parallelism="jit", devices=8)
  mem = report["memory_per_device"]
  assert mem["argument_size_in_bytes"] > 4 * report["num_params"]   # replicated state
  assert mem["temp_size_in_bytes"] > 0
  # The partitioned program does 1/8 of the towers' work per device (plus the
  # replicated optimiser update), so well under the global count.
  assert report["xla_flops_per_device"] < 0.5 * report["xla_flops_global"]
  run = bench.run_steps(compiled, steps=2, warmup=0)
  assert run["finite_loss"] and np.all(np.isfinite(run["losses"]))
  assert run["params_changed"] and run["max_param_change"] > 0
  assert len(run["step_seconds_each"]) == 2
