"""TFDS builders for the packaged feature data sets (no TensorFlow needed).

Importing this module registers two builders with TFDS:

* ``hashjax_wikipedia``: features ``image`` float32 ``[128]``, ``text`` float32
  ``[10]``, ``label`` uint8 ``[10]`` multi-hot, ``index`` int64 (row in the split of
  the source file); splits ``train`` (2173) and ``test`` (693).
* ``hashjax_uci_mfeat``: ``fac`` [216], ``fou`` [76], ``kar`` [64], ``mor`` [6],
  ``pix`` [240], ``zer`` [47] float32, ``label`` uint8 ``[10]``, ``index`` int64 (row
  in the source file); ``test`` = the 400 query items of
  ``query_database_split(2000, num_query=400, num_train=1600, seed=0)`` and ``train``
  the other 1600 (the same split as ``get_retrieval_split({'name': 'uci_mfeat'})``).

Both generate from the files packaged in ``hashjax/data/files`` (nothing is
downloaded) and write ``array_record`` files, which are read by random access
without TensorFlow::

  import hashjax.data.tfds_builders  # registers the builders
  import tensorflow_datasets as tfds
  ds = tfds.data_source("hashjax_wikipedia", data_dir="/tmp/tfds")  # prepares once
  ds["train"][0]  # {'image': ..., 'text': ..., 'label': ..., 'index': ...}

Records are stored shuffled; ``index`` gives each record's source row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from hashjax.data import loaders, splits
from hashjax.data.core import MultiModalData

__all__ = ["HashjaxUciMfeat", "HashjaxWikipedia", "UCI_TEST_SEED", "UCI_NUM_TEST"]

UCI_NUM_TEST = 400
UCI_TEST_SEED = 0


def _features(data: MultiModalData) -> tfds.features.FeaturesDict:
  spec: dict[str, Any] = {
      nm: tfds.features.Tensor(shape=(v.shape[1],), dtype=np.float32)
      for nm, v in zip(data.view_names, data.views)}
  spec["label"] = tfds.features.Tensor(shape=(data.num_classes,), dtype=np.uint8)
  spec["index"] = tfds.features.Tensor(shape=(), dtype=np.int64)
  return tfds.features.FeaturesDict(spec)


def _examples(data: MultiModalData,
              rows: np.ndarray) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields ``(key, example)`` for ``rows`` of ``data`` (key = source row)."""
  for r in rows:
    ex = {nm: v[r] for nm, v in zip(data.view_names, data.views)}
    ex["label"] = data.labels[r]
    ex["index"] = np.int64(r)
    yield int(r), ex


class _PackagedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared set-up: array_record by default, metadata without package files."""

  # TFDS 4.9.x derives `code_path` through `importlib_resources.abc`, a backport
  # that is not installed on Python >= 3.9 (tensorflow/datasets#11212); giving the
  # path directly avoids that import. No checksums file lives next to it.
  code_path = epath.Path(__file__)

  def __init__(self, *, file_format: Any = None, **kwargs: Any):
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info_for(self, data: MultiModalData, description: str,
                homepage: str, citation: str) -> tfds.core.DatasetInfo:
    # tfds.core.DatasetInfo directly: dataset_info_from_configs would look for
    # README/CITATIONS files next to this module.
    return tfds.core.DatasetInfo(
        builder=self, description=description, features=_features(data),
        homepage=homepage, citation=citation)


class HashjaxWikipedia(_PackagedBuilder):
  """Wikipedia image-text data (Rasiwasia et al. 2010), 10 classes."""

  name = "hashjax_wikipedia"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Packaged wikiData.mat, standard train/test split."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self._info_for(
        loaders.load_wikipedia().query,
        "Wikipedia image-text retrieval benchmark: 128-d SIFT BoW image features, "
        "10-d LDA text features, 10 classes. train = database (2173), "
        "test = query (693).",
        "http://www.svcl.ucsd.edu/projects/crossmodal/",
        "@inproceedings{rasiwasia2010new, title={A new approach to cross-modal "
        "multimedia retrieval}, author={Rasiwasia, Nikhil and others}, "
        "booktitle={ACM Multimedia}, year={2010}}")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Generated from the packaged file.
    split = loaders.load_wikipedia()
    return {
        "train": self._generate_examples(split.train),
        "test": self._generate_examples(split.query),
    }

  def _generate_examples(self, data: MultiModalData):
    return _examples(data, np.arange(data.num_items))


class HashjaxUciMfeat(_PackagedBuilder):
  """UCI Multiple Features (handwritten digits), six views, 10 classes."""

  name = "hashjax_uci_mfeat"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Packaged mfeat.npz, seeded 1600/400 train/test split."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self._info_for(
        loaders.load_uci_mfeat().subset(np.arange(1)),
        "UCI Multiple Features: 2000 handwritten digits in six views (fac, fou, "
        "kar, mor, pix, zer). test = 400 items of a seeded permutation "
        f"(seed {UCI_TEST_SEED}), train = the other 1600.",
        "https://archive.ics.uci.edu/dataset/72/multiple+features",
        "@misc{duin1998mfeat, title={Multiple Features}, author={Duin, Robert}, "
        "howpublished={UCI Machine Learning Repository}, year={1998}, "
        "doi={10.24432/C5HC70}}")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Generated from the packaged file.
    data = loaders.load_uci_mfeat()
    test, train, _ = splits.query_database_split(
        data.num_items, num_query=UCI_NUM_TEST,
        num_train=data.num_items - UCI_NUM_TEST, seed=UCI_TEST_SEED)
    return {
        "train": self._generate_examples(data, np.sort(train)),
        "test": self._generate_examples(data, np.sort(test)),
    }

  def _generate_examples(self, data: MultiModalData, rows: np.ndarray):
    return _examples(data, rows)
