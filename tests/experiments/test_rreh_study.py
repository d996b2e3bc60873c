"""Smoke test of experiments/rreh_study.py on a tiny slice of real Wikipedia data.

The harness's mAP numbers are checked against an independent NumPy mAP@all written
here (Hamming ranking, ties by database index, AP 0 without a hit), and its summary
statistics against hand-computed means / sample stds.
"""

import json

import experiment_scripts
import numpy as np
import pytest
import retrieval_reference

from hashjax import data as hdata
from hashjax import rreh
from hashjax.data.core import RetrievalSplit


@pytest.fixture(scope="module")
def study():
  mod = experiment_scripts.load("rreh_study.py")
  full = hdata.get_retrieval_split({"name": "wikipedia"})
  train = full.train.subset(np.arange(120))
  query = full.query.subset(np.arange(40))
  mod._SPLITS["wikipedia"] = RetrievalSplit(train=train, query=query, database=train)
  return mod


_numpy_map = retrieval_reference.mean_ap   # the shared NumPy reference


def test_run_one_map_matches_numpy(study):
  # Same shapes as the objective-study test below, so the jit compilation is shared.
  cfg = dict(rreh.DEFAULTS, num_anchors=20, iterations=3)
  rec = study.run_one("rreh", "wikipedia", bits=64, ratio=0.1, seed=1, rreh_cfg=cfg)
  split = study._SPLITS["wikipedia"]
  assert rec["num_paired"] == 12 and rec["num_anchors_used"] == 12  # k capped at n_p
  assert rec["num_unpaired"] == [54, 54]
  model = rec["_model"]
  q = [np.asarray(rreh.encode(model, v, m)) for m, v in enumerate(split.query.views)]
  d = [np.asarray(rreh.encode(model, v, m)) for m, v in enumerate(split.database.views)]
  ql, dl = split.query.labels.astype(np.int64), split.database.labels.astype(np.int64)
  assert rec["map"]["image->text"] == pytest.approx(_numpy_map(q[0], d[1], ql, dl),
                                                    abs=1e-5)
  assert rec["map"]["text->image"] == pytest.approx(_numpy_map(q[1], d[0], ql, dl),
                                                    abs=1e-5)
  # The objective of the real fit never increases (docs/rreh.md: exact block minimisation).
  obj = np.asarray(rec["objective"])
  assert np.all(np.diff(obj) <= 1e-5 * np.abs(obj[:-1]))


def test_baseline_on_all_pairs_uses_every_training_item(study):
  rec = study.run_one("cvh", "wikipedia", bits=8, ratio=0.25, seed=0, train_on="all")
  assert rec["num_paired"] == 120 and rec["num_unpaired"] == [0, 0]
  split = study._SPLITS["wikipedia"]
  enc = rec["_encode"]
  ql, dl = split.query.labels.astype(np.int64), split.database.labels.astype(np.int64)
  want = _numpy_map(enc(split.query.views[1], 1), enc(split.database.views[0], 0), ql, dl)
  assert rec["map"]["text->image"] == pytest.approx(want, abs=1e-5)
  # bits > n_p is reported as an error record, not a crash.
  bad = study.run_one("cmfh", "wikipedia", bits=64, ratio=0.25, seed=0)
  assert "error" in bad and bad["map"] == {}


def test_summarize_mean_and_sample_std(study):
  recs = [dict(method="rreh", bits=8, map={"a->b": v}) for v in (0.1, 0.2, 0.6)]
  recs.append(dict(method="rreh", bits=16, map={"a->b": 0.5}))
  recs.append(dict(method="rreh", bits=16, map={}))  # failed run: ignored
  s = study.summarize(recs, ("method", "bits"))
  mean, std, n = s[("rreh", 8)]["a->b"]
  assert n == 3 and mean == pytest.approx(0.3)
  # sample std by hand: deviations -0.2, -0.1, 0.3 -> sum sq 0.14 / 2.
  assert std == pytest.approx(np.sqrt(0.07))
  assert s[("rreh", 16)]["a->b"] == (0.5, 0.0, 1)


def test_objective_study_writes_consistent_outputs(study, tmp_path, monkeypatch):
  monkeypatch.setattr(study, "load_rreh_config", lambda ds: (
      rreh.resolve_config(dict(num_anchors=20, iterations=3)), "test"))
  args = type("A", (), dict(quick=True))()
  study.study_objective(args, [0], str(tmp_path))
  data = json.loads((tmp_path / "rreh_objective.json").read_text())
  md = (tmp_path / "rreh_objective.md").read_text()
  assert {r["ratio"] for r in data["records"]} == {0.1, 1.0}
  for r in data["records"]:
    obj = r["objective"]
    assert f"| {obj[0]:.6g} | {obj[-1]:.6g} |" in md
    assert r["monotone"] == bool(np.all(np.diff(obj) <= 1e-5 * np.abs(obj[:-1])))
  assert (tmp_path / "plots" / "rreh_objective_wikipedia_0.1.png").stat().st_size > 1000
  for key in ("command", "jax", "numpy", "python", "cpu_count", "date", "seeds"):
    assert key in data["env"]


def test_subsets_verdict_applies_the_preset_rule(study):
  u = np.array([0.50, 0.60, 0.40])
  # Higher on 2 of 3 (= two thirds), mean +0.01, worst -0.005: auto wins.
  v = study.subsets_verdict(u, u + np.array([0.02, 0.015, -0.005]))
  assert v["auto_wins"] and v["higher"] == 2 and v["subsets"] == 3
  assert v["mean_difference"] == pytest.approx(0.01) and v["worst"] == pytest.approx(-0.005)
  # One subset 0.011 lower: refused even though the mean is higher.
  assert not study.subsets_verdict(u, u + np.array([0.05, 0.05, -0.011]))["auto_wins"]
  # Higher on only 1 of 3: refused.
  assert not study.subsets_verdict(u, u + np.array([0.05, -0.001, -0.001]))["auto_wins"]
  # Lower on average: refused.
  assert not study.subsets_verdict(u, u + np.array([0.001, 0.001, -0.009]))["auto_wins"]
