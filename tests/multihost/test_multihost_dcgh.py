"""DCGH on 2 real processes x 2 CPU devices against 1 process x 4 devices."""

import json

import pytest

from tests.multihost import launch

CONFIG = "configs/dcgh_wikipedia_features.py:runlocal=True"


def _metrics(results):
  """Validation mAPs of the selected step and every scalar query metric."""
  out = {f"validation/{k}": v
         for k, v in results["details"]["selected"]["validation"].items()}
  out.update({f"query/{d}/{k}": v for d, r in results["results"].items()
              for k, v in r.items() if isinstance(v, float)})
  return out


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
  """The documented launch line trains, evaluates and reports like one process."""
  runs = {}
  for name, procs, devs in (("p2", 2, 2), ("p1", 1, 4)):
    work = tmp_path / name
    launch.run(["hashjax.main", f"--config={CONFIG}", f"--workdir={work}"],
               num_processes=procs, devices_per_process=devs,
               log_dir=str(tmp_path / f"logs_{name}"), timeout=400)
    with open(work / "results.json") as f:
      runs[name] = json.load(f)
  a, b = _metrics(runs["p2"]), _metrics(runs["p1"])
  assert a.keys() == b.keys() and a
  for k in a:
    assert abs(a[k] - b[k]) <= 1e-4, (k, a[k], b[k])
  assert runs["p2"]["num_query"] == 693 and runs["p2"]["num_database"] == 2173
