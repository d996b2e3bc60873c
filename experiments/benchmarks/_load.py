"""Load-gated timing for the benchmarks: every measurement records the load average.

A measurement taken while the 1-minute load average is above ``max_load`` (before
or after it) is repeated, up to ``retries`` more times, waiting ``wait_s`` between
tries; the kept measurement is the last one, flagged ``quiet`` when both loads were
at or below ``max_load``. Use from a benchmark script (experiments/benchmarks is on
``sys.path`` when one of them runs)::

  m = _load.measure(lambda: search(...), max_load=1.5, retries=3)
  m["seconds"], m["load_before"], m["load_after"], m["attempts"], m["quiet"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["measure", "median", "summary"]


def measure(fn: Callable[[], Any], *, max_load: float = 1.5, retries: int = 3,
            wait_s: float = 10.0) -> dict[str, Any]:
  """Times ``fn()``; repeats while the load average exceeds ``max_load``.

  Args:
    fn: the work; its return value is passed back (block on JAX results inside).
    max_load: highest 1-minute load average for a "quiet" measurement.
    retries: extra tries after a loaded one (0: measure once).
    wait_s: seconds to wait before a retry.

  Returns:
    ``{"result", "seconds", "load_before", "load_after", "attempts", "quiet",
    "history"}``; ``history`` lists ``[seconds, load_before, load_after]`` of
    every try (1-minute loads).
  """
  history = []
  for attempt in range(retries + 1):
    if attempt:
      time.sleep(wait_s)
    before = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    after = os.getloadavg()[0]
    history.append([seconds, before, after])
    quiet = before <= max_load and after <= max_load
    if quiet:
      break
  return {"result": result, "seconds": seconds, "load_before": before,
          "load_after": after, "attempts": attempt + 1, "quiet": quiet,
          "history": history}


def summary(m: dict[str, Any]) -> dict[str, Any]:
  """``m`` without the result (for JSON)."""
  return {k: v for k, v in m.items() if k != "result"}


def median(ms: list[dict[str, Any]]) -> dict[str, Any]:
  """The measurement of median time among ``measure`` results (the upper one of an
  even count)."""
  return sorted(ms, key=lambda m: m["seconds"])[len(ms) // 2]
