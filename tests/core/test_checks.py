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
