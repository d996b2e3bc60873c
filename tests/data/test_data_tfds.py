"""TFDS builders: prepare in a temp dir, read back by random access, compare to NumPy.

tfds.testing.DatasetBuilderTestCase subclasses tf.test.TestCase (needs TensorFlow),
so the builders are tested directly; tfds.testing.mock_data works without TF and is
checked for the feature spec.
"""

import importlib.util
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from hashjax.data import load_uci_mfeat, load_wikipedia, tfds_builders


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tfds")
  for cls in (tfds_builders.HashjaxWikipedia, tfds_builders.HashjaxUciMfeat):
    cls(data_dir=str(d)).download_and_prepare()
  return d


def _read_all(source):
  """All records of a data source, ordered by their ``index`` feature."""
  records = [source[i] for i in range(len(source))]
  records.sort(key=lambda r: int(r["index"]))
  return {k: np.stack([r[k] for r in records]) for k in records[0]}


def test_no_tensorflow_needed(data_dir):
  del data_dir
  if importlib.util.find_spec("tensorflow") is None:
    assert "tensorflow" not in sys.modules


def test_wikipedia_builder_matches_loader(data_dir):
  builder = tfds_builders.HashjaxWikipedia(data_dir=str(data_dir))
  assert builder.info.file_format.value == "array_record"
  assert builder.info.splits["train"].num_examples == 2173
  assert builder.info.splits["test"].num_examples == 693
  ref = load_wikipedia()
  ds = builder.as_data_source()
  for split, part in (("train", ref.train), ("test", ref.query)):
    got = _read_all(ds[split])
    np.testing.assert_array_equal(got["index"], np.arange(part.num_items))
    assert got["image"].dtype == np.float32 and got["label"].dtype == np.uint8
    np.testing.assert_array_equal(got["image"], part.views[0])
    np.testing.assert_array_equal(got["text"], part.views[1])
    np.testing.assert_array_equal(got["label"], part.labels)


def test_uci_builder_matches_loader_via_data_source(data_dir):
  ds = tfds.data_source("hashjax_uci_mfeat", data_dir=str(data_dir), download=False)
  data = load_uci_mfeat()
  perm = np.random.default_rng(0).permutation(2000)
  expected = {"test": np.sort(perm[:400]), "train": np.sort(perm[400:])}
  for split, rows in expected.items():
    got = _read_all(ds[split])
    np.testing.assert_array_equal(got["index"], rows)
    for nm, v in zip(data.view_names, data.views):
      np.testing.assert_array_equal(got[nm], v[rows])
    np.testing.assert_array_equal(got["label"], data.labels[rows])


def test_mock_data_feature_spec():
  with tfds.testing.mock_data(num_examples=3,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = tfds.data_source("hashjax_wikipedia", split="test")
    assert len(ds) == 3
    ex = ds[0]
  assert ex["image"].shape == (128,) and ex["image"].dtype == np.float32
  assert ex["text"].shape == (10,) and ex["label"].shape == (10,)
  assert ex["label"].dtype == np.uint8 and ex["index"].dtype == np.int64
