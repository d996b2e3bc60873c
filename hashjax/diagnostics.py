"""Health of learned hash codes: bit balance, distinct codes, a collapse warning.

``codes_report({"image": codes_i, "text": codes_t})`` returns the ``"codes"`` entry
of a ``results.json`` (one dict per modality, see :func:`code_stats`) and prints one
warning line per modality whose codes collapsed (every item the same code, or bits
that almost never change), e.g. after a too-large learning rate or on a degenerate
view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["COLLAPSE_BALANCE", "code_stats", "codes_report"]

# Mean |per-bit mean| above this (a bit is +1 on >= 97.5% of the items, on average)
# counts as collapsed; so do fewer than 2 distinct codes.
COLLAPSE_BALANCE = 0.95


def code_stats(codes: Any) -> dict[str, Any]:
  """Bit balance and distinct codes of a ``{-1, +1}`` code matrix.

  Args:
    codes: ``[n, bits]`` in {-1, +1} (any integer or float dtype).

  Returns:
    ``num_items``, ``bits``, ``distinct_codes`` (number of different rows),
    ``bit_balance`` (per-bit mean, ``[bits]`` floats in [-1, 1]; 0 = balanced),
    ``mean_abs_bit_balance`` and ``collapsed`` (``distinct_codes < 2`` or
    ``mean_abs_bit_balance > COLLAPSE_BALANCE``).
  """
  c = np.asarray(codes)
  if c.ndim != 2 or c.shape[0] == 0:
    raise ValueError(f"codes must be a non-empty [n, bits] matrix, got {c.shape}.")
  plus = c > 0
  balance = plus.mean(axis=0) * 2.0 - 1.0                       # mean of +-1 per bit
  packed = np.packbits(plus, axis=1)                            # [n, ceil(bits/8)]
  distinct = int(np.unique(packed, axis=0).shape[0])
  mean_abs = float(np.abs(balance).mean())
  return {"num_items": int(c.shape[0]), "bits": int(c.shape[1]),
          "distinct_codes": distinct,
          "bit_balance": [round(float(b), 4) for b in balance],
          "mean_abs_bit_balance": round(mean_abs, 4),
          "collapsed": bool(distinct < 2 or mean_abs > COLLAPSE_BALANCE)}


def codes_report(codes: Mapping[str, Any], *, warn: bool = True) -> dict[str, Any]:
  """:func:`code_stats` per modality (``results.json["codes"]``); warns on collapse.

  Args:
    codes: ``{modality name: [n, bits] codes}`` (e.g. the database codes).
    warn: print one ``hashjax: warning:`` line per collapsed modality (stderr).
  """
  out = {name: code_stats(c) for name, c in codes.items()}
  if warn:
    from hashjax import cli  # pylint: disable=g-import-not-at-top

    for name, s in out.items():
      if s["collapsed"]:
        cli.warn(f"{name} codes collapsed: {s['distinct_codes']} distinct code(s) over "
                 f"{s['num_items']} items, mean |bit balance| "
                 f"{s['mean_abs_bit_balance']:.2f} (1 = every bit constant); retrieval "
                 "by these codes is meaningless (learning rate too high? a degenerate "
                 "view?).")
  return out
