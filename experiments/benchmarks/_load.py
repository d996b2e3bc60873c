"""Load-gated timing for the benchmarks: every measurement records the load average
and the host's speed.

A measurement taken while the 1-minute load average is above ``max_load`` (before
or after it) is repeated, up to ``retries`` more times, waiting ``wait_s`` between
tries; the kept measurement is the last one, flagged ``quiet`` when both loads were
at or below ``max_load``. Use from a benchmark script (experiments/benchmarks is on
``sys.path`` when one of them runs)::

  m = _load.measure(lambda: search(...), max_load=1.5, retries=3)
  m["seconds"], m["load_before"], m["load_after"], m["attempts"], m["quiet"]

The load average does not see everything: on this shared 2-core host a run at load
0.6 was 1.7x slower in every kernel than one a few minutes later at the same load
(experiments/RESULTS.md, issue 16). So before every try :func:`probe` times a fixed
XLA CPU kernel (XOR / popcount over a fixed set of codes, both cores; best of 3, a
few ms). A try whose probe takes more than ``PROBE_SLACK`` times the fastest probe
of the process so far is not quiet either, and is repeated like a loaded one; each
measurement records ``probe_s`` and ``probe_ratio``. :func:`host_summary` sums them
up for a report, against the fastest probe of the whole run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["PROBE_SLACK", "host_summary", "measure", "median", "probe", "summary"]

# A try whose probe is slower than this times the fastest probe so far is repeated.
PROBE_SLACK = 1.3
_PROBE: dict[str, Any] = {"fn": None, "best": float("inf")}


def _probe_kernel():
  """The jitted probe and its fixed inputs: 512 x 32768 pairs of 64-bit codes."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  key = jax.random.key(20261206)
  q = jax.random.bits(key, (512, 1, 2), jnp.uint32)
  d = jax.random.bits(jax.random.fold_in(key, 1), (1, 32768, 2), jnp.uint32)

  @jax.jit
  def kernel(q, d):
    return jnp.sum(jax.lax.population_count(q ^ d).astype(jnp.int32))
  jax.block_until_ready(kernel(q, d))      # compile outside the timings
  return lambda: jax.block_until_ready(kernel(q, d))


def probe(repeats: int = 3) -> float:
  """Seconds of the host-speed probe (best of ``repeats``); also updates the
  fastest probe of the process, against which :func:`measure` judges a try."""
  if _PROBE["fn"] is None:
    _PROBE["fn"] = _probe_kernel()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    _PROBE["fn"]()
    best = min(best, time.perf_counter() - t0)
  _PROBE["best"] = min(_PROBE["best"], best)
  return best


def measure(fn: Callable[[], Any], *, max_load: float = 1.5, retries: int = 3,
            wait_s: float = 10.0, check_host: bool = True) -> dict[str, Any]:
  """Times ``fn()``; repeats while the load average exceeds ``max_load`` or the host
  is slow.

  Args:
    fn: the work; its return value is passed back (block on JAX results inside).
    max_load: highest 1-minute load average for a "quiet" measurement.
    retries: extra tries after a loaded one (0: measure once).
    wait_s: seconds to wait before a retry.
    check_host: run :func:`probe` before every try; a try is quiet only if its probe
      is within ``PROBE_SLACK`` of the fastest probe so far.

  Returns:
    ``{"result", "seconds", "load_before", "load_after", "attempts", "quiet",
    "probe_s", "probe_ratio", "history"}``; ``history`` lists ``[seconds,
    load_before, load_after, probe_s, probe_ratio]`` of every try (1-minute loads;
    the probe fields None without ``check_host``).
  """
  history = []
  for attempt in range(retries + 1):
    if attempt:
      time.sleep(wait_s)
    probe_s = probe() if check_host else None
    ratio = probe_s / _PROBE["best"] if check_host else None
    before = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    after = os.getloadavg()[0]
    history.append([seconds, before, after, probe_s, ratio])
    quiet = (before <= max_load and after <= max_load
             and (ratio is None or ratio <= PROBE_SLACK))
    if quiet:
      break
  return {"result": result, "seconds": seconds, "load_before": before,
          "load_after": after, "attempts": attempt + 1, "quiet": quiet,
          "probe_s": probe_s, "probe_ratio": ratio, "history": history}


def host_summary(ms: list[dict[str, Any]]) -> dict[str, Any]:
  """The probes of the kept measurements ``ms`` against the fastest probe of the run:
  ``{"best_probe_s", "kept", "max_ratio", "slow"}`` (``slow``: kept measurements whose
  probe exceeds ``PROBE_SLACK`` times the run's fastest)."""
  best = _PROBE["best"]
  ratios = [m["probe_s"] / best for m in ms if m.get("probe_s") is not None]
  return {"best_probe_s": best, "kept": len(ratios),
          "max_ratio": max(ratios, default=float("nan")),
          "slow": sum(r > PROBE_SLACK for r in ratios)}


def summary(m: dict[str, Any]) -> dict[str, Any]:
  """``m`` without the result (for JSON)."""
  return {k: v for k, v in m.items() if k != "result"}


def median(ms: list[dict[str, Any]]) -> dict[str, Any]:
  """The measurement of median time among ``measure`` results (the upper one of an
  even count)."""
  return sorted(ms, key=lambda m: m["seconds"])[len(ms) // 2]
