"""Loaders on the real packaged files, checked against direct scipy / numpy reads."""

import pathlib

import numpy as np
import pytest
import scipy.io

import hashjax.data
from hashjax.data import (
    load_feature_file,
    load_mirflickr_tags,
    load_uci_mfeat,
    load_wikipedia,
)

FILES = pathlib.Path(hashjax.data.__file__).parent / "files"


def _class_ids(multi_hot):
  """Column of the single 1 in every row (fails if a row is not one-hot)."""
  assert np.all(multi_hot.sum(1) == 1)
  return np.argmax(multi_hot, axis=1)


def test_wikipedia_real_file():
  raw = scipy.io.loadmat(FILES / "wikipedia.mat")
  split = load_wikipedia()
  assert split.train is split.database
  assert split.train.view_names == ("image", "text")
  assert split.train.views[0].shape == (2173, 128)
  assert split.train.views[1].shape == (2173, 10)
  assert split.query.views[0].shape == (693, 128)
  assert split.query.views[1].shape == (693, 10)
  for part, suffix in ((split.train, "tr"), (split.query, "te")):
    assert all(v.dtype == np.float32 for v in part.views)
    assert part.labels.dtype == np.uint8 and part.labels.shape[1] == 10
    np.testing.assert_array_equal(part.views[0], raw[f"I_{suffix}"].astype(np.float32))
    np.testing.assert_array_equal(part.views[1], raw[f"T_{suffix}"].astype(np.float32))
    # File labels are 1..10: class k lands in column k - 1.
    np.testing.assert_array_equal(_class_ids(part.labels),
                                  raw[f"L_{suffix}"].ravel().astype(int) - 1)
    counts = np.bincount(raw[f"L_{suffix}"].ravel(), minlength=11)[1:]
    np.testing.assert_array_equal(part.labels.sum(0), counts)
  # Published class sizes of the 2866-item set: 2173 train + 693 test.
  assert split.train.labels.sum() == 2173 and split.query.labels.sum() == 693


def test_uci_mfeat_real_file():
  raw = np.load(FILES / "uci_mfeat.npz")
  data = load_uci_mfeat()
  assert data.view_names == ("fac", "fou", "kar", "mor", "pix", "zer")
  dims = [v.shape for v in data.views]
  assert dims == [(2000, 216), (2000, 76), (2000, 64), (2000, 6), (2000, 240),
                  (2000, 47)]
  for nm, v in zip(data.view_names, data.views):
    np.testing.assert_array_equal(v, raw[nm])
  np.testing.assert_array_equal(data.labels.sum(0), np.full(10, 200))
  # Rows are ordered by class: items 200 c ... 200 c + 199 are digit c.
  np.testing.assert_array_equal(_class_ids(data.labels), np.arange(2000) // 200)


def test_uci_mfeat_view_selection_and_errors():
  data = load_uci_mfeat(views=["pix", "fac"])
  assert data.view_names == ("pix", "fac")
  assert [v.shape[1] for v in data.views] == [240, 216]
  with pytest.raises(ValueError, match="views must be distinct names"):
    load_uci_mfeat(views=["pixels"])
  with pytest.raises(ValueError, match="views must be distinct names"):
    load_uci_mfeat(views=["pix", "pix"])


def test_mirflickr_tags_real_file():
  y = scipy.io.loadmat(FILES / "mirflickr25k_yall.mat")["YAll"]
  lab = scipy.io.loadmat(FILES / "mirflickr25k_lall.mat")["LAll"]
  data = load_mirflickr_tags()
  assert data.view_names == ("text",)
  assert data.views[0].shape == (20015, 1386) and data.views[0].dtype == np.float32
  assert data.labels.shape == (20015, 24) and data.labels.dtype == np.uint8
  np.testing.assert_array_equal(data.views[0], y.astype(np.float32))
  np.testing.assert_array_equal(data.labels.sum(0), lab.sum(0, dtype=np.int64))
  assert data.labels.sum(1).min() >= 1  # every item of the subset has a concept


def test_packaged_loaders_accept_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.npz"):
    load_uci_mfeat(tmp_path / "nope.npz")
  with pytest.raises(FileNotFoundError, match="nope.mat"):
    load_wikipedia(tmp_path / "nope.mat")
  split = load_wikipedia(FILES / "wikipedia.mat")
  assert split.query.num_items == 693


def _wiki_arrays():
  raw = scipy.io.loadmat(FILES / "wikipedia.mat")
  return {k: v for k, v in raw.items() if not k.startswith("__")}


def test_wikipedia_label_out_of_range(tmp_path):
  a = _wiki_arrays()
  a["L_te"] = a["L_te"].copy()
  a["L_te"][5, 0] = 11
  scipy.io.savemat(tmp_path / "w.mat", a)
  with pytest.raises(ValueError, match=r"class ids out of range: expected \[1, 10\]"):
    load_wikipedia(tmp_path / "w.mat")
  a["L_te"][5, 0] = 0
  scipy.io.savemat(tmp_path / "w.mat", a)
  with pytest.raises(ValueError, match="out of range"):
    load_wikipedia(tmp_path / "w.mat")


def test_wikipedia_missing_key_and_row_mismatch(tmp_path):
  a = _wiki_arrays()
  del a["T_te"]
  scipy.io.savemat(tmp_path / "w.mat", a)
  with pytest.raises(ValueError, match=r"no key 'T_te'.*keys present: .*'I_te'"):
    load_wikipedia(tmp_path / "w.mat")
  a = _wiki_arrays()
  a["L_tr"] = a["L_tr"][:-1]
  scipy.io.savemat(tmp_path / "w.mat", a)
  with pytest.raises(ValueError, match="labels have 2172 rows but the views have 2173"):
    load_wikipedia(tmp_path / "w.mat")


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
def test_feature_file_roundtrip(tmp_path, suffix):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 3))
  y = rng.normal(size=(7, 5)).astype(np.float32)
  ids = np.array([1, 3, 2, 1, 3, 3, 2])
  path = tmp_path / f"f{suffix}"
  if suffix == ".npz":
    np.savez(path, xa=x, xb=y, lab=ids)
  else:
    scipy.io.savemat(path, {"xa": x, "xb": y, "lab": ids[:, None]})
  data = load_feature_file(path, view_keys=["xb", "xa"], label_key="lab",
                           view_names=["text", "image"], label_offset=1,
                           num_classes=4)
  assert data.view_names == ("text", "image") and data.name == "f"
  np.testing.assert_array_equal(data.views[0], y)
  np.testing.assert_array_equal(data.views[1], x.astype(np.float32))
  expected = np.zeros((7, 4), np.uint8)
  for i, c in enumerate(ids):
    expected[i, c - 1] = 1
  np.testing.assert_array_equal(data.labels, expected)


def test_feature_file_multihot_labels(tmp_path):
  lab = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], np.float64)
  np.savez(tmp_path / "m.npz", v=np.ones((3, 2)), y=lab)
  data = load_feature_file(tmp_path / "m.npz", view_keys=["v"], label_key="y")
  np.testing.assert_array_equal(data.labels, lab.astype(np.uint8))
  assert data.labels.dtype == np.uint8


def _write(tmp_path, **arrays):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  return path


def test_feature_file_errors(tmp_path):
  good = dict(a=np.ones((4, 2)), b=np.ones((4, 3)), y=np.array([0, 1, 2, 1]))
  load = lambda p, **kw: load_feature_file(  # noqa: E731
      p, view_keys=["a", "b"], label_key="y", **kw)
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    load(tmp_path / "missing.npz")
  with pytest.raises(ValueError, match=r"no key 'b'.*keys present: \['a', 'y'\]"):
    load(_write(tmp_path, a=good["a"], y=good["y"]))
  nan = good["a"].copy()
  nan[1, 1] = np.nan
  with pytest.raises(ValueError, match=r"view 'a' contains 1 NaN or inf"):
    load(_write(tmp_path, **{**good, "a": nan}))
  inf = good["b"].copy()
  inf[0, 0] = np.inf
  with pytest.raises(ValueError, match=r"view 'b' contains 1 NaN or inf"):
    load(_write(tmp_path, **{**good, "b": inf}))
  with pytest.raises(ValueError, match="labels have 3 rows but the views have 4"):
    load(_write(tmp_path, **{**good, "y": np.array([0, 1, 2])}))
  with pytest.raises(ValueError, match="different row counts"):
    load(_write(tmp_path, **{**good, "b": np.ones((5, 3))}))
  with pytest.raises(ValueError, match=r"must be a 2-D \[n, d\] matrix"):
    load(_write(tmp_path, **{**good, "a": np.ones(4)}))
  with pytest.raises(ValueError, match="view 'a' is empty"):
    load(_write(tmp_path, **{**good, "a": np.ones((4, 0))}))
  with pytest.raises(ValueError, match=r"class ids out of range: expected \[0, 1\]"):
    load(_write(tmp_path, **good), num_classes=2)
  with pytest.raises(ValueError, match="class ids out of range"):
    load(_write(tmp_path, **{**good, "y": np.array([0, -1, 2, 1])}))
  with pytest.raises(ValueError, match="must be integers"):
    load(_write(tmp_path, **{**good, "y": np.array([0, 0.5, 2, 1])}))
  with pytest.raises(ValueError, match=r"multi-hot labels must be 0 or 1.*\[2\]"):
    load(_write(tmp_path, **{**good, "y": np.array([[0, 2], [1, 0], [1, 1], [0, 1]])}))
  with pytest.raises(ValueError, match="labels contain NaN"):
    load(_write(tmp_path, **{**good, "y": np.array([0, np.nan, 2, 1])}))
  with pytest.raises(ValueError, match="2 view_keys but 1 view_names"):
    load(_write(tmp_path, **good), view_names=["x"])
  (tmp_path / "f.txt").write_text("1 2 3")
  with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
    load_feature_file(tmp_path / "f.txt", view_keys=["a"], label_key="y")
