"""Saving fitted models (pytrees of arrays) to one ``.npz`` file, without pickle.

A model is a pytree made of NamedTuples (importable classes), dicts, lists, tuples,
arrays, Python scalars and None. ``save_pytree`` writes every array under a key path
and the structure as JSON; ``load_pytree`` rebuilds the same tree, importing the
NamedTuple classes by name (only classes under ``hashjax.`` are accepted).

Integrity: every zip member carries a CRC-32 and the header a SHA-256 of all arrays;
``load_pytree`` raises ``ValueError("<path> is damaged: ...")`` when either fails.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
from typing import Any

import numpy as np

from hashjax import fileio

__all__ = ["load_meta", "load_pytree", "save_pytree"]

_FORMAT = "hashjax-pytree-v1"


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
  if obj is None or isinstance(obj, (bool, str)):
    return {"t": "lit", "v": obj}
  if isinstance(obj, (int, float)) and not isinstance(obj, bool):
    return {"t": "lit", "v": obj}
  if isinstance(obj, tuple) and hasattr(obj, "_fields"):
    cls = type(obj)
    return {"t": "nt", "cls": f"{cls.__module__}:{cls.__qualname__}",
            "f": {k: _encode(getattr(obj, k), arrays, f"{path}/{k}")
                  for k in obj._fields}}
  if isinstance(obj, (list, tuple)):
    return {"t": type(obj).__name__,
            "v": [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]}
  if isinstance(obj, dict):
    return {"t": "dict",
            "v": {str(k): _encode(v, arrays, f"{path}/{k}") for k, v in obj.items()}}
  if hasattr(obj, "shape") and hasattr(obj, "dtype"):
    if "key<" in str(obj.dtype):
      raise ValueError(f"cannot save a PRNG key array at {path or '/'}.")
    arrays[path] = np.asarray(obj)
    return {"t": "arr", "k": path}
  raise ValueError(f"cannot save object of type {type(obj).__name__} at {path or '/'}.")


def _decode(spec: Any, arrays: Any) -> Any:
  t = spec["t"]
  if t == "lit":
    return spec["v"]
  if t == "arr":
    return arrays[spec["k"]]
  if t in ("list", "tuple"):
    vals = [_decode(v, arrays) for v in spec["v"]]
    return vals if t == "list" else tuple(vals)
  if t == "dict":
    return {k: _decode(v, arrays) for k, v in spec["v"].items()}
  if t == "nt":
    module, _, name = spec["cls"].partition(":")
    if not module.startswith("hashjax."):
      raise ValueError(f"refusing to load class {spec['cls']} (not a hashjax class).")
    cls = importlib.import_module(module)
    for part in name.split("."):
      cls = getattr(cls, part)
    return cls(**{k: _decode(v, arrays) for k, v in spec["f"].items()})
  raise ValueError(f"unknown node type {t!r} in saved model.")


def save_pytree(path: str | os.PathLike, tree: Any, *, meta: dict | None = None) -> None:
  """Writes ``tree`` and a JSON-able ``meta`` dict to ``path`` (.npz; epath path)."""
  arrays: dict[str, np.ndarray] = {}
  spec = _encode(tree, arrays, "")
  payload = {f"a{i}": a for i, a in enumerate(arrays.values())}
  names = {k: f"a{i}" for i, k in enumerate(arrays)}
  header = json.dumps({"format": _FORMAT, "tree": spec, "meta": meta or {},
                       "names": names, "sha256": _sha256(arrays)})
  buf = io.BytesIO()
  np.savez(buf, __header__=np.frombuffer(header.encode(), np.uint8), **payload)
  fileio.write_bytes(path, buf.getvalue())   # a temporary file moved over the target


def _sha256(arrays: dict[str, np.ndarray]) -> str:
  """Digest of every array's key, dtype, shape and bytes (in key order)."""
  h = hashlib.sha256()
  for k in sorted(arrays):
    a = np.ascontiguousarray(arrays[k])
    h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def load_pytree(path: str | os.PathLike) -> tuple[Any, dict]:
  """Reads a tree written by :func:`save_pytree`; returns ``(tree, meta)``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: not a hashjax model file, or a damaged one (a zip member whose
      CRC-32 fails, a truncated file, arrays that do not match the saved digest).
  """
  header, arrays = _read(os.fspath(path))
  return _decode(header["tree"], arrays), header["meta"]


def load_meta(path: str | os.PathLike) -> dict:
  """The ``meta`` dict of a model file, after checking the whole file is intact.

  Imports no model classes (so no JAX): the command line checks a model against its
  config with it before any work. Raises as :func:`load_pytree`.
  """
  return _read(os.fspath(path))[0]["meta"]


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
  """``(header, arrays)`` of a model file, integrity checked."""
  if not fileio.exists(path):
    raise FileNotFoundError(2, "no saved model at", path)
  if fileio.isdir(path):
    raise IsADirectoryError(21, "a model file is expected, got a directory", path)
  data = fileio.read_bytes(path)
  if data[:2] != b"PK":
    raise ValueError(f"{path} is not a hashjax model file (not an .npz archive).")
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      if "__header__" not in z:
        raise ValueError(f"{path} is not a hashjax model file (no header).")
      header = json.loads(z["__header__"].tobytes().decode())
      if header.get("format") != _FORMAT:
        raise ValueError(f"{path}: unsupported format {header.get('format')!r}.")
      arrays = {k: z[v] for k, v in header["names"].items()}
  except Exception as e:  # pylint: disable=broad-except  (zipfile, zlib, json, npy)
    if isinstance(e, ValueError) and str(e).startswith(path):
      raise
    raise ValueError(f"{path} is damaged: {type(e).__name__}: {e}".rstrip(".") + ".") \
        from None
  digest = header.get("sha256")
  if digest is not None and digest != _sha256(arrays):
    raise ValueError(f"{path} is damaged: its arrays do not match the saved SHA-256.")
  return header, arrays
