"""The DCGH paper configs deal the reference code's split (issue: paper split).

The reference (donnotnormal/DCGH) draws ``np.random.seed(1818); perm =
np.random.permutation(n)`` and takes query = perm[:5000], train = perm[5000:15000],
database = perm[5000:]. The expected indices below come from NumPy's global-state
generator directly, not from hashjax.
"""

import numpy as np
import pytest
import scipy.io

from hashjax import data as hdata
from hashjax.config_utils import dcgh_paper_config
from hashjax.dcgh import input_pipeline as pp


def _reference_perm(n, seed=1818):
  state = np.random.get_state()
  try:
    np.random.seed(seed)
    return np.random.permutation(n)
  finally:
    np.random.set_state(state)


@pytest.mark.parametrize("dataset,n", [("mirflickr", 20015), ("nuswide", 186577),
                                       ("coco", 122218)])
def test_paper_configs_draw_the_reference_split(dataset, n):
  d = dcgh_paper_config(dataset, None).data
  q, t, db = hdata.query_database_split(n, num_query=d.num_query, num_train=d.num_train,
                                        seed=d.seed, legacy_rng=d.legacy_rng)
  perm = _reference_perm(n)
  np.testing.assert_array_equal(q, perm[:5000])
  np.testing.assert_array_equal(t, perm[5000:15000])
  np.testing.assert_array_equal(db, perm[5000:])


def test_pipeline_deals_the_reference_split(tmp_path):
  """build_sources on a standard-layout folder: which rows land in query/train/db."""
  n = 300
  names = [f"mirflickr/im{i}.jpg" for i in range(n)]
  for nm in names:
    p = tmp_path / nm
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\xff\xd8\xff")
  scipy.io.savemat(tmp_path / "index.mat", {"index": names})
  scipy.io.savemat(tmp_path / "caption.mat",
                   {"caption": [[f"item{i} tag"] for i in range(n)]})
  scipy.io.savemat(tmp_path / "label.mat", {"category": np.eye(24)[np.arange(n) % 24]})
  config = dcgh_paper_config("mirflickr", f"root={tmp_path},runlocal")
  src = pp.build_sources(config, None)
  rows = lambda s: [int(c[0].split()[0][4:]) for c in s.data.captions]  # noqa: E731
  perm = _reference_perm(n)
  nq, nt = config.data.num_query, config.data.num_train
  assert rows(src.query) == list(perm[:nq])
  assert rows(src.train) == list(perm[nq:nq + nt])
  assert rows(src.database) == list(perm[nq:])
  # Validation queries are database items outside the training set (training intact).
  assert set(rows(src.val_query)) <= set(perm[nq + nt:])
