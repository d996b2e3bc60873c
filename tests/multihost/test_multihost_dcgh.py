"""DCGH on 2 real processes x 2 CPU devices against 1 process x 4 devices.

Every run is the documented launch line (experiments/CLUSTER.md, "localhost
rehearsal"), started by :mod:`tests.multihost.launch` as separate OS processes joined
by ``jax.distributed`` on 127.0.0.1. Results are compared with the single-process run
through the files the runs write (results.json, the final Orbax checkpoint), read back
here with plain NumPy.
"""

import collections
import json
import os
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.multihost import launch

FEATURES = "configs/dcgh_wikipedia_features.py:runlocal=True"   # 93 steps, ckpt every 20
COCO_MINI = "configs/dcgh_coco_mini.py:runlocal=True"           # 4 steps, 24 JPEGs
TOTAL_STEPS = 93   # ceil(1956 / 64) * 3 epochs


def _main(config, workdir):
  return ["hashjax.main", f"--config={config}", f"--workdir={workdir}"]


def _metrics(results):
  """Validation mAPs of the selected step and every scalar query metric."""
  out = {f"validation/{k}": v
         for k, v in results["details"]["selected"]["validation"].items()}
  out.update({f"query/{d}/{k}": v for d, r in results["results"].items()
              for k, v in r.items() if isinstance(v, float)})
  return out


def _read_results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _checkpoint(workdir, step):
  """The training state saved at ``step``, as a flat dict of NumPy arrays.

  Restored as host NumPy arrays (not with the saved 4-device shardings), so it reads
  back in this 1-device test process.
  """
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  ck = ocp.PyTreeCheckpointer()
  meta = ck.metadata(path)
  meta = getattr(meta, "item_metadata", meta)
  meta = getattr(meta, "tree", meta)
  tree = ck.restore(path, restore_args=jax.tree_util.tree_map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta))
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _run(tmp, name, config, procs, devs, **kw):
  work = str(tmp / name)
  pids = launch.run(_main(config, work), num_processes=procs, devices_per_process=devs,
                    log_dir=str(tmp / f"logs_{name}"), timeout=400, **kw)
  return work, pids


@pytest.fixture(scope="module")
def features_runs(tmp_path_factory):
  """Workdirs of the frozen-feature run on 2 processes x 2 devices and 1 x 4."""
  tmp = tmp_path_factory.mktemp("dcgh_features")
  return {"p2": _run(tmp, "p2", FEATURES, 2, 2)[0], "p1": _run(tmp, "p1", FEATURES, 1, 4)[0]}


@pytest.mark.slow
def test_two_processes_match_one_process(features_runs):
  """Same metrics (1e-4) and final parameters / optimiser state (float rounding)."""
  runs = {k: _read_results(w) for k, w in features_runs.items()}
  a, b = _metrics(runs["p2"]), _metrics(runs["p1"])
  assert a.keys() == b.keys() and a
  for k in a:
    assert abs(a[k] - b[k]) <= 1e-4, (k, a[k], b[k])
  assert runs["p2"]["num_query"] == 693 and runs["p2"]["num_database"] == 2173
  assert runs["p2"]["details"]["total_steps"] == runs["p1"]["details"]["total_steps"] == TOTAL_STEPS
  s2 = _checkpoint(features_runs["p2"], TOTAL_STEPS)
  s1 = _checkpoint(features_runs["p1"], TOTAL_STEPS)
  assert s2.keys() == s1.keys() and len(s2) > 10
  assert int(s2["['step']"]) == TOTAL_STEPS
  for k in s2:   # the two runs reduce over devices in different orders: ~1e-7 apart
    np.testing.assert_allclose(s2[k], s1[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # The run trained: parameters moved far beyond that tolerance from the start.
  assert np.abs(s2["['params']['image_head']['dense']['kernel']"]).max() > 0.05


@pytest.mark.slow
def test_sigkill_both_processes_then_rerun_resumes_bit_identically(
    features_runs, tmp_path):
  """Kill -9 both processes once a checkpoint exists; the same command finishes the run."""
  work = str(tmp_path / "killed")
  args = _main(FEATURES, work)
  logs = str(tmp_path / "logs_killed")
  procs = launch.start(args, num_processes=2, devices_per_process=2, log_dir=logs)
  first = os.path.join(work, "checkpoints", "20", "commit_success.txt")
  deadline = time.monotonic() + 400
  try:
    while not os.path.exists(first):
      assert time.monotonic() < deadline, launch.tails(logs)
      assert all(p.poll() is None for p in procs), launch.tails(logs)
      time.sleep(0.05)
  finally:
    for p in procs:
      p.send_signal(signal.SIGKILL)
  codes = [p.wait(timeout=60) for p in procs]
  assert codes == [-signal.SIGKILL] * 2, codes   # killed, not finished
  assert not os.path.exists(os.path.join(work, "results.json"))

  launch.run(args, num_processes=2, devices_per_process=2,
             log_dir=str(tmp_path / "logs_rerun"), timeout=400)
  resumed, ref = _read_results(work), _read_results(features_runs["p2"])
  assert 20 <= resumed["details"]["resumed_from_step"] < TOTAL_STEPS
  assert ref["details"]["resumed_from_step"] == 0
  for key in ("selected", "history", "best_on_query", "total_steps"):
    assert resumed["details"][key] == ref["details"][key], key   # exact floats
  assert resumed["results"] == ref["results"]
  a, b = _checkpoint(work, TOTAL_STEPS), _checkpoint(features_runs["p2"], TOTAL_STEPS)
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _image_loads(log_dir, pid):
  with open(os.path.join(log_dir, f"image_loads.{pid}.txt")) as f:
    return collections.Counter(line.strip() for line in f if line.strip())


@pytest.mark.slow
def test_coco_mini_two_processes_decode_only_their_share(tmp_path):
  """Image-text path: each process decodes half the images; results match 1 process."""
  out = {}
  for name, procs, devs in (("p2", 2, 2), ("p1", 1, 4)):
    log_dir = tmp_path / f"images_{name}"
    log_dir.mkdir()
    work, pids = _run(tmp_path, name, COCO_MINI, procs, devs,
                      extra_env={"HASHJAX_IMAGE_LOAD_LOG": str(log_dir)})
    out[name] = (_read_results(work), [_image_loads(log_dir, p) for p in pids])
    assert sorted(os.listdir(log_dir)) == sorted(f"image_loads.{p}.txt" for p in pids)
  (r2, (c0, c1)), (r1, (c_single,)) = out["p2"], out["p1"]
  a, b = _metrics(r2), _metrics(r1)
  assert a.keys() == b.keys() and a
  for k in a:
    assert abs(a[k] - b[k]) <= 1e-4, (k, a[k], b[k])
  n_single = sum(c_single.values())
  # Every process decodes one sample image to build the model, then only its half
  # of every global batch (training and evaluation): the two processes together
  # decode exactly what one process decodes, plus the second sample image.
  assert n_single > 40
  assert sum(c0.values()) == sum(c1.values()) == (n_single - 1) // 2 + 1
  extra = (c0 + c1) - c_single
  assert sum(extra.values()) == 1 and not c_single - (c0 + c1)
  assert c0 != c1
