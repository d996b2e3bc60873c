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


# ----------------------------------------------------------------------------- damage


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
  """model.npz of a real fit (CVH baseline on shipped Wikipedia, 8 bits)."""
  import os  # pylint: disable=g-import-not-at-top

  from hashjax import experiment  # pylint: disable=g-import-not-at-top
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  config = load_config_file(os.path.join(root, "configs", "baseline_wikipedia.py"),
                            "method=cvh,bits=8")
  wd = tmp_path_factory.mktemp("model")
  experiment.train_and_evaluate(config, str(wd))
  return wd / "model.npz"


def _same(a, b):
  import jax  # pylint: disable=g-import-not-at-top

  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y))
                          for x, y in zip(la, lb))


def test_every_sampled_bit_flip_is_caught_or_harmless(real_model, tmp_path):
  """A flipped bit either loads the identical model (zip metadata such as a time
  stamp) or is reported as damage naming the file: never a silently changed model."""
  good, good_meta = serialization.load_pytree(real_model)
  raw = real_model.read_bytes()
  bad = tmp_path / "flipped.npz"
  rs = np.random.RandomState(0)
  positions = rs.choice(len(raw) * 8, size=300, replace=False)
  caught = harmless = 0
  for pos in positions:
    b = bytearray(raw)
    b[pos // 8] ^= 1 << (pos % 8)
    bad.write_bytes(bytes(b))
    try:
      tree, meta = serialization.load_pytree(bad)
    except ValueError as e:
      assert str(e).startswith(str(bad)) and ("damaged" in str(e) or "not a" in str(e))
      caught += 1
      continue
    assert meta == good_meta and _same(tree, good), f"bit {pos} changed the model"
    harmless += 1
  assert caught > 250, (caught, harmless)   # data bytes dominate the file


def test_damaged_model_messages(real_model, tmp_path):
  raw = real_model.read_bytes()
  trunc = tmp_path / "truncated.npz"
  trunc.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match=f"{trunc} is damaged"):
    serialization.load_pytree(trunc)
  # An array changed consistently (valid CRC-32) is caught by the header's SHA-256.
  import json  # pylint: disable=g-import-not-at-top

  with np.load(real_model) as z:
    arrays = {k: z[k] for k in z.files}
  header = json.loads(arrays["__header__"].tobytes().decode())
  name = next(iter(header["names"].values()))
  arrays[name] = arrays[name].copy()
  arrays[name].flat[0] += 1
  forged = tmp_path / "forged.npz"
  np.savez(forged, **arrays)
  with pytest.raises(ValueError, match="do not match the saved SHA-256"):
    serialization.load_pytree(forged)
  assert serialization.load_meta(real_model)["bits"] == 8
  with pytest.raises(ValueError, match="is damaged"):
    serialization.load_meta(trunc)
