"""validate.py (every config field, before work) and diagnostics.py (code health)."""

import os

import numpy as np
import pytest

from hashjax import diagnostics, validate
from hashjax.configs_io import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name, arg=None):
  return load_config_file(os.path.join(ROOT, "configs", f"{name}.py"), arg)


@pytest.mark.parametrize("name, arg", [
    ("rreh_wikipedia", None), ("rreh_uci", None), ("baseline_wikipedia", None),
    ("dcgh_wikipedia_features", "runlocal"), ("dcgh_coco", None),
    ("dcgh_coco_mini", None), ("dcgh_mirflickr", "runlocal")])
def test_shipped_configs_are_valid(name, arg):
  validate.validate_config(_config(name, arg))


@pytest.mark.parametrize("field, value, match", [
    ("stop_after_steps", -3, "stop_after_steps must be >= 0, got -3"),
    ("optim.tower_lr", -1e-3, "optim.tower_lr must be >= 0"),
    ("optim.head_lr", float("nan"), "optim.head_lr must be a finite number"),
    ("eval_every_epochs", 0, "eval_every_epochs must be >= 1"),
    ("input.batch_size", 0, "input.batch_size must be >= 1"),
    ("input.eval_batch_size", 2.5, "input.eval_batch_size must be an integer"),
    ("bits", True, "bits must be an integer"),
    ("optim.warmup", 1.5, r"optim.warmup must be in \[0, 1\]"),
    ("model.hidden", (64, 0), "model.hidden must hold integers >= 1"),
    ("checkpoint.keep", 0, "checkpoint.keep must be >= 1"),
    ("progress_bar", "yes", "progress_bar must be True or False"),
])
def test_dcgh_bad_fields(field, value, match):
  # A plain dict: ConfigDict's own type checks would refuse some of these values,
  # but configs also come as dicts through the Python API.
  c = _config("dcgh_wikipedia_features", "runlocal").to_dict()
  validate.validate_config(c)
  node, _, leaf = field.rpartition(".")
  target = c
  for part in filter(None, node.split(".")):
    target = target[part]
  target[leaf] = value
  with pytest.raises(ValueError, match=match):
    validate.validate_config(c)


@pytest.mark.parametrize("arg, value, match", [
    ("views=all", (1, 1, 1, 0, 1, 1), r"config.rreh.view_weights must be > 0"),
    ("views=all", (1, 1, -1, 1, 1, 1), r"config.rreh.view_weights must be > 0"),
    ("views=all", (1, 1, 1), "config.rreh.view_weights has 3 weights but there are 6"),
    (None, "uniform", "config.rreh.view_weights must be None, 'auto'"),
])
def test_rreh_bad_view_weights(arg, value, match):
  c = _config("rreh_uci", arg).to_dict()
  validate.validate_config(c)
  c["rreh"]["view_weights"] = value
  with pytest.raises(ValueError, match=match):
    validate.validate_config(c)


def test_rreh_view_weights_argument():
  c = _config("rreh_uci", "views=all,view_weights=1+1+1+0.2+1+1")
  assert c.rreh.view_weights == (1.0, 1.0, 1.0, 0.2, 1.0, 1.0)
  validate.validate_config(c)
  assert _config("rreh_uci", "views=all,view_weights=auto").rreh.view_weights == "auto"
  assert _config("rreh_uci").rreh.view_weights is None
  with pytest.raises(ValueError, match="needs config.rreh.select=True"):
    validate.validate_config(_config("rreh_uci", "view_weights=auto,select=false"))
  with pytest.raises(ValueError, match="numbers joined by"):
    _config("rreh_uci", "view_weights=1+x")


def test_check_workdir(tmp_path):
  validate.check_workdir(None)
  validate.check_workdir(str(tmp_path / "new" / "dir"))
  assert os.path.isdir(tmp_path / "new" / "dir")
  assert os.listdir(tmp_path / "new" / "dir") == []   # the probe file is gone
  (tmp_path / "f").write_text("x")
  with pytest.raises(ValueError, match="not a directory"):
    validate.check_workdir(str(tmp_path / "f"))
  with pytest.raises(ValueError, match="not writable"):
    validate.check_workdir("/proc/hashjax_no_such_dir")


def test_code_stats_hand_worked():
  codes = np.array([[1, 1, -1], [1, -1, -1], [1, 1, -1], [1, -1, 1]], np.int8)
  s = diagnostics.code_stats(codes)
  # bit 0: all +1 -> 1; bit 1: two +1 two -1 -> 0; bit 2: one +1 three -1 -> -0.5
  assert s["bit_balance"] == [1.0, 0.0, -0.5]
  assert s["mean_abs_bit_balance"] == 0.5
  assert s["distinct_codes"] == 3 and s["num_items"] == 4 and s["bits"] == 3
  assert s["collapsed"] is False


def test_collapsed_codes_warn_once(capsys):
  same = np.ones((50, 16), np.int8)
  rs = np.random.RandomState(0)
  fine = np.where(rs.rand(50, 16) < 0.5, 1, -1).astype(np.int8)
  out = diagnostics.codes_report({"image": same, "text": fine})
  assert out["image"]["collapsed"] and out["image"]["distinct_codes"] == 1
  assert not out["text"]["collapsed"]
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "image codes collapsed: 1 distinct code(s) over 50" in err[0]
  # Nearly constant bits (>97.5% +1 on average) also count as collapsed.
  mostly = np.ones((1000, 8), np.int8)
  mostly[:10] = -1
  assert diagnostics.code_stats(mostly)["collapsed"]


def test_rreh_on_a_constant_view_is_refused_before_the_fit(tmp_path):
  """A constant text view carries no information: RREH refuses it with one message
  naming the view (it used to train to one code for every item and exit 0)."""
  from hashjax import experiment  # pylint: disable=g-import-not-at-top

  rs = np.random.RandomState(0)
  n, c = 300, 24
  labels = np.zeros((n, c), np.uint8)
  labels[np.arange(n), rs.randint(0, c, n)] = 1
  image = labels @ rs.randn(c, 20) + 0.3 * rs.randn(n, 20)
  text = np.ones((n, 12))                      # degenerate: the same for every item
  path = tmp_path / "features.npz"
  np.savez(path, FAll=image.astype(np.float32), YAll=text.astype(np.float32),
           LAll=labels)
  config = _config("rreh_mirflickr",
                   f"path={path},num_query=50,num_train=200,bits=16,num_anchors=40,"
                   "iterations=2,select=false")
  config.semi_paired.paired_ratio = 1.0
  with pytest.raises(ValueError, match=r"the 'text' view of the paired training items "
                     "is constant"):
    experiment.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "results.json").exists()
