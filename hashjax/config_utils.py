"""Helpers for config files: ``parse_arg`` turns ``"bits=64,runlocal"`` into typed settings."""

from __future__ import annotations

from typing import Any

__all__ = ["parse_arg"]


def parse_arg(arg: str | None, **defaults: Any) -> dict[str, Any]:
  """Parses a config argument such as ``"bits=32,runlocal"`` against typed defaults.

  A bare word sets a bool default to True. Unknown keys raise ``ValueError`` (a typo
  in a launch command must not silently run the default experiment).

  Args:
    arg: comma-separated ``key=value`` / ``flag`` items, or None.
    **defaults: every accepted key with its default value (its type is the parse type).

  Returns:
    dict of settings.
  """
  out = dict(defaults)
  if not arg:
    return out
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, eq, raw = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}.")
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {key!r} needs a value ({key}=...).")
      out[key] = True
    elif isinstance(default, bool):
      if raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={raw!r} is not a bool.")
      out[key] = raw.lower() in ("true", "1")
    elif isinstance(default, int):
      out[key] = int(raw)
    elif isinstance(default, float):
      out[key] = float(raw)
    else:
      out[key] = raw
  return out
