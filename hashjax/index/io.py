"""Index files: one file, versioned header with checksums (layout in the package doc)."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

import numpy as np

from hashjax import fileio
from hashjax.codes import num_words
from hashjax.index.core import HammingIndex, add, create

__all__ = ["FORMAT_VERSION", "MAGIC", "load", "save"]

MAGIC = b"HJXINDEX"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQQ32s")  # everything before the header CRC
_HEADER_SIZE = _HEADER.size + 4


def save(index: HammingIndex, path: str | os.PathLike) -> None:
  """Writes ``index`` to one file (format in the :mod:`hashjax.index` docstring).

  ``path`` is a local path or any ``etils.epath`` URI; the file is written to a
  temporary name and moved over ``path`` (atomic on a local disk).
  """
  packed = np.ascontiguousarray(np.asarray(index.packed)[:index.count], dtype="<u4")
  ids = np.ascontiguousarray(np.asarray(index.ids)[:index.count], dtype="<i8")
  digest = hashlib.sha256()
  digest.update(packed.tobytes())
  digest.update(ids.tobytes())
  header = _HEADER.pack(MAGIC, FORMAT_VERSION, index.bits, index.num_words, 0,
                        index.count, packed.nbytes + ids.nbytes, digest.digest())
  header += struct.pack("<I", zlib.crc32(header))
  fileio.write_bytes(path, header + packed.tobytes() + ids.tobytes())


def load(path: str | os.PathLike, *, bits: int | None = None) -> HammingIndex:
  """Reads an index written by :func:`save` (unsharded; see :func:`shard`).

  Args:
    path: the file.
    bits: if given, the bit width the caller expects.

  Raises:
    ValueError: wrong magic (not an index file), unsupported version, corrupted
      header or payload (checksums), truncated or over-long file, or ``bits``
      different from the file's.
  """
  data = fileio.read_bytes(path)
  if len(data) < _HEADER_SIZE:
    raise ValueError(
        f"{path}: truncated file ({len(data)} bytes; the header alone is "
        f"{_HEADER_SIZE} bytes).")
  if data[:8] != MAGIC:
    raise ValueError(
        f"{path}: not a hashjax index (magic {data[:8]!r}, expected {MAGIC!r}).")
  (_, version, file_bits, words, _, count, nbytes, sha) = _HEADER.unpack_from(data)
  if version != FORMAT_VERSION:
    raise ValueError(
        f"{path}: unsupported index format version {version} (this hashjax reads "
        f"version {FORMAT_VERSION}).")
  (crc,) = struct.unpack_from("<I", data, _HEADER.size)
  if crc != zlib.crc32(data[:_HEADER.size]):
    raise ValueError(f"{path}: corrupted header (CRC-32 mismatch).")
  if file_bits < 1 or words != num_words(file_bits) or nbytes != count * (4 * words + 8):
    raise ValueError(
        f"{path}: inconsistent header (bits={file_bits}, words={words}, "
        f"count={count}, payload={nbytes}).")
  if len(data) != _HEADER_SIZE + nbytes:
    kind = "truncated" if len(data) < _HEADER_SIZE + nbytes else "over-long"
    raise ValueError(
        f"{path}: {kind} file ({len(data)} bytes, header says "
        f"{_HEADER_SIZE + nbytes}).")
  payload = memoryview(data)[_HEADER_SIZE:]
  if hashlib.sha256(payload).digest() != sha:
    raise ValueError(f"{path}: corrupted payload (SHA-256 mismatch).")
  if bits is not None and int(bits) != file_bits:
    raise ValueError(f"{path}: index has {file_bits} bits, expected {int(bits)}.")
  packed = np.frombuffer(payload, "<u4", count * words).reshape(count, words)
  ids = np.frombuffer(payload, "<i8", count, offset=4 * words * count)
  index = create(file_bits)
  if count == 0:
    return index
  return add(index, packed.astype(np.uint32), ids)
