"""The shallow-method experiment path, ``python -m hashjax.main`` and the encode CLI.

Numbers are checked against a plain NumPy per-query mAP loop written here.
"""

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import retrieval_reference
import pytest

from hashjax import encode as encode_cli
from hashjax import experiment, methods
from hashjax.data.core import MultiModalData

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


numpy_map = retrieval_reference.mean_ap   # the shared NumPy reference


def _toy(n, seed):
  rs = np.random.RandomState(seed)
  labels = np.eye(4, dtype=np.float32)[rs.randint(0, 4, n)]
  a = labels @ rs.randn(4, 6) + 0.5 * rs.randn(n, 6)
  b = labels @ rs.randn(4, 5) + 0.5 * rs.randn(n, 5)
  return MultiModalData(views=(a.astype(np.float32), b.astype(np.float32)),
                        labels=labels, view_names=("a", "b"))


def test_evaluate_cross_modal_matches_numpy_loop():
  query, database = _toy(30, 0), _toy(80, 1)
  proj = [np.random.RandomState(2).randn(6, 16), np.random.RandomState(3).randn(5, 16)]

  def encode_fn(x, m):
    return np.where(np.asarray(x) @ proj[m] >= 0, 1, -1).astype(np.int8)

  res = experiment.evaluate_cross_modal(query, database, encode_fn, top_r=None)
  assert set(res) == {"a->b", "b->a"}
  for name, (qa, db_b) in {"a->b": (0, 1), "b->a": (1, 0)}.items():
    want = numpy_map(encode_fn(query.views[qa], qa).astype(np.float64),
                     encode_fn(database.views[db_b], db_b).astype(np.float64),
                     query.labels, database.labels)
    np.testing.assert_allclose(res[name]["map"], want, atol=1e-6)


def test_fit_method_rejects_unknown_method():
  cfg = ml_collections.ConfigDict(dict(bits=8))
  with pytest.raises(ValueError, match="unknown method"):
    experiment.fit_method("lsh", [np.zeros((4, 2))] * 2, [np.zeros((0, 2))] * 2, cfg,
                          jax.random.key(0))
  with pytest.raises(ValueError, match="unknown method 'lsh'; known: .*'dcgh'"):
    methods.get("lsh")


def test_registry_fit_save_load_encode_roundtrip(tmp_path):
  """Every shallow method: fit -> save -> load -> encode gives the same codes."""
  query, train = _toy(20, 0), _toy(60, 1)
  assert set(methods.names()) == {"rreh", "cca_itq", "cvh", "cmfh", "dcgh"}
  assert methods.get("dcgh").trainer == "hashjax.dcgh.train"
  cfg = ml_collections.ConfigDict(dict(bits=4, rreh=dict(num_anchors=10, iterations=2),
                                       baseline={}))
  for name in methods.names("shallow"):
    m = methods.get(name)
    empty = [v[:0] for v in train.views]
    model = m.fit(list(train.views), empty, cfg, jax.random.key(0))
    path = str(tmp_path / f"{name}.npz")
    m.save(path, model, meta={"bits": 4})
    again = m.load(cfg, path)
    for v in range(2):
      want = m.encode(model, query.views[v], v)
      assert want.dtype == np.int8 and want.shape == (20, 4)
      np.testing.assert_array_equal(m.encode(again, query.views[v], v), want)
    other = "cvh" if name != "cvh" else "cmfh"
    with pytest.raises(ValueError, match=f"holds a {name!r} model"):
      methods.get(other).load(cfg, path)


def test_results_schema(tmp_path):
  """results.json: schema fields, every ordered pair, PR curve, provenance."""
  config = _baseline_config(method="cca_itq", bits=8)
  config.eval.top_r = 50
  rec = experiment.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved == json.loads(json.dumps(rec))
  assert saved["schema"] == "hashjax.results/1"
  assert saved["evaluation"]["map_at_k_definition"] == "calc_map_k"
  assert saved["evaluation"]["top_k"] == 50
  assert saved["evaluation"]["directions"] == ["image->text", "text->image"]
  for d in ("image->text", "text->image"):
    r = saved["results"][d]
    assert {"map", "map@50", "p@50", "ndcg@50", "p@r2", "pr_curve"} <= set(r)
    assert len(r["pr_curve"]["precision"]) == len(r["pr_curve"]["recall"]) == 9
  prov = saved["provenance"]
  assert set(prov["versions"]) == {"python", "jax", "jaxlib", "flax", "optax", "numpy"}
  assert prov["versions"]["jax"] == jax.__version__
  assert prov["date"][:4].isdigit() and "command" in prov and "git_commit" in prov
  assert saved["train_seconds"] > 0 and saved["num_train"] == 2173


def test_main_and_encode_import_together():
  """Flags are defined by the commands, not on import: no DuplicateFlagError."""
  proc = subprocess.run(
      [sys.executable, "-c", "import hashjax.main, hashjax.encode; "
       "from absl import flags; hashjax.main.define_flags(); "
       "hashjax.encode.define_flags(); print('ok')"],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def _baseline_config(method="cvh", bits=16):
  sys.path.insert(0, os.path.join(ROOT, "configs"))
  try:
    import baseline_wikipedia  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  return baseline_wikipedia.get_config(f"method={method},bits={bits}")


def test_train_and_evaluate_then_encode_cli(tmp_path):
  config = _baseline_config()
  workdir = str(tmp_path / "run")
  summary = experiment.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert saved["results"] == summary["results"]
  assert saved["num_query"] == 693 and saved["num_database"] == 2173
  # Codes re-made from the saved model by the encode CLI path give the saved mAP.
  ckpt = os.path.join(workdir, "model.npz")
  q = encode_cli.encode_split(config, ckpt, "query", "image")
  db = encode_cli.encode_split(config, ckpt, "database", "text")
  assert q["codes"].dtype == np.int8 and set(np.unique(q["codes"])) <= {-1, 1}
  assert q["codes"].shape == (693, 16) and int(q["bits"]) == 16
  want = numpy_map(q["codes"].astype(np.float64), db["codes"].astype(np.float64),
                   q["labels"].astype(np.float64), db["labels"].astype(np.float64))
  np.testing.assert_allclose(saved["results"]["image->text"]["map"], want, atol=1e-6)
  with pytest.raises(ValueError, match="unknown modality"):
    encode_cli.encode_split(config, ckpt, "query", "audio")
  other = _baseline_config(method="cmfh")
  with pytest.raises(ValueError, match="holds a 'cvh' model"):
    encode_cli.load_encoder(other, ckpt)


def test_main_cli_writes_results(tmp_path):
  workdir = tmp_path / "cli"
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  proc = subprocess.run(
      [sys.executable, "-m", "hashjax.main",
       "--config=" + os.path.join(ROOT, "configs", "baseline_wikipedia.py") +
       ":method=cvh,bits=8", f"--workdir={workdir}"],
      capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| image->text |" in proc.stdout
  res = json.loads((workdir / "results.json").read_text())
  assert res["method"] == "cvh" and res["bits"] == 8
  assert 0.0 < res["results"]["text->image"]["map"] <= 1.0
  bad = subprocess.run(
      [sys.executable, "-m", "hashjax.main",
       "--config=" + os.path.join(ROOT, "configs", "baseline_wikipedia.py") +
       ":method=cvh,bitz=8"],
      capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
  assert bad.returncode != 0 and "unknown config argument 'bitz'" in bad.stderr


def test_rreh_feature_file_config_end_to_end(tmp_path):
  # A MIRFlickr-layout feature file (FAll / YAll / LAll) written here, run through
  # configs/rreh_mirflickr.py; the table is checked against the NumPy mAP loop.
  rs = np.random.RandomState(0)
  n, c = 300, 24
  labels = (rs.rand(n, c) < 0.02).astype(np.uint8)
  labels[np.arange(n), rs.randint(0, c, n)] = 1
  image = labels @ rs.randn(c, 20) + 0.3 * rs.randn(n, 20)
  text = labels @ rs.randn(c, 12) + 0.3 * rs.randn(n, 12)
  path = tmp_path / "mirflickr.npz"
  np.savez(path, FAll=image.astype(np.float32), YAll=text.astype(np.float32),
           LAll=labels)
  sys.path.insert(0, os.path.join(ROOT, "configs"))
  try:
    import rreh_mirflickr  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  config = rreh_mirflickr.get_config(
      f"path={path},num_query=50,num_train=200,bits=16,num_anchors=40,iterations=3")
  workdir = str(tmp_path / "run")
  summary = experiment.train_and_evaluate(config, workdir)
  assert summary["num_query"] == 50 and summary["num_database"] == 250
  assert summary["details"]["num_paired"] == 20
  ckpt = os.path.join(workdir, "model.npz")
  q = encode_cli.encode_split(config, ckpt, "query", "image")
  db = encode_cli.encode_split(config, ckpt, "database", "text")
  want = numpy_map(q["codes"].astype(np.float64), db["codes"].astype(np.float64),
                   q["labels"].astype(np.float64), db["labels"].astype(np.float64))
  np.testing.assert_allclose(summary["results"]["image->text"]["map"], want, atol=1e-6)
  chance = float(np.mean(q["labels"].astype(int) @ db["labels"].T.astype(int) > 0))
  assert want > 2 * chance   # labels drive both views: far above chance
