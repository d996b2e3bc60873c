"""save_pytree / load_pytree round trips, checked leaf by leaf."""

from typing import NamedTuple

import numpy as np
import pytest

from hashjax import serialization
from hashjax.data.splits import SemiPairedSplit


def test_round_trip_namedtuple_with_nested_containers(tmp_path):
  tree = SemiPairedSplit(
      paired=np.arange(5, dtype=np.int64),
      unpaired=(np.array([7, 9]), np.zeros((0,), np.int64)))
  extra = {"w": [np.ones((2, 3), np.float32), None, 3, "x"], "t": tree}
  path = tmp_path / "m.npz"
  serialization.save_pytree(path, extra, meta={"method": "rreh"})
  back, meta = serialization.load_pytree(path)
  assert meta == {"method": "rreh"}
  assert isinstance(back["t"], SemiPairedSplit)
  np.testing.assert_array_equal(back["t"].paired, np.arange(5))
  assert isinstance(back["t"].unpaired, tuple)
  np.testing.assert_array_equal(back["t"].unpaired[0], [7, 9])
  assert back["t"].unpaired[1].shape == (0,)
  assert back["w"][1] is None and back["w"][2] == 3 and back["w"][3] == "x"
  assert back["w"][0].dtype == np.float32 and back["w"][0].shape == (2, 3)


class _Foreign(NamedTuple):
  a: np.ndarray


def test_refuses_classes_outside_hashjax(tmp_path):
  path = tmp_path / "m.npz"
  serialization.save_pytree(path, _Foreign(np.zeros(2)))
  with pytest.raises(ValueError, match="not a hashjax class"):
    serialization.load_pytree(path)


def test_rejects_files_without_header(tmp_path):
  path = tmp_path / "x.npz"
  np.savez(path, a=np.zeros(3))
  with pytest.raises(ValueError, match="not a hashjax model file"):
    serialization.load_pytree(path)
  with pytest.raises(FileNotFoundError):
    serialization.load_pytree(tmp_path / "missing.npz")
