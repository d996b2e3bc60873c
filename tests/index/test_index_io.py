"""Index files: round trip, an independently written file, and every corruption."""

import hashlib
import struct
import zlib

import numpy as np
import pytest

from hashjax import index as hindex


def write_reference_file(path, codes_pm1, ids, *, version=1):
  """Writes the documented layout with struct/NumPy only (independent writer)."""
  n, bits = codes_pm1.shape
  words = (bits + 31) // 32
  packed = np.zeros((n, words), np.uint64)
  for e in range(bits):  # entry e -> bit e % 32 of word e // 32
    packed[:, e // 32] |= (codes_pm1[:, e] > 0).astype(np.uint64) << np.uint64(e % 32)
  payload = packed.astype("<u4").tobytes() + np.asarray(ids, "<i8").tobytes()
  header = (b"HJXINDEX" + struct.pack("<IIII", version, bits, words, 0)
            + struct.pack("<QQ", n, len(payload)) + hashlib.sha256(payload).digest())
  header += struct.pack("<I", zlib.crc32(header))
  assert len(header) == 76
  with open(path, "wb") as f:
    f.write(header + payload)


@pytest.fixture
def saved(tmp_path, np_rng):
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(50, 100))
  ids = np_rng.permutation(50) + 1000
  index = hindex.add(hindex.create(100), codes, ids)
  path = tmp_path / "idx.hjx"
  hindex.save(index, path)
  return path, codes, ids


def test_round_trip(saved):
  path, codes, ids = saved
  loaded = hindex.load(path, bits=100)
  assert loaded.bits == 100 and loaded.count == 50
  np.testing.assert_array_equal(np.asarray(loaded.ids), ids)
  np.testing.assert_array_equal(np.asarray(loaded.packed), hindex.pack_host(codes))
  # Search on the loaded index against brute force.
  d, i = hindex.search(loaded, codes[:4], 5)
  dist = np.count_nonzero(codes[:4, None] != codes[None], axis=-1)
  order = np.lexsort((np.broadcast_to(np.arange(50), dist.shape), dist), axis=-1)[:, :5]
  np.testing.assert_array_equal(np.asarray(i), ids[order])
  np.testing.assert_array_equal(np.asarray(d), np.take_along_axis(dist, order, 1))


def test_file_bytes_follow_documented_layout(saved, tmp_path):
  path, codes, ids = saved
  ref = tmp_path / "ref.hjx"
  write_reference_file(ref, codes, ids)
  assert path.read_bytes() == ref.read_bytes()
  loaded = hindex.load(ref)
  np.testing.assert_array_equal(np.asarray(loaded.ids), ids)


def test_empty_round_trip(tmp_path):
  path = tmp_path / "empty.hjx"
  hindex.save(hindex.create(8), path)
  loaded = hindex.load(path)
  assert loaded.count == 0 and loaded.bits == 8 and loaded.packed.shape == (0, 1)


def test_wrong_bits(saved):
  path, _, _ = saved
  with pytest.raises(ValueError, match="index has 100 bits, expected 64"):
    hindex.load(path, bits=64)


def test_wrong_magic(saved):
  path, _, _ = saved
  data = bytearray(path.read_bytes())
  data[:8] = b"NOTANIDX"
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="not a hashjax index"):
    hindex.load(path)


@pytest.mark.parametrize("keep", [0, 20, 76, 76 + 13, -1])
def test_truncated(saved, keep):
  path, _, _ = saved
  data = path.read_bytes()
  path.write_bytes(data[:keep] if keep >= 0 else data[:-1])
  with pytest.raises(ValueError, match="truncated"):
    hindex.load(path)


def test_over_long(saved):
  path, _, _ = saved
  path.write_bytes(path.read_bytes() + b"\0")
  with pytest.raises(ValueError, match="over-long"):
    hindex.load(path)


@pytest.mark.parametrize("offset,match", [
    (12, "corrupted header"),       # bits field
    (24, "corrupted header"),       # count field
    (50, "corrupted header"),       # inside the stored SHA-256
    (76, "corrupted payload"),      # first code word
    (76 + 50 * 16 + 3, "corrupted payload"),  # an id
])
def test_corrupted(saved, offset, match):
  path, _, _ = saved
  data = bytearray(path.read_bytes())
  data[offset] ^= 0x10
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match=match):
    hindex.load(path)


def test_unsupported_version(tmp_path, np_rng):
  codes = np_rng.choice(np.array([-1, 1], np.int8), size=(3, 8))
  path = tmp_path / "v2.hjx"
  write_reference_file(path, codes, np.arange(3), version=2)
  with pytest.raises(ValueError, match="unsupported index format version 2"):
    hindex.load(path)
