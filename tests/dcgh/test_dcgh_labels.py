"""Label budget of DCGH (docs/dcgh.md#labels): which training items keep their labels.

``hashjax.data.labelled_positions`` is checked against an independent NumPy computation
(the documented draw: a prefix of ``default_rng(seed).permutation(n)``, sorted); the
sets are nested over fractions, of the documented size and deterministic per seed.
``build_sources`` trains and validates on exactly those items; ``fraction = 1`` is the
full-label split; bad values are refused by the config validation.
"""

import os

import numpy as np
import pytest

from hashjax import data as hdata
from hashjax import validate
from hashjax.configs_io import load_config_file
from hashjax.dcgh import input_pipeline as pp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


def _expected(n, f, seed):
  """The documented draw, written out without hashjax."""
  m = min(n, max(2, int(np.floor(f * n + 0.5))))   # rounded half up (0.5 * 2173)
  return np.sort(np.random.default_rng(seed).permutation(n)[:m])


@pytest.mark.parametrize("n", [1600, 2173])
@pytest.mark.parametrize("seed", [0, 3])
def test_labelled_positions_nested_sized_deterministic(n, seed):
  prev = None
  for f in FRACTIONS:
    pos = hdata.labelled_positions(n, f, seed=seed)
    np.testing.assert_array_equal(pos, _expected(n, f, seed))
    np.testing.assert_array_equal(pos, hdata.labelled_positions(n, f, seed=seed))
    assert pos.dtype == np.int64 and np.all(np.diff(pos) > 0)
    assert pos.size == max(2, int(f * n + 0.5))
    if prev is not None:
      assert np.isin(prev, pos).all()   # the smaller set lies inside the larger
    prev = pos
  np.testing.assert_array_equal(prev, np.arange(n))   # fraction 1: every item, in order
  other = hdata.labelled_positions(n, 0.1, seed=seed + 1)
  assert not np.array_equal(other, hdata.labelled_positions(n, 0.1, seed=seed))


@pytest.mark.parametrize("f", [0.0, -0.1, 1.01, float("nan")])
def test_labelled_positions_refuses_bad_fractions(f):
  with pytest.raises(ValueError, match="label fraction"):
    hdata.labelled_positions(100, f, seed=0)


def _cfg(arg):
  return load_config_file(os.path.join(ROOT, "configs", "dcgh_uci_features.py"), arg)


def test_sources_train_and_validate_on_the_labelled_items_only():
  split = hdata.get_retrieval_split(_cfg("seed=2").data)
  full = pp.build_sources(_cfg("seed=2"))
  for f in (0.05, 0.2):
    s = pp.build_sources(_cfg(f"seed=2,label_fraction={f}"))
    pos = _expected(split.train.num_items, f, 2)   # label seed = run seed by default
    assert s.train.num_items + s.val_query.num_items == pos.size
    assert s.val_query.num_items == max(1, int(160 * pos.size / 1600 + 0.5))
    # every training / validation row is a labelled training item (match on features)
    lab = split.train.views[0][pos]
    for src in (s.train, s.val_query):
      rows = src.load(np.arange(src.num_items), step=0, train=False)["image"]
      assert all((np.abs(lab - r).sum(1) < 1e-6).any() for r in rows)
    assert s.database.num_items == full.database.num_items == 1600   # all stay
    assert s.query.num_items == full.query.num_items == 400
  one = pp.build_sources(_cfg("seed=2,label_fraction=1.0"))
  assert (one.train.num_items, one.val_query.num_items) == (1440, 160)
  np.testing.assert_array_equal(one.train.labels, full.train.labels)


def test_label_seed_argument_and_validation():
  assert _cfg("seed=4").labels.seed == 4
  assert _cfg("seed=4,label_seed=9").labels.seed == 9
  validate.validate_config(_cfg("label_fraction=0.01"))
  c = _cfg(None).to_dict()
  for bad in (0.0, 1.5, "x"):
    c["labels"]["fraction"] = bad
    with pytest.raises(ValueError, match="config.labels.fraction"):
      validate.validate_config(c)
  c = load_config_file(os.path.join(ROOT, "configs", "dcgh_mirflickr.py"), "runlocal")
  c = c.to_dict()
  c["labels"] = {"fraction": 0.5, "seed": 0}
  with pytest.raises(ValueError, match="feature data sets"):
    validate.validate_config(c)
