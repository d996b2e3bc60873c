"""experiments/rreh_mirflickr_tagsplit.py: its two views are a partition of the tags.

The held-out data set of issue 18 deals MIRFlickr's 1386 tag columns into two halves.
Here the written file is read back through the library's feature-file loader (as the
script's config does): the halves' columns together are exactly the columns of
the shipped ``YAll`` (every tag column in exactly one view), labels unchanged.
"""

import collections

import experiment_scripts
import numpy as np

from hashjax.data import loaders


def test_views_partition_the_tag_columns(tmp_path):
  mod = experiment_scripts.load("rreh_mirflickr_tagsplit.py")
  path = mod.make_file(str(tmp_path / "views.npz"))
  data = loaders.load_feature_file(path, view_keys=["tags_a", "tags_b"], label_key="LAll",
                                   num_classes=24)
  full = loaders.load_mirflickr_tags()
  y = np.asarray(full.views[0])
  a, b = (np.asarray(v) for v in data.views)
  assert a.shape == b.shape == (y.shape[0], 693)
  # The multiset of the two views' columns is YAll's: every tag in exactly one view.
  def columns(m):
    raw, n = np.ascontiguousarray(m.T.astype(np.uint8)).tobytes(), m.shape[0]
    return collections.Counter(raw[j * n:(j + 1) * n] for j in range(m.shape[1]))
  assert columns(np.concatenate([a, b], axis=1)) == columns(y)
  assert columns(a) != columns(b)
  np.testing.assert_array_equal(np.asarray(data.labels), np.asarray(full.labels))


def test_top_split_takes_the_most_frequent_tags():
  mod = experiment_scripts.load("rreh_mirflickr_tagsplit.py")
  rs = np.random.default_rng(0)
  y = (rs.random((50, 12)) < np.linspace(0.05, 0.9, 12)).astype(np.uint8)
  y[:, 3] = y[:, 4]                       # a tie in frequency: the lower column first
  a, b = mod.split_columns(y, "top:4")
  assert sorted(np.concatenate([a, b]).tolist()) == list(range(12))
  freq = y.sum(axis=0, dtype=np.int64)
  assert freq[a].min() >= freq[b].max() and len(a) == 4
  want = sorted(range(12), key=lambda j: (-freq[j], j))[:4]
  assert sorted(a.tolist()) == sorted(want)
