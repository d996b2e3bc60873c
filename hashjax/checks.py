"""Input validation shared by every public entry point.

Each check raises ``ValueError`` naming the argument, what was expected and what was
given. Checks run in Python on concrete (host) values or on static shapes, never on
traced values, so they are free under ``jax.jit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_bits",
    "check_codes",
    "check_finite",
    "check_labels",
    "check_matrix",
    "check_positive_int",
    "check_same_rows",
    "check_varies",
    "check_view_weights",
    "constant_view_error",
]


def _is_concrete(x: Any) -> bool:
  try:
    import jax  # pylint: disable=g-import-not-at-top

    return not isinstance(x, jax.core.Tracer)
  except ImportError:  # pragma: no cover
    return True


def check_positive_int(name: str, value: Any) -> int:
  """Returns ``value`` as an int, or raises if it is not a positive integer."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be a positive integer, got {value!r}.")
  if value <= 0:
    raise ValueError(f"{name} must be positive, got {value}.")
  return int(value)


def check_bits(bits: Any) -> int:
  """Validates a number of hash bits (a positive integer)."""
  return check_positive_int("bits", bits)


def check_matrix(name: str, x: Any, *, cols: int | None = None) -> None:
  """Checks that ``x`` is a 2-D array with at least one row (and ``cols`` columns)."""
  shape = getattr(x, "shape", None)
  if shape is None:
    raise ValueError(f"{name} must be an array, got {type(x).__name__}.")
  if len(shape) != 2:
    raise ValueError(f"{name} must be 2-D [n, d], got shape {tuple(shape)}.")
  if shape[0] == 0:
    raise ValueError(f"{name} is empty (shape {tuple(shape)}).")
  if cols is not None and shape[1] != cols:
    raise ValueError(
        f"{name} must have {cols} columns, got shape {tuple(shape)}.")


_FINITE_BLOCK = 1 << 22  # elements per block: no full-size boolean temporary


def check_finite(name: str, x: Any) -> None:
  """Raises if a concrete array holds NaN or inf (tracers are skipped).

  Large arrays (e.g. a memory-mapped feature file) are checked in blocks of rows,
  so the check needs no boolean array of the input's size.
  """
  if not _is_concrete(x):
    return
  arr = np.asarray(x)
  if arr.dtype.kind not in "fc":
    return
  if arr.ndim == 0 or arr.size <= _FINITE_BLOCK:
    blocks = [arr]
  else:
    rows = max(1, _FINITE_BLOCK // max(1, arr.size // arr.shape[0]))
    blocks = (arr[s:s + rows] for s in range(0, arr.shape[0], rows))
  bad = sum(int(np.size(b) - np.count_nonzero(np.isfinite(b))) for b in blocks)
  if bad:
    raise ValueError(f"{name} contains {bad} NaN or inf value(s).")


def constant_view_error(name: str) -> ValueError:
  """The error for a view whose paired rows are all the same (one message for the
  config path's early check, :func:`check_varies`, and RREH's standardisation)."""
  return ValueError(
      f"{name} is constant (every paired item has the same features): it carries no "
      "information to learn a hash from.")


def check_varies(name: str, x: Any) -> None:
  """Raises :func:`constant_view_error` if every row of a concrete ``[n, d]`` array
  equals its first row (all-zero or constant features), checked in blocks of rows."""
  if not _is_concrete(x):
    return
  arr = np.asarray(x)
  if arr.ndim != 2 or arr.shape[0] == 0:
    return
  rows = max(1, _FINITE_BLOCK // max(1, arr.shape[1]))
  first = np.asarray(arr[:1])
  if not any(np.any(np.asarray(arr[s:s + rows]) != first)
             for s in range(0, arr.shape[0], rows)):
    raise constant_view_error(name)


def check_codes(name: str, codes: Any, *, bits: int | None = None) -> None:
  """Checks ``codes`` is [n, bits] with every entry in {-1, +1}."""
  check_matrix(name, codes, cols=bits)
  if not _is_concrete(codes):
    return
  arr = np.asarray(codes)
  if not _all_signs(arr):
    bad = np.unique(arr[(arr != 1) & (arr != -1)])[:5]
    raise ValueError(
        f"{name} must hold only -1 and +1, found other values such as {bad.tolist()}.")


_SIGN_CHECK_ROWS = 1 << 16  # rows per block: the temporaries stay in cache


def _all_signs(arr: np.ndarray) -> bool:
  """Whether every entry of the matrix ``arr`` is -1 or +1, block by block of rows.

  int8 (the dtype codes are stored in) uses one test on the bytes: ``x + 1`` wraps
  to 0 for -1 (0xFF) and is 2 for +1, so ``(x + 1) & ~2`` is zero exactly for
  those two values. At 1M x 128 that is about 4x faster than comparing the whole
  array twice.
  """
  for s in range(0, arr.shape[0], _SIGN_CHECK_ROWS):
    block = arr[s:s + _SIGN_CHECK_ROWS]
    if block.dtype == np.int8:
      u = block.view(np.uint8)
      if np.any((u + np.uint8(1)) & np.uint8(0xFD)):
        return False
    elif not np.all((block == 1) | (block == -1)):
      return False
  return True


def check_labels(name: str, labels: Any, *, rows: int | None = None) -> None:
  """Checks multi-hot ``labels`` [n, C] with entries in {0, 1}."""
  check_matrix(name, labels)
  if rows is not None and labels.shape[0] != rows:
    raise ValueError(
        f"{name} has {labels.shape[0]} rows but {rows} items were given.")
  if not _is_concrete(labels):
    return
  arr = np.asarray(labels)
  if not np.all((arr == 0) | (arr == 1)):
    raise ValueError(f"{name} must be multi-hot (entries 0 or 1).")


def check_same_rows(names: Sequence[str], arrays: Sequence[Any]) -> None:
  """Checks that all arrays have the same number of rows."""
  rows = [a.shape[0] for a in arrays]
  if len(set(rows)) > 1:
    desc = ", ".join(f"{n}: {r}" for n, r in zip(names, rows))
    raise ValueError(f"row counts differ ({desc}); rows must be the same items.")


VIEW_WEIGHTS_AUTO = "auto"


def check_view_weights(name: str, value: Any, num_views: int | None = None
                       ) -> None | str | tuple[float, ...]:
  """Validates per-view weights and normalises them to sum to the number of views.

  Args:
    name: the argument's name (for the message).
    value: None (uniform), ``"auto"`` (chosen without labels), or a sequence of
      positive finite numbers, one per view.
    num_views: the number of views M, if known (then the length must match).

  Returns:
    None, ``"auto"``, or a tuple of M floats ``M w_i / sum_j w_j`` (computed in
    float64, so weights that differ by a common factor give the same tuple up to
    rounding, and ``(1, ..., 1)`` stays exactly ones).

  Raises:
    ValueError: anything else: a string other than ``"auto"``, a scalar, fewer than 2
      or (``num_views`` given) not M weights, a weight that is 0, negative, NaN, inf
      or not a number.
  """
  if value is None:
    return None
  if isinstance(value, str):
    if value == VIEW_WEIGHTS_AUTO:
      return value
    raise ValueError(f"{name} must be None, 'auto' or one positive number per view, "
                     f"got {value!r}.")
  if isinstance(value, np.ndarray):
    value = value.tolist()
  if not isinstance(value, Sequence):
    raise ValueError(  # noqa: TRY004 (config errors are ValueErrors: one CLI line)
        f"{name} must be None, 'auto' or one positive number per view, got {value!r}.")
  if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
         for v in value):
    raise ValueError(f"{name} must hold numbers, got {list(value)!r}.")
  w = np.asarray(value, np.float64)
  if w.ndim != 1 or w.size < 2:
    raise ValueError(f"{name} needs one weight per view (at least 2), got "
                     f"{list(value)!r}.")
  if num_views is not None and w.size != num_views:
    raise ValueError(f"{name} has {w.size} weights but there are {num_views} views.")
  if not np.all(np.isfinite(w)) or np.any(w <= 0):
    raise ValueError(f"{name} must be > 0 and finite, got {list(value)!r}.")
  return tuple(float(x) for x in w * (w.size / np.sum(w)))
