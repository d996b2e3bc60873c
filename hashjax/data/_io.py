"""File helpers shared by the loaders: packaged files and keyed .mat / .npz reading."""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import pathlib
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.io

__all__ = ["list_keys", "packaged_folder", "read_arrays", "resolve_path"]

_PACKAGE = "hashjax.data"


@contextlib.contextmanager
def resolve_path(path: str | os.PathLike | None,
                 packaged_name: str | None) -> Iterator[pathlib.Path]:
  """Yields a real file path: ``path`` if given, else the packaged ``files/<name>``.

  Raises:
    FileNotFoundError: the file does not exist (the message names the path).
  """
  if path is not None:
    p = pathlib.Path(path).expanduser()
    if not p.is_file():
      raise FileNotFoundError(f"data file not found: {str(p)!r}.")
    yield p
    return
  if packaged_name is None:
    raise ValueError("a path is required (no packaged default for this file).")
  ref = importlib.resources.files(_PACKAGE).joinpath("files", packaged_name)
  if not ref.is_file():
    raise FileNotFoundError(
        f"packaged data file {packaged_name!r} not found in {_PACKAGE}/files "
        "(was the package installed without its data files?).")
  with importlib.resources.as_file(ref) as p:
    yield pathlib.Path(p)


def packaged_folder(name: str) -> pathlib.Path:
  """The packaged folder ``files/<name>`` as a real path (an installed package's files).

  Raises:
    FileNotFoundError: the package was installed without that folder.
  """
  ref = importlib.resources.files(_PACKAGE).joinpath("files", name)
  if not ref.is_dir():
    raise FileNotFoundError(
        f"packaged data folder {name!r} not found in {_PACKAGE}/files "
        "(was the package installed without its data files?).")
  return pathlib.Path(str(ref))


def _kind(path: pathlib.Path) -> str:
  suffix = path.suffix.lower()
  if suffix not in (".mat", ".npz"):
    raise ValueError(
        f"unsupported file type {suffix!r} for {str(path)!r}; expected .mat or .npz.")
  return suffix


def list_keys(path: pathlib.Path) -> list[str]:
  """Names of the arrays stored in a .mat (v5) or .npz file."""
  if _kind(path) == ".npz":
    with np.load(path, allow_pickle=False) as z:
      return list(z.files)
  try:
    return [name for name, _, _ in scipy.io.whosmat(path)]
  except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files.
    raise ValueError(
        f"{str(path)!r} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; "
        "re-save it with `save(..., '-v7')` or convert it to .npz.") from e


def read_arrays(path: pathlib.Path, keys: Sequence[str], *,
                allow_object: bool = False) -> dict[str, np.ndarray]:
  """Reads ``keys`` from a .mat or .npz file.

  Args:
    path: an existing ``.mat`` (MATLAB v5/v7) or ``.npz`` file.
    keys: names of the arrays to read.
    allow_object: read object arrays (MATLAB cells); .npz object arrays are never
      read (that would need pickle).

  Returns:
    ``{key: array}`` for every key.

  Raises:
    ValueError: a key is missing (the message names it and the keys present), or
      the file type is unsupported.
  """
  present = list_keys(path)
  missing = [k for k in keys if k not in present]
  if missing:
    raise ValueError(
        f"{str(path)!r} has no key {missing[0]!r}"
        f"{' (nor ' + ', '.join(map(repr, missing[1:])) + ')' if missing[1:] else ''}; "
        f"keys present: {sorted(present)}.")
  if _kind(path) == ".npz":
    with np.load(path, allow_pickle=False) as z:
      try:
        return {k: np.asarray(z[k]) for k in keys}
      except ValueError as e:
        raise ValueError(
            f"{str(path)!r}: cannot read {list(keys)} without pickle "
            "(object arrays are not supported in .npz files).") from e
  out = scipy.io.loadmat(path, variable_names=list(keys))
  result = {k: out[k] for k in keys}
  if not allow_object:
    for k, v in result.items():
      if v.dtype == object:
        raise ValueError(
            f"{str(path)!r}: key {k!r} is a cell/struct array, expected a numeric "
            "matrix.")
  return result
