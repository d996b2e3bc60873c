"""Saving fitted models (pytrees of arrays) to one ``.npz`` file, without pickle.

A model is a pytree made of NamedTuples (importable classes), dicts, lists, tuples,
arrays, Python scalars and None. ``save_pytree`` writes every array under a key path
and the structure as JSON; ``load_pytree`` rebuilds the same tree, importing the
NamedTuple classes by name (only classes under ``hashjax.`` are accepted).
"""

from __future__ import annotations

import importlib
import io
import json
import os
from typing import Any

import numpy as np

from hashjax import fileio

__all__ = ["load_pytree", "save_pytree"]

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
                       "names": names})
  buf = io.BytesIO()
  np.savez(buf, __header__=np.frombuffer(header.encode(), np.uint8), **payload)
  fileio.write_bytes(path, buf.getvalue())   # a temporary file moved over the target


def load_pytree(path: str | os.PathLike) -> tuple[Any, dict]:
  """Reads a tree written by :func:`save_pytree`; returns ``(tree, meta)``."""
  if not fileio.exists(path):
    raise FileNotFoundError(f"no saved model at {path}.")
  with np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=False) as z:
    if "__header__" not in z:
      raise ValueError(f"{path} is not a hashjax model file (no header).")
    header = json.loads(z["__header__"].tobytes().decode())
    if header.get("format") != _FORMAT:
      raise ValueError(f"{path}: unsupported format {header.get('format')!r}.")
    arrays = {k: z[v] for k, v in header["names"].items()}
  return _decode(header["tree"], arrays), header["meta"]
