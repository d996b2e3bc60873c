"""Workdirs on object storage: every run file goes through etils.epath.

``gs://`` paths take epath's real fsspec backend; only the storage behind it is
fsspec's in-memory file system registered for the ``gs`` protocol (gcsfs and network
are not available offline). A file written with ``open``/``os`` instead of epath
would land in a local ``gs:/`` folder under the working directory, which the tests
check is never created.
"""

import importlib
import json
import os

import fsspec
import jax
import numpy as np
import pytest
from etils.epath import backend as epath_backend

from fsspec.implementations.memory import MemoryFileSystem

from hashjax import encode as encode_cli
from hashjax import experiment, fileio
from hashjax import index as hindex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _MemoryGCS(MemoryFileSystem):
  protocol = ("gs", "gcs")
  root_marker = "/"

  def __init__(self, *args, finalize_on_close=None, **kwargs):
    del finalize_on_close   # an option gcsfs takes (epath passes it)
    super().__init__(*args, **kwargs)


def _clear_epath_cache():
  # pylint: disable-next=protected-access
  epath_backend.fsspec_backend._get_filesystem.cache_clear()


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  # fsspec.registry (the attribute) is a read-only view of the module's _registry.
  # pylint: disable-next=protected-access
  registry = importlib.import_module("fsspec.registry")._registry
  saved = {p: registry.get(p) for p in ("gs", "gcs")}
  for p in ("gs", "gcs"):
    fsspec.register_implementation(p, _MemoryGCS, clobber=True)
  _clear_epath_cache()
  monkeypatch.chdir(tmp_path)
  yield "gs://hashjax-test"
  if _MemoryGCS().exists("gs://hashjax-test"):
    _MemoryGCS().rm("gs://hashjax-test", recursive=True)
  for p, impl in saved.items():
    if impl is None:
      registry.pop(p, None)
    else:
      registry[p] = impl
  _clear_epath_cache()
  assert not os.path.exists(tmp_path / "gs:"), "a file bypassed epath"


def _cvh_config():
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  return load_config_file(os.path.join(ROOT, "configs", "baseline_wikipedia.py"),
                          "method=cvh,bits=8")


def test_shallow_run_and_encode_on_bucket(bucket):
  workdir = f"{bucket}/runs/cvh"
  rec = experiment.train_and_evaluate(_cvh_config(), workdir)
  assert sorted(p.name for p in fileio.path(workdir).iterdir()) == [
      "config.json", "model.npz", "results.json"]
  assert fileio.read_json(f"{workdir}/results.json")["results"] == json.loads(
      json.dumps(rec["results"]))
  assert json.loads(fileio.read_text(f"{workdir}/config.json"))["method"] == "cvh"
  q = encode_cli.encode_split(_cvh_config(), f"{workdir}/model.npz", "query", "image")
  assert q["codes"].shape == (693, 8)


def test_index_tokenizer_and_metrics_on_bucket(bucket):
  from hashjax.dcgh import tokenizer as tk  # pylint: disable=g-import-not-at-top
  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top

  rs = np.random.RandomState(0)
  codes = np.where(rs.randn(50, 40) >= 0, 1, -1).astype(np.int8)
  idx = hindex.add(hindex.create(40), codes)
  hindex.save(idx, f"{bucket}/index.hjx")
  back = hindex.load(f"{bucket}/index.hjx", bits=40)
  np.testing.assert_array_equal(np.asarray(back.packed), np.asarray(idx.packed)[:50])

  caps = [f"a photo of {w} number {i}" for i, w in enumerate(["cat", "dog"] * 20)]
  tok = tk.train_bpe_tokenizer(caps, 300, context_length=8)
  tok.save(f"{bucket}/run/tokenizer")
  again = tk.load_tokenizer(f"{bucket}/run/tokenizer")
  np.testing.assert_array_equal(again.encode(caps[:5]), tok.encode(caps[:5]))

  # pylint: disable-next=protected-access
  w = train._MetricWriter(f"{bucket}/run", resume_step=0)
  for step in (1, 2, 3):
    w.write({"kind": "eval", "step": step, "val/mean_map": 0.1 * step})
  # pylint: disable-next=protected-access
  resumed = train._MetricWriter(f"{bucket}/run", resume_step=2)
  assert [r["step"] for r in resumed.history] == [1, 2]
  lines = fileio.read_text(f"{bucket}/run/metrics.jsonl").splitlines()
  assert [json.loads(x)["step"] for x in lines] == [1, 2]
  assert jax.process_index() == 0
