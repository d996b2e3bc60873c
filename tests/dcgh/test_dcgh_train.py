"""DCGH training loop: smoke run, jit == pmap, exact resume, NaN stop, input pipeline."""

import json
import os
import pathlib

import jax
import numpy as np
import retrieval_reference
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from hashjax import methods
from hashjax.configs_io import load_config_file
from hashjax.dcgh import export
from hashjax.dcgh import input_pipeline as pp
from hashjax.dcgh import train

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _config(name, arg="runlocal"):
  return load_config_file(ROOT / "configs" / f"{name}.py", arg)


def _tiny(**over):
  """Wikipedia features, tiny MLP, 2 epochs of 8 steps (batch 256 of 1956 items)."""
  c = _config("dcgh_wikipedia_features", "runlocal,bits=16")
  c.num_epochs = 2
  c.input.batch_size = 256
  c.input.eval_batch_size = 1024
  c.model.hidden = (32,)
  c.log_every_steps = 1
  c.eval_every_epochs = 1
  c.checkpoint.every_steps = 4
  c.progress_bar = False
  c.update(over)
  return c


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in _rows(workdir) if r["kind"] == "train"}


_numpy_map = retrieval_reference.mean_ap   # the shared NumPy reference


def _restore(path):
  mgr = ocp.CheckpointManager(path)
  step = mgr.latest_step()
  out = step, mgr.restore(step, args=ocp.args.StandardRestore())
  mgr.close()
  return out


def test_resume_is_exact_and_smoke(tmp_path, capsys):
  full, part = str(tmp_path / "full"), str(tmp_path / "part")
  res = train.train_and_evaluate(_tiny(), full)
  # Smoke: files, result structure, codes beat chance (10 balanced classes: ~0.1).
  for name in ("config.json", "metrics.jsonl", "results.json", "checkpoints", "best"):
    assert os.path.exists(os.path.join(full, name)), name
  det = res["details"]
  assert det["total_steps"] == 16 and res["num_train"] == 1956
  assert det["selected"]["step"] in (8, 16)
  assert set(det["best_on_query"]) == {"i2t", "t2i"}
  assert res["results"]["image->text"]["map"] > 0.12
  # The shared results schema: both directions, the PR curve, provenance.
  saved = json.loads(pathlib.Path(full, "results.json").read_text())
  assert saved["schema"] == "hashjax.results/1" and saved["method"] == "dcgh"
  assert saved["evaluation"]["directions"] == ["image->text", "text->image"]
  assert len(saved["results"]["text->image"]["pr_curve"]["recall"]) == 17
  assert saved["provenance"]["versions"]["flax"]
  losses = _losses(full)
  assert sorted(losses) == list(range(1, 17)) and all(np.isfinite(list(losses.values())))
  # Model selection: the best/ checkpoint is the evaluation with the best validation mAP.
  evals = [r for r in _rows(full) if r["kind"] == "eval"]
  assert [r["step"] for r in evals] == [8, 16]
  best_val = max(r["val/mean_map"] for r in evals)
  assert det["selected"]["validation"]["mean_map"] == best_val
  assert export.load_best_params(_tiny(), full)[1] is not None
  # Logged learning rates: BertAdam warmup_cosine on x = (step - 1) / 16, hand-written.
  x = np.arange(16) / 16
  f = np.where(x < 0.1, x / 0.1, 0.5 * (1 + np.cos(np.pi * x)))
  lrs = [r["lr_head"] for r in _rows(full) if r["kind"] == "train"]
  np.testing.assert_allclose(lrs, 1e-3 * f, rtol=1e-5, atol=1e-12)
  # Codes written by encode_split reproduce the selected query mAP (NumPy mAP here).
  q = export.encode_split(_tiny(), full, "query", "image")
  d = methods.get("dcgh").encode_split(_tiny(), full, "database", "text")   # registry
  assert q["codes"].shape == (693, 16) and d["codes"].shape == (2173, 16)
  assert set(np.unique(q["codes"])) <= {-1, 1} and str(d["modality"]) == "text"
  np.testing.assert_allclose(
      _numpy_map(q["codes"], d["codes"], q["labels"], d["labels"]),
      res["results"]["image->text"]["map"], rtol=1e-6)
  # Registry save / load round trip of the best encoder.
  dcgh = methods.get("dcgh")
  enc = dcgh.load(_tiny(), full)
  dcgh.save(str(tmp_path / "copy"), enc)
  x = np.random.RandomState(0).randn(5, 10).astype(np.float32)   # LDA text features
  np.testing.assert_array_equal(dcgh.encode(dcgh.load(_tiny(), str(tmp_path / "copy")),
                                            x, 1), dcgh.encode(enc, x, 1))
  # results.json "codes": the database text codes' balance and distinct rows (NumPy).
  text = res["codes"]["text"]
  assert text["distinct_codes"] == len({tuple(r) for r in d["codes"].tolist()})
  np.testing.assert_allclose(text["bit_balance"], d["codes"].mean(0), atol=1e-4)
  assert not text["collapsed"] and res["codes"]["image"]["num_items"] == 2173

  stopped = train.train_and_evaluate(_tiny(stop_after_steps=6), part)
  assert stopped == {"stopped_at": 6, "total_steps": 16}
  assert _restore(os.path.join(part, "checkpoints"))[0] == 6
  res2 = train.train_and_evaluate(_tiny(), part)   # resumes at step 6
  s_full, st_full = _restore(os.path.join(full, "checkpoints"))
  s_part, st_part = _restore(os.path.join(part, "checkpoints"))
  assert s_full == s_part == 16
  jax.tree_util.tree_map(np.testing.assert_array_equal, st_full, st_part)
  assert _losses(part) == losses
  assert res2["details"]["selected"] == det["selected"]
  assert res2["results"] == res["results"]
  # Rerunning the finished run re-reports it (same numbers, printed table) and keeps
  # the training time of the run that trained.
  again = train.train_and_evaluate(_tiny(), full)
  assert again["results"] == res["results"]
  assert again["train_seconds"] == res["train_seconds"]
  assert json.loads(pathlib.Path(full, "results.json").read_text())[
      "train_seconds"] == res["train_seconds"]
  assert "| image->text |" in capsys.readouterr().out


def test_pmap_matches_jit(tmp_path):
  a, b = str(tmp_path / "jit"), str(tmp_path / "pmap")
  cfg = _tiny(num_epochs=1)
  cfg.model.dropout = 0.0   # dropout masks differ between a global and a per-device draw
  train.train_and_evaluate(cfg, a)
  cfg.parallelism = "pmap"
  train.train_and_evaluate(cfg, b)
  la, lb = _losses(a), _losses(b)
  assert sorted(la) == sorted(lb) == list(range(1, 9))
  np.testing.assert_allclose([lb[s] for s in sorted(lb)], [la[s] for s in sorted(la)],
                             rtol=1e-4)
  _, sa = _restore(os.path.join(a, "checkpoints"))
  _, sb = _restore(os.path.join(b, "checkpoints"))
  jax.tree_util.tree_map(
      lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5), sa, sb)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
  wd = str(tmp_path / "nan")
  cfg = _tiny()
  cfg.model.dtype = "bfloat16"   # bf16 compute, float32 parameters and optimiser state
  cfg.debug.nan_at_step = 5   # the 6th batch (steps count from 0)
  # 1-based like metrics.jsonl: the 6th batch is "step 6"; the save after step 4 holds.
  with pytest.raises(FloatingPointError,
                     match="after step 6: .* the last good checkpoint is step 4"):
    train.train_and_evaluate(cfg, wd)
  step, state = _restore(os.path.join(wd, "checkpoints"))
  assert step == 4
  for leaf in jax.tree_util.tree_leaves(state):
    assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
  assert {np.asarray(x).dtype for x in jax.tree_util.tree_leaves(state["params"])} == {
      np.dtype(np.float32)}
  assert all(np.isfinite(list(_losses(wd).values())))   # steps 1..5 trained in bf16


def test_batch_not_divisible_by_devices_raises(tmp_path):
  assert jax.device_count() == 8
  with pytest.raises(ValueError, match="not divisible by the device count 8"):
    train.train_and_evaluate(_tiny(input=dict(batch_size=12, eval_batch_size=16)),
                             str(tmp_path))


# ----------------------------------------------------------------------------- pipeline


def test_batches_cover_each_epoch_once_and_pad():
  src = pp.FeatureSource(np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3)),
                         np.zeros((10, 2)), np.eye(2, dtype=np.uint8)[np.arange(10) % 2])
  batches = list(pp.train_batches(src, batch_size=4, num_epochs=2, seed=3, num_threads=0))
  assert len(batches) == 6   # ceil(10 / 4) = 3 steps per epoch
  for e in range(2):
    ep = batches[3 * e:3 * e + 3]
    seen = np.concatenate([b["index"][b["mask"]] for b in ep])
    assert sorted(seen.tolist()) == list(range(10))
    assert ep[2]["mask"].tolist() == [True, True, False, False]
    np.testing.assert_array_equal(ep[2]["image"][:, 0], ep[2]["index"].astype(np.float32))
  assert [int(b["step"]) for b in batches] == list(range(6))
  # A resumed stream replays the same batches.
  again = list(pp.train_batches(src, batch_size=4, num_epochs=2, seed=3, start_step=4,
                                num_threads=0))
  for x, y in zip(again, batches[4:]):
    np.testing.assert_array_equal(x["index"], y["index"])


def test_preprocess_resize_crop_and_squash():
  # A 60 x 30 (w x h) image: left third red, middle green, right blue.
  arr = np.zeros((30, 60, 3), np.uint8)
  arr[:, :20, 0] = 255
  arr[:, 20:40, 1] = 255
  arr[:, 40:, 2] = 255
  im = Image.fromarray(arr)
  mean, std = np.array(pp.CLIP_MEAN), np.array(pp.CLIP_STD)
  tr = pp.preprocess_image(im, image_size=15, train=True)
  assert tr.dtype == np.float32
  tr = tr * std + mean
  ev = pp.preprocess_image(im, image_size=15, train=False) * std + mean
  assert tr.shape == ev.shape == (15, 15, 3)
  # Train: shorter side 30 -> 15, width 60 -> 30, centre crop = the middle (green) half.
  np.testing.assert_allclose(tr[:, 7], np.broadcast_to([0, 1, 0], (15, 3)), atol=0.02)
  assert tr[:, 0, 0].mean() > 0.3 and tr[:, 14, 2].mean() > 0.3   # red/blue edges
  # Eval: the whole width squashed: red at the left, blue at the right.
  np.testing.assert_allclose(ev[:, 1], np.broadcast_to([1, 0, 0], (15, 3)), atol=0.02)
  np.testing.assert_allclose(ev[:, 13], np.broadcast_to([0, 0, 1], (15, 3)), atol=0.02)


def test_pick_captions_seeded():
  caps = [("a", "b", "c"), ("d",), ("e", "f")]
  idx = np.array([0, 1, 2, 0])
  assert pp.pick_captions(caps, idx, seed=0, step=3, train=False) == ["a", "d", "e", "a"]
  x = pp.pick_captions(caps, idx, seed=0, step=3, train=True)
  assert x == pp.pick_captions(caps, idx, seed=0, step=3, train=True)
  assert x[1] == "d" and x[0] in caps[0] and x[2] in caps[2]
  draws = {tuple(pp.pick_captions(caps, idx, seed=0, step=s, train=True))
           for s in range(20)}
  assert len(draws) > 5


def test_pick_captions_of_a_host_share_match_the_global_draw():
  """Multi-host: each process's rows get the captions one process gives those rows."""
  caps = [tuple(f"{i}.{j}" for j in range(5)) for i in range(8)]
  idx = np.array([3, 0, 7, 5, 1, 6, 2, 4])
  whole = pp.pick_captions(caps, idx, seed=1, step=2, train=True)
  # Reference: the global draw by hand, then each half of the batch.
  u = np.random.default_rng([1, 1, 2]).random(8)
  assert whole == [caps[i][int(x * 5)] for i, x in zip(idx, u)]
  halves = [pp.pick_captions(caps, idx[p * 4:(p + 1) * 4], seed=1, step=2, train=True,
                             offset=p * 4, global_size=8) for p in range(2)]
  assert halves[0] + halves[1] == whole
  assert pp.pick_captions(caps, idx[4:], seed=1, step=2, train=True) != whole[4:]


def test_check_global_batch():
  assert pp.check_global_batch(16, 8) == 16
  with pytest.raises(ValueError, match="not divisible"):
    pp.check_global_batch(12, 8)


def test_image_text_path_standard_layout(tmp_path):
  """configs/dcgh_mirflickr.py:runlocal on index/caption/label.mat made from real JPEGs."""
  import scipy.io

  from hashjax.data import coco_mini_root, load_coco

  coco = load_coco(coco_mini_root(), ["train2017", "val2017"])
  root = tmp_path / "mirflickr"
  root.mkdir()
  names = np.array([os.path.relpath(p, ROOT) for p in coco.image_paths])
  scipy.io.savemat(root / "index.mat", {"index": names})
  scipy.io.savemat(root / "caption.mat", {"caption": [[c[0]] for c in coco.captions]})
  scipy.io.savemat(root / "label.mat", {"category": coco.labels})
  cfg = _config("dcgh_mirflickr", f"runlocal,bits=16,root={root},image_root={ROOT}")
  cfg.data.update(num_query=6, num_train=12)
  cfg.validation.num_items = 4
  cfg.input.update(batch_size=8, eval_batch_size=8)
  cfg.num_epochs = 1
  cfg.progress_bar = False
  cfg.model.vision.layers = 1   # one block per tower: compile time
  cfg.model.text = dict(layers=1)
  res = train.train_and_evaluate(cfg, str(tmp_path / "wd"))
  assert (res["num_train"], res["details"]["num_validation"], res["num_query"],
          res["num_database"]) == (12, 4, 6, 18)
  assert res["details"]["total_steps"] == 2
  assert 0 < res["results"]["image->text"]["map"] <= 1
  assert os.path.isdir(tmp_path / "wd" / "tokenizer")
  # encode_split (the encode CLI; load_encoder inside): JPEGs + first captions from
  # the saved tokenizer, reproducing the query mAP.
  q = export.encode_split(cfg, str(tmp_path / "wd"), "query", "text")
  d = export.encode_split(cfg, str(tmp_path / "wd" / "best"), "database", 0)
  assert q["codes"].shape == (6, 16) and d["codes"].shape == (18, 16)
  assert set(np.unique(q["codes"])) <= {-1, 1}
  np.testing.assert_allclose(
      _numpy_map(q["codes"], d["codes"], q["labels"], d["labels"]),
      res["results"]["text->image"]["map"], rtol=1e-6)
  with pytest.raises(ValueError, match="tokenizer"):
    export.encode_split(cfg, str(tmp_path), "query", "text")


def test_metric_writer_tensorboard_events(tmp_path):
  """With tensorboardX importable, rows also become TensorBoard scalars (TFRecords)."""
  pytest.importorskip("tensorboardX")
  import struct

  from tensorboardX.proto import event_pb2

  # pylint: disable-next=protected-access
  w = train._MetricWriter(str(tmp_path), resume_step=0, tensorboard=True)
  w.write({"kind": "train", "step": 3, "epoch": 0.5, "loss": 1.25, "lr_head": 1e-3})
  w.write({"kind": "eval", "step": 6, "epoch": 1, "val/mean_map": 0.5})
  w.close()
  [name] = os.listdir(tmp_path / "tensorboard")
  data = (tmp_path / "tensorboard" / name).read_bytes()
  scalars, pos = {}, 0
  while pos < len(data):   # TFRecord: u64 length, u32 crc, payload, u32 crc
    (n,) = struct.unpack("<Q", data[pos:pos + 8])
    event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
    pos += 16 + n
    for v in event.summary.value:
      scalars[(v.tag, event.step)] = v.simple_value
  assert scalars == pytest.approx({("train/epoch", 3): 0.5, ("train/loss", 3): 1.25,
                                   ("train/lr_head", 3): 1e-3, ("eval/epoch", 6): 1.0,
                                   ("val/mean_map", 6): 0.5})
  with open(tmp_path / "metrics.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [3, 6]
