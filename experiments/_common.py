"""What the experiment scripts share: run metadata, mean ± std cells, result files.

Every results JSON written by a script in experiments/ carries :func:`environment`
(the command, versions, platform, CPU count, devices and date), and every "mean ±
std over seeds" cell is :func:`mean_std` (sample standard deviation, ddof 1).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["RESULTS", "ROOT", "command", "environment", "mean_std", "summary",
           "sweep_bar", "write_results"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results")


def sweep_bar(total: int, desc: str):
  """A tqdm bar (stderr) over the runs of a sweep; ``update(1)`` after each run."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, position=0)


def command() -> str:
  """The command line that runs this script, relative to the repository root."""
  script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
  return "python " + " ".join([script] + sys.argv[1:])


def environment(**extra: Any) -> dict[str, Any]:
  """Run metadata: command, versions, platform, CPUs, devices, UTC date (+ ``extra``)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  return dict(
      command=command(), jax=jax.__version__, numpy=np.__version__,
      python=platform.python_version(), platform=platform.platform(),
      cpu_count=os.cpu_count(),
      devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      **extra)


def summary(values: Sequence[float]) -> dict[str, Any]:
  """``{mean, std, values}`` with the sample std (ddof 1; 0 for a single value)."""
  vals = [float(v) for v in values]
  std = statistics.stdev(vals) if len(vals) > 1 else 0.0
  return dict(mean=statistics.fmean(vals), std=std, values=vals)


def mean_std(values: Sequence[float]) -> str:
  """``"0.1234 ± 0.0056"`` (sample std); one value prints alone, none as ``n/a``."""
  if not values:
    return "n/a"
  s = summary(values)
  if len(values) == 1:
    return f"{s['mean']:.4f}"
  return f"{s['mean']:.4f} ± {s['std']:.4f}"


def write_results(name: str, payload: dict[str, Any], md: str,
                  out: str = RESULTS) -> None:
  """Writes ``<out>/<name>.json`` and ``<out>/<name>.md``."""
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, f"{name}.json"), "w") as f:
    json.dump(payload, f, indent=2, default=float)
  with open(os.path.join(out, f"{name}.md"), "w") as f:
    f.write(md if md.endswith("\n") else md + "\n")
