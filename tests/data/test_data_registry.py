"""get_retrieval_split: names, defaults, splits checked against direct permutations."""

import ml_collections
import numpy as np
import pytest

from hashjax.data import (
    dataset_names,
    get_retrieval_split,
    load_mirflickr_tags,
    load_uci_mfeat,
    load_wikipedia,
)


def test_names_and_unknown_name():
  assert set(dataset_names()) == {"wikipedia", "uci_mfeat", "mirflickr_tags",
                                  "features"}
  with pytest.raises(ValueError, match=r"unknown data set 'mnist'.*'wikipedia'"):
    get_retrieval_split({"name": "mnist"})


def test_wikipedia_fixed_split():
  split = get_retrieval_split(ml_collections.ConfigDict(
      {"name": "wikipedia", "path": None}))
  ref = load_wikipedia()
  assert split.train is split.database
  np.testing.assert_array_equal(split.query.views[0], ref.query.views[0])
  np.testing.assert_array_equal(split.train.labels, ref.train.labels)
  swapped = get_retrieval_split({"name": "wikipedia", "views": ["text", "image"]})
  assert swapped.query.view_names == ("text", "image")
  assert swapped.train is swapped.database
  np.testing.assert_array_equal(swapped.query.views[0], ref.query.views[1])
  with pytest.raises(ValueError, match=r"fixed split.*\['num_query'\]"):
    get_retrieval_split({"name": "wikipedia", "num_query": 100})
  # The shared config shape (seed set, split sizes None) is accepted.
  cfg = {"name": "wikipedia", "path": None, "views": None, "num_query": None,
         "num_train": None, "seed": 0}
  assert get_retrieval_split(cfg).query.num_items == 693


def test_uci_default_split():
  split = get_retrieval_split({"name": "uci_mfeat"})
  data = load_uci_mfeat()
  perm = np.random.default_rng(0).permutation(2000)
  assert split.query.num_items == 400 and split.database.num_items == 1600
  assert split.train is split.database
  for m in range(6):
    np.testing.assert_array_equal(split.query.views[m], data.views[m][perm[:400]])
    np.testing.assert_array_equal(split.database.views[m], data.views[m][perm[400:]])
  # Query + database label counts add up to 200 per digit.
  np.testing.assert_array_equal(
      split.query.labels.sum(0) + split.database.labels.sum(0), np.full(10, 200))


def test_uci_custom_split_and_views():
  cfg = ml_collections.ConfigDict({"name": "uci_mfeat", "views": ["zer", "fac"],
                                   "num_query": 100, "num_train": 500, "seed": 3})
  split = get_retrieval_split(cfg)
  perm = np.random.default_rng(3).permutation(2000)
  data = load_uci_mfeat()
  assert split.train.view_names == ("zer", "fac")
  np.testing.assert_array_equal(split.train.views[1], data.views[0][perm[100:600]])
  np.testing.assert_array_equal(split.database.views[0], data.views[5][perm[100:]])
  np.testing.assert_array_equal(split.query.labels, data.labels[perm[:100]])


def test_mirflickr_tags_defaults():
  split = get_retrieval_split({"name": "mirflickr_tags"})
  perm = np.random.default_rng(0).permutation(20015)
  labels = load_mirflickr_tags().labels
  assert (split.query.num_items, split.train.num_items,
          split.database.num_items) == (2000, 10000, 18015)
  np.testing.assert_array_equal(split.train.labels, labels[perm[2000:12000]])


def test_features_file(tmp_path):
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
  y = np.arange(12) % 3
  np.savez(tmp_path / "feat.npz", a=a, b=b, y=y)
  cfg = {"name": "features", "path": str(tmp_path / "feat.npz"),
         "view_keys": ["a", "b"], "view_names": ["img", "txt"], "label_key": "y",
         "num_query": 3, "num_train": 5, "seed": 4}
  split = get_retrieval_split(cfg)
  perm = np.random.default_rng(4).permutation(12)
  np.testing.assert_array_equal(split.query.views[0], a[perm[:3]].astype(np.float32))
  np.testing.assert_array_equal(split.train.views[1], b[perm[3:8]].astype(np.float32))
  np.testing.assert_array_equal(split.database.labels.argmax(1), y[perm[3:]])
  no_train = get_retrieval_split({**cfg, "num_train": None})
  assert no_train.train is no_train.database and no_train.train.num_items == 9


def test_registry_errors(tmp_path):
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['num_querys'\]"):
    get_retrieval_split({"name": "uci_mfeat", "num_querys": 5})
  with pytest.raises(ValueError, match="'features' needs a path"):
    get_retrieval_split({"name": "features"})
  np.savez(tmp_path / "f.npz", a=np.ones((4, 2)), y=np.arange(4))
  with pytest.raises(ValueError, match="needs 'view_keys'"):
    get_retrieval_split({"name": "features", "path": str(tmp_path / "f.npz")})
  with pytest.raises(ValueError, match="has no fixed split: set num_query"):
    get_retrieval_split({"name": "features", "path": str(tmp_path / "f.npz"),
                         "view_keys": ["a"], "label_key": "y"})
  with pytest.raises(ValueError, match="num_query = 2000 leaves no database items"):
    get_retrieval_split({"name": "uci_mfeat", "num_query": 2000})
  with pytest.raises(ValueError, match="unknown view 'img'"):
    get_retrieval_split({"name": "uci_mfeat", "views": ["img"]})
  with pytest.raises(ValueError, match="cfg must be a ConfigDict or a mapping"):
    get_retrieval_split("uci_mfeat")
