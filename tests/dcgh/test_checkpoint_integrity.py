"""Damaged and mismatched checkpoints of a REAL short DCGH run (files damaged on disk).

One run of configs/dcgh_wikipedia_features.py (runlocal, tiny MLP) stops after step
8 with checkpoints at steps 4 and 8 and a best tree at step 8. Each test copies that
workdir, damages or mismatches it, and reruns training or the encoder on it.
"""

import glob
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from hashjax import checkpoint as ckpt_lib
from hashjax.configs_io import load_config_file
from hashjax.dcgh import export, train

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _config(**over):
  c = load_config_file(str(ROOT / "configs" / "dcgh_wikipedia_features.py"),
                       "runlocal,bits=16")
  c.num_epochs = 2                  # 8 steps an epoch (1956 items, batch 256)
  c.input.batch_size = 256
  c.input.eval_batch_size = 1024
  c.model.hidden = (32,)
  c.log_every_steps = 1
  c.checkpoint.every_steps = 4
  c.progress_bar = False
  for k, v in over.items():
    if isinstance(v, dict):
      c[k].update(v)
    else:
      c[k] = v
  return c


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}


def _data_files(step_dir):
  """The array data files of one Orbax step, largest first."""
  files = glob.glob(os.path.join(step_dir, "default", "**", "d", "*"), recursive=True)
  return sorted(files, key=os.path.getsize, reverse=True)


def _flip_bit(path, byte=None, bit=2):
  raw = bytearray(pathlib.Path(path).read_bytes())
  raw[len(raw) // 2 if byte is None else byte] ^= 1 << bit
  pathlib.Path(path).write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("dcgh") / "base")
  assert train.train_and_evaluate(_config(stop_after_steps=8), wd)["stopped_at"] == 8
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["4", "8"]
  for step_dir in ("checkpoints/4", "checkpoints/8", "best/8"):
    assert ckpt_lib.verify_step(os.path.join(wd, step_dir)) is None, step_dir
  return wd


def _copy(base, tmp_path, name="run"):
  dst = str(tmp_path / name)
  shutil.copytree(base, dst)
  return dst


@pytest.mark.parametrize("damage", ["delete_file", "flip_bit"])
def test_damaged_latest_step_resumes_from_previous(base, tmp_path, capfd, damage):
  wd = _copy(base, tmp_path)
  victim = _data_files(os.path.join(wd, "checkpoints", "8"))[0]
  if damage == "delete_file":
    os.remove(victim)
  else:
    _flip_bit(victim)
  capfd.readouterr()
  res = train.train_and_evaluate(_config(stop_after_steps=8), wd)
  err = capfd.readouterr().err
  warning = [ln for ln in err.splitlines() if "damaged" in ln]
  assert len(warning) == 1, err
  rel = os.path.relpath(victim, os.path.join(wd, "checkpoints", "8"))
  assert "checkpoint step 8 is damaged" in warning[0] and rel in warning[0]
  assert ("is missing" if damage == "delete_file" else "SHA-256 mismatch") in warning[0]
  assert "Traceback" not in err
  # Resumed from step 4 and retrained 5..8: the same losses as the undamaged run.
  assert res["stopped_at"] == 8
  assert os.path.isdir(os.path.join(wd, "damaged", "checkpoints_8"))
  want, got = _losses(base), _losses(wd)
  assert sorted(got) == list(range(1, 9))
  np.testing.assert_allclose([got[s] for s in range(5, 9)],
                             [want[s] for s in range(5, 9)], rtol=1e-5)
  assert ckpt_lib.verify_step(os.path.join(wd, "checkpoints", "8")) is None  # re-saved


def test_refuse_names_the_step_and_moves_nothing(base, tmp_path):
  wd = _copy(base, tmp_path)
  _flip_bit(_data_files(os.path.join(wd, "checkpoints", "8"))[-1], byte=0, bit=0)
  with pytest.raises(ckpt_lib.CheckpointDamagedError,
                     match=r"checkpoint step 8 .* is damaged: file .* changed"):
    train.train_and_evaluate(
        _config(stop_after_steps=8, checkpoint=dict(on_damage="refuse")), wd)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["4", "8"]
  assert not os.path.exists(os.path.join(wd, "damaged"))


def test_every_step_damaged_is_an_error(base, tmp_path):
  wd = _copy(base, tmp_path)
  for step in ("4", "8"):
    os.remove(_data_files(os.path.join(wd, "checkpoints", step))[0])
  with pytest.raises(ckpt_lib.CheckpointDamagedError, match="every checkpoint under"):
    train.train_and_evaluate(_config(stop_after_steps=8), wd)


@pytest.mark.parametrize("over, match", [
    (dict(bits=32), r"config.bits is 32 but the checkpoint was trained with bits=16"),
    (dict(model=dict(hidden=(48,))),
     r"config.model.hidden=\(48,\).*params/\S+: checkpoint \(32, 16\), "
     r"config \(48, 16\)"),
])
def test_config_and_checkpoint_disagree(base, tmp_path, over, match):
  wd = _copy(base, tmp_path)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=match):
    train.train_and_evaluate(_config(stop_after_steps=8, **over), wd)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["4", "8"]  # untouched


def test_damaged_best_tree_is_named_by_the_encoder(base, tmp_path):
  wd = _copy(base, tmp_path)
  _flip_bit(_data_files(os.path.join(wd, "best", "8"))[0])
  with pytest.raises(ckpt_lib.CheckpointDamagedError,
                     match=r"best checkpoint step 8 .* is damaged"):
    export.load_best_params(_config(), wd)
  with pytest.raises(ValueError, match="config.bits is 32 but .* holds a 16-bit"):
    export.load_best_params(_config(bits=32), _copy(base, tmp_path, "other"))


def test_nan_before_any_checkpoint_says_so(tmp_path):
  with pytest.raises(FloatingPointError,
                     match=r"after step 1: .* no checkpoint was saved yet\.$"):
    train.train_and_evaluate(_config(debug=dict(nan_at_step=0)), str(tmp_path / "n"))


def test_step_without_manifest_restores_with_a_warning(base, tmp_path, capfd):
  # As after a kill between finalising and sealing, or a checkpoint of older hashjax.
  wd = _copy(base, tmp_path)
  os.remove(os.path.join(wd, "checkpoints", "8", ckpt_lib.MANIFEST))
  capfd.readouterr()
  assert train.train_and_evaluate(_config(stop_after_steps=10), wd)["stopped_at"] == 10
  err = capfd.readouterr().err
  assert "checkpoint step 8 has no checksum manifest" in err and "damaged" not in err
  losses = _losses(wd)
  assert sorted(losses) == list(range(1, 11))
  assert losses[8] == _losses(base)[8]          # steps 1..8 kept, not retrained
  assert ckpt_lib.verify_step(os.path.join(wd, "checkpoints", "10")) is None


def test_resume_at_the_stop_step_trains_nothing(base, tmp_path):
  wd = _copy(base, tmp_path)
  assert train.train_and_evaluate(_config(stop_after_steps=8), wd)["stopped_at"] == 8
  assert sorted(_losses(wd)) == list(range(1, 9))   # no step 9 (it used to run one)
  assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["4", "8"]
