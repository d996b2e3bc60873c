"""Semi-paired, query/database and validation splits: properties, hand-worked cases."""

import numpy as np
import pytest

from hashjax.data import splits
from hashjax.data import (
    MultiModalData,
    apply_semi_paired,
    query_database_split,
    semi_paired_split,
    train_validation_split,
)


@pytest.mark.parametrize("n, ratio, n_p", [
    (2173, 0.1, 217),   # Wikipedia at 10% (docs/rreh.md: 217 paired items)
    (10, 0.3, 3),
    (5, 0.01, 1),       # at least one paired item
    (7, 1.0, 7),
    (1, 0.5, 1),
])
def test_paired_count(n, ratio, n_p):
  split = semi_paired_split(n, ratio, 2)
  assert split.paired.shape == (n_p,)


@pytest.mark.parametrize("m", [2, 3, 6])
@pytest.mark.parametrize("n, ratio", [(101, 0.1), (20, 0.5), (9, 0.9), (30, 1.0)])
def test_disjoint_properties(m, n, ratio):
  split = semi_paired_split(n, ratio, m, mode="disjoint", seed=3)
  paired, unpaired = split.paired, split.unpaired
  assert len(unpaired) == m
  assert paired.dtype == np.int64 and all(u.dtype == np.int64 for u in unpaired)
  assert np.all(np.diff(paired) > 0)  # sorted, unique
  for u in unpaired:
    assert np.all(np.diff(u) > 0)
  allidx = np.concatenate([paired, *unpaired])
  np.testing.assert_array_equal(np.sort(allidx), np.arange(n))  # cover, disjoint
  sizes = [u.size for u in unpaired]
  assert sum(sizes) == n - paired.size
  assert max(sizes) - min(sizes) <= 1
  if ratio == 1.0:
    assert sizes == [0] * m


@pytest.mark.parametrize("m", [2, 3, 6])
def test_shuffled_properties(m):
  n = 60
  split = semi_paired_split(n, 0.25, m, mode="shuffled", seed=1)
  rest = np.setdiff1d(np.arange(n), split.paired)
  assert split.paired.size == 15 and rest.size == 45
  orders = []
  for u in split.unpaired:
    assert u.shape == (45,)
    np.testing.assert_array_equal(np.sort(u), rest)  # a permutation of the rest
    orders.append(tuple(u))
  # Correspondence destroyed: no two modalities share the order (45! orders).
  assert len(set(orders)) == m
  assert all(o != tuple(rest) for o in orders)


def test_shuffled_full_ratio_is_empty():
  split = semi_paired_split(12, 1.0, 3, mode="shuffled")
  assert split.paired.size == 12 and all(u.size == 0 for u in split.unpaired)


@pytest.mark.parametrize("mode", ["disjoint", "shuffled"])
def test_determinism_and_seed(mode):
  a = semi_paired_split(200, 0.2, 3, mode=mode, seed=5)
  b = semi_paired_split(200, 0.2, 3, mode=mode, seed=5)
  c = semi_paired_split(200, 0.2, 3, mode=mode, seed=6)
  np.testing.assert_array_equal(a.paired, b.paired)
  for x, y in zip(a.unpaired, b.unpaired):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.paired, c.paired)


def test_positional_mode_and_seed():
  a = semi_paired_split(40, 0.5, 2, "shuffled", 9)
  b = semi_paired_split(40, 0.5, 2, mode="shuffled", seed=9)
  np.testing.assert_array_equal(a.unpaired[1], b.unpaired[1])
  assert a.unpaired[0].size == 20  # shuffled: every modality gets all 20


def test_few_unpaired_items_leave_some_modalities_empty():
  split = semi_paired_split(5, 0.6, 3, mode="disjoint")
  assert split.paired.size == 3
  assert sorted(u.size for u in split.unpaired) == [0, 1, 1]


def test_semi_paired_errors():
  with pytest.raises(ValueError, match=r"paired_ratio must be in \(0, 1\], got 0"):
    semi_paired_split(10, 0.0, 2)
  with pytest.raises(ValueError, match=r"paired_ratio must be in \(0, 1\], got 1.5"):
    semi_paired_split(10, 1.5, 2)
  with pytest.raises(ValueError, match="paired_ratio"):
    semi_paired_split(10, float("nan"), 2)
  with pytest.raises(ValueError, match="paired_ratio must be a number"):
    semi_paired_split(10, True, 2)
  with pytest.raises(ValueError, match="num_modalities must be >= 2, got 1"):
    semi_paired_split(10, 0.5, 1)
  with pytest.raises(ValueError, match="num_items must be positive"):
    semi_paired_split(0, 0.5, 2)
  with pytest.raises(ValueError, match="mode must be one of"):
    semi_paired_split(10, 0.5, 2, mode="random")
  with pytest.raises(ValueError, match="seed must be >= 0"):
    semi_paired_split(10, 0.5, 2, seed=-1)


def _coded_data(n, dims):
  """View m, row i holds 1000 m + i in every column: rows decode to items."""
  views = [np.full((n, d), 0.0, np.float32) + (1000 * m + np.arange(n))[:, None]
           for m, d in enumerate(dims)]
  labels = np.eye(2, dtype=np.uint8)[np.arange(n) % 2]
  return MultiModalData(views=tuple(views), labels=labels,
                        view_names=tuple(f"v{m}" for m in range(len(dims))))


@pytest.mark.parametrize("mode", ["disjoint", "shuffled"])
def test_apply_semi_paired(mode):
  dims = (3, 1, 4)
  data = _coded_data(25, dims)
  split = semi_paired_split(25, 0.2, 3, mode=mode, seed=2)
  paired_views, unpaired_views = apply_semi_paired(data, split)
  assert len(paired_views) == len(unpaired_views) == 3
  for m, (p, u) in enumerate(zip(paired_views, unpaired_views)):
    assert p.shape == (5, dims[m]) and u.shape == (split.unpaired[m].size, dims[m])
    # Decode: every paired row is item paired[i] in every modality.
    np.testing.assert_array_equal(p[:, 0] - 1000 * m, split.paired)
    np.testing.assert_array_equal(u[:, -1] - 1000 * m, split.unpaired[m])


def test_apply_semi_paired_full_ratio_gives_empty_views():
  data = _coded_data(6, (2, 3))
  paired_views, unpaired_views = apply_semi_paired(
      data, semi_paired_split(6, 1.0, 2))
  assert [u.shape for u in unpaired_views] == [(0, 2), (0, 3)]
  np.testing.assert_array_equal(paired_views[1][:, 0], 1000 + np.arange(6))


def test_apply_semi_paired_errors():
  data = _coded_data(10, (2, 2))
  with pytest.raises(ValueError, match="split has 3 modalities but data has 2 views"):
    apply_semi_paired(data, semi_paired_split(10, 0.5, 3))
  with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
    apply_semi_paired(data, semi_paired_split(12, 0.5, 2))
  empty = MultiModalData(views=(np.ones((10, 2)), np.ones((10, 0))),
                         labels=data.labels, view_names=("a", "b"))
  with pytest.raises(ValueError, match="view 'b' has no feature columns"):
    apply_semi_paired(empty, semi_paired_split(10, 0.5, 2))


def test_query_database_split_hand_worked():
  # np.random.default_rng(0).permutation(10) == [4 6 2 7 3 5 9 0 8 1].
  q, t, db = query_database_split(10, num_query=3, num_train=4, seed=0)
  np.testing.assert_array_equal(q, [4, 6, 2])
  np.testing.assert_array_equal(t, [7, 3, 5, 9])
  np.testing.assert_array_equal(db, [7, 3, 5, 9, 0, 8, 1])
  assert q.dtype == t.dtype == db.dtype == np.int64


def test_query_database_split_legacy_rng():
  # np.random.seed(0); np.random.permutation(10) == [2 8 4 9 1 6 7 3 0 5], the
  # reference code's generator.
  q, t, db = query_database_split(10, num_query=2, num_train=5, seed=0,
                                  legacy_rng=True)
  np.testing.assert_array_equal(q, [2, 8])
  np.testing.assert_array_equal(t, [4, 9, 1, 6, 7])
  np.testing.assert_array_equal(db, [4, 9, 1, 6, 7, 3, 0, 5])


def test_query_database_split_properties():
  n = 500
  q, t, db = query_database_split(n, num_query=50, num_train=300, seed=1818)
  assert (q.size, t.size, db.size) == (50, 300, 450)
  assert np.intersect1d(q, db).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([q, db])), np.arange(n))
  assert np.all(np.isin(t, db))
  q2, _, _ = query_database_split(n, num_query=50, num_train=300, seed=1818)
  np.testing.assert_array_equal(q, q2)


def test_query_database_split_errors():
  with pytest.raises(ValueError, match=r"3 \+ 8 = 11 exceeds num_items = 10"):
    query_database_split(10, num_query=3, num_train=8, seed=0)
  with pytest.raises(ValueError, match="num_query must be >= 1"):
    query_database_split(10, num_query=0, num_train=8, seed=0)
  with pytest.raises(ValueError, match="num_train must be >= 1"):
    query_database_split(10, num_query=2, num_train=0, seed=0)
  with pytest.raises(ValueError, match="num_items must be positive"):
    query_database_split(0, num_query=1, num_train=1, seed=0)


def test_train_validation_split():
  # default_rng(7).permutation(12) == [4 6 10 0 1 3 8 7 2 5 9 11].
  train, val = train_validation_split(12, num_validation=3, seed=7)
  np.testing.assert_array_equal(val, [4, 6, 10])
  np.testing.assert_array_equal(train, [0, 1, 3, 8, 7, 2, 5, 9, 11])
  with pytest.raises(ValueError, match="num_validation must be < num_items = 12"):
    train_validation_split(12, num_validation=12, seed=0)
  with pytest.raises(ValueError, match="num_validation must be >= 1"):
    train_validation_split(12, num_validation=0, seed=0)


class _Items:
  """Minimal item container: ids 0..n-1, ``subset`` keeps the chosen ids."""

  def __init__(self, ids):
    self.ids = np.asarray(ids)
    self.num_items = self.ids.size

  def subset(self, idx):
    return _Items(self.ids[np.asarray(idx)])


def test_deal_image_text_rest_keeps_training_set():
  # Hand-worked: seed 3 permutation of 20; query 4, train 8, validation 3 from "rest".
  perm = np.random.default_rng(3).permutation(20)
  held = splits.deal_image_text(_Items(np.arange(20)), num_query=4, num_train=8, seed=3,
                                num_validation=3, validation_source="rest")
  np.testing.assert_array_equal(held.query.ids, perm[:4])
  np.testing.assert_array_equal(held.train.ids, perm[4:12])
  np.testing.assert_array_equal(held.validation.ids, perm[12:15])
  np.testing.assert_array_equal(held.database.ids, perm[4:])
  # "train": validation drawn from (and removed from) the training items.
  held = splits.deal_image_text(_Items(np.arange(20)), num_query=4, num_train=None,
                                seed=3, num_validation=5, validation_seed=1)
  assert held.train.num_items == 11 and held.validation.num_items == 5
  assert set(held.train.ids) | set(held.validation.ids) == set(perm[4:])
  assert not set(held.train.ids) & set(held.validation.ids)
  with pytest.raises(ValueError, match="validation.num_items >= 1"):
    splits.deal_image_text(_Items(np.arange(20)), num_query=4, num_train=8, seed=3,
                           num_validation=0)
  with pytest.raises(ValueError, match="only 8 database items"):
    splits.deal_image_text(_Items(np.arange(20)), num_query=4, num_train=8, seed=3,
                           num_validation=9, validation_source="rest")
