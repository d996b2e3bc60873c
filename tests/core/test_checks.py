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
