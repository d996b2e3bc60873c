"""experiments/supervision_study.py: the answer rule by hand, and a real --redo run."""

import json
import os
import subprocess
import sys

import experiment_scripts
import pytest

SCRIPT = str(experiment_scripts.EXPERIMENTS / "supervision_study.py")
ROOT = str(experiment_scripts.EXPERIMENTS.parent)


def _runs(rreh, dcgh):
  out = [dict(method="rreh", dataset="uci", fraction=None, seed=s, i2t_map=m, t2i_map=m)
         for s, m in enumerate(rreh)]
  for f, maps in dcgh.items():
    out += [dict(method="dcgh", dataset="uci", fraction=f, seed=s, i2t_map=m, t2i_map=m)
            for s, m in enumerate(maps)]
  return out


def test_answer_by_hand():
  mod = experiment_scripts.load("supervision_study.py")
  # RREH mean 0.5, std 0.1 (0.4, 0.5, 0.6). DCGH: 1% below (0.3), 10% above but within
  # noise (mean 0.55, std 0.05: 0.50 < 0.60), 100% clearly (0.9 - 0 > 0.6).
  runs = _runs([0.4, 0.5, 0.6], {0.01: [0.3, 0.3, 0.3], 0.1: [0.5, 0.55, 0.6],
                                 1.0: [0.9, 0.9, 0.9]})
  got = mod.answer(runs, "uci", "i2t_map")
  assert got == ("from 10% (mean above RREH's); clearly (mean - std > RREH mean + std) "
                 "from 100%; below at 1%")
  # Ahead at 10% but behind again at 100%: "ahead from" needs every larger fraction.
  runs = _runs([0.4, 0.5, 0.6], {0.1: [0.7, 0.7, 0.7], 1.0: [0.45, 0.45, 0.45]})
  assert mod.answer(runs, "uci", "i2t_map") == "never (up to 100%)"


@pytest.mark.slow
def test_redo_reruns_only_the_asked_method(tmp_path):
  """A real one-epoch study on UCI, then ``--redo rreh``: DCGH's run is kept as saved."""
  out = str(tmp_path)
  base = [sys.executable, SCRIPT, "--datasets", "uci", "--fractions", "1.0", "--seeds", "1",
          "--epochs", "1", "--out", out]
  env = dict(os.environ)
  subprocess.run(base, check=True, cwd=ROOT, env=env,
                 capture_output=True, timeout=600)
  path = os.path.join(out, "supervision_study.json")
  with open(path) as f:
    first = json.load(f)
  assert sorted(r["method"] for r in first["runs"]) == ["dcgh", "rreh"]
  proc = subprocess.run(base + ["--redo", "rreh"], check=True, cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert "--redo rreh: dropped 1 saved runs" in proc.stdout
  with open(path) as f:
    second = json.load(f)
  old = {r["method"]: r for r in first["runs"]}
  new = {r["method"]: r for r in second["runs"]}
  assert len(second["runs"]) == 2
  assert new["dcgh"] == old["dcgh"]                      # kept, not rerun
  assert new["rreh"]["load_before"] is not None
  assert len(second["meta"]["sessions"]) == 2            # the redo is recorded
  assert "--redo rreh" in second["meta"]["sessions"][1]["command"]
  # The rerun records RREH's label-free choice (results.json's details.hyper_selection).
  assert set(new["rreh"]["chosen"]) >= {"theta", "lam", "init_v", "ridge_cap"}
  # Same seed, same data, same defaults: the rerun reproduces the first run's mAP.
  assert new["rreh"]["i2t_map"] == old["rreh"]["i2t_map"]
  with open(os.path.join(out, "supervision_study.md")) as f:
    md = f.read()
  assert "--redo rreh" in md and "1/1 DCGH and 1/1 RREH runs" in md
