"""experiments/benchmarks/_load.py: a slow host (by the speed probe) is retried like a
loaded one; the real probe runs."""

import time

import experiment_scripts
import pytest


def test_measure_retries_while_the_host_probe_is_slow():
  mod = experiment_scripts.load("benchmarks/_load.py")
  # Probe times (3 repeats per probe, best kept): 10 ms, then 60 ms (slow), then 10.
  delays = iter([0.01] * 3 + [0.06] * 3 + [0.01] * 3)
  mod._PROBE["fn"] = lambda: time.sleep(next(delays))
  first = mod.measure(lambda: 1, max_load=1e9, retries=2, wait_s=0)
  assert first["attempts"] == 1 and first["quiet"] and first["result"] == 1
  m = mod.measure(lambda: 2, max_load=1e9, retries=2, wait_s=0)
  assert m["attempts"] == 2 and m["quiet"]
  slow, fast = m["history"]
  assert slow[4] > mod.PROBE_SLACK and fast[4] <= mod.PROBE_SLACK
  assert m["probe_ratio"] == fast[4]
  h = mod.host_summary([first, m])
  assert h["kept"] == 2 and h["slow"] == 0 and h["max_ratio"] <= mod.PROBE_SLACK
  # Without retries the slow try is kept and flagged.
  delays = iter([0.06] * 3)
  kept = mod.measure(lambda: 3, max_load=1e9, retries=0, wait_s=0)
  assert not kept["quiet"] and mod.host_summary([kept])["slow"] == 1
  # check_host=False: no probe at all.
  off = mod.measure(lambda: 4, max_load=1e9, retries=0, check_host=False)
  assert off["probe_s"] is None and off["quiet"]


def test_real_probe_runs():
  mod = experiment_scripts.load("benchmarks/_load.py")
  t = mod.probe(repeats=2)
  assert 0 < t < 10 and mod._PROBE["best"] == pytest.approx(t)
