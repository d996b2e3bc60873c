"""hashjax.checks.check_finite on small and block-scanned (large) arrays."""

import numpy as np
import pytest

from hashjax import checks


def test_check_finite_counts_bad_values_across_row_blocks(monkeypatch):
  monkeypatch.setattr(checks, "_FINITE_BLOCK", 10)   # 7 columns -> 1-row blocks
  x = np.zeros((9, 7), np.float32)
  x[0, 0], x[4, 6], x[8, 3] = np.nan, np.inf, -np.inf   # first, middle, last block
  with pytest.raises(ValueError, match=r"x contains 3 NaN or inf"):
    checks.check_finite("x", x)
  checks.check_finite("x", np.zeros((9, 7)))          # finite: no error
  checks.check_finite("ints", np.arange(30).reshape(10, 3))   # not floating: skipped


def test_check_finite_on_a_memmap(tmp_path):
  path = tmp_path / "x.f32"
  x = np.memmap(path, np.float32, "w+", shape=(50, 4))
  x[:] = 1.0
  x[49, 1] = np.nan
  x.flush()
  with pytest.raises(ValueError, match=r"feat contains 1 NaN"):
    checks.check_finite("feat", np.memmap(path, np.float32, "r", shape=(50, 4)))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32])
def test_check_codes_rejects_every_other_value_in_any_row_block(monkeypatch, dtype):
  """The block-wise sign check (int8: one byte test) against the plain definition,
  for every int8 value, in the first, a middle and the last block."""
  monkeypatch.setattr(checks, "_SIGN_CHECK_ROWS", 3)
  good = np.where(np.random.default_rng(0).random((10, 5)) < 0.5, 1, -1).astype(dtype)
  checks.check_codes("c", good)
  values = range(-128, 128) if dtype == np.int8 else (0, 2, -2, 3, 127, -128)
  for v in values:
    for row in (0, 4, 9):
      bad = good.copy()
      bad[row, 3] = v
      if v in (1, -1):
        checks.check_codes("c", bad)
      else:
        with pytest.raises(ValueError, match=rf"c must hold only -1 and \+1.*{v}"):
          checks.check_codes("c", bad)
  with pytest.raises(ValueError, match=r"only -1 and \+1"):
    checks.check_codes("c", np.full((10, 5), 0.5, np.float32))


def test_check_varies_reads_every_block(monkeypatch, tmp_path):
  """A view is constant only if every row equals the first; the rows are read in
  blocks (here 3 rows per block), and a difference in the last block counts."""
  monkeypatch.setattr(checks, "_FINITE_BLOCK", 12)          # 12 elements = 3 rows of 4
  x = np.ones((10, 4), np.float32)
  with pytest.raises(ValueError, match=r"^v is constant \(every paired item"):
    checks.check_varies("v", x)
  with pytest.raises(ValueError, match="is constant"):
    checks.check_varies("v", np.zeros((1, 4)))             # one item: nothing varies
  x[9, 3] = 1.0 + 1e-7                                      # the last row, last block
  x = x.astype(np.float64)
  checks.check_varies("v", x)
  mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                 shape=x.shape)
  mm[:] = x
  checks.check_varies("v", mm)
  mm[9, 3] = 1.0
  with pytest.raises(ValueError, match="is constant"):
    checks.check_varies("v", mm)
  checks.check_varies("v", np.zeros((0, 4)))                # no rows: nothing to say
