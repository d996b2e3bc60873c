"""What the experiment scripts share: arguments, metadata, mean ± std, result files.

Every script in experiments/ builds its command line with :func:`parser` (``--help``
starts nothing; ``--out`` defaults to ``/tmp/hashjax-experiments/<name>``, outside the
repository, so that the committed ``experiments/results`` are only rewritten when
asked for with ``--out experiments/results``). Every results JSON carries
:func:`environment` (the command, versions, platform, CPU count, devices and date),
and every "mean ± std over seeds" cell is :func:`mean_std` (sample standard
deviation, ddof 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["OUT_ROOT", "RESULTS", "ROOT", "command", "cpu", "default_out", "environment",
           "labelled_pick", "mean_std", "parser", "pending_units", "run_units", "summary",
           "sweep_bar", "units_main",
           "units_parser", "write_report", "write_results"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results")   # the committed results
OUT_ROOT = os.path.join(tempfile.gettempdir(), "hashjax-experiments")


def default_out(name: str) -> str:
  """``/tmp/hashjax-experiments/<name>``: where a script writes unless told."""
  return os.path.join(OUT_ROOT, name)


def parser(name: str, doc: str) -> argparse.ArgumentParser:
  """A script's parser: its docstring as help, ``--out`` (default outside the repo).

  Args:
    name: the script's name (``rreh_headline``): the default ``--out`` folder.
    doc: the script's module docstring; its first line is the description, the rest
      the epilog of ``--help``.
  """
  first, _, rest = doc.strip().partition("\n")
  p = argparse.ArgumentParser(
      description=first, epilog=rest.strip() or None,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", default=default_out(name),
                 help=f"output folder (default {default_out(name)}, outside the "
                      "repository)")
  return p


def sweep_bar(total: int, desc: str):
  """A tqdm bar (stderr) over the runs of a sweep; ``update(1)`` after each run."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, position=0)


def command() -> str:
  """The command line that runs this script, relative to the repository root."""
  script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
  return "python " + " ".join([script] + sys.argv[1:])


_SIMD = ("avx512_vpopcntdq", "avx512f", "avx2")  # widest first: what popcounts run on


def cpu(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model and widest SIMD level (``"AMD EPYC, avx512_vpopcntdq"``), from
  /proc/cpuinfo; ``platform.processor()`` where that is missing.

  Speed ratios against faiss move with it: faiss and XLA use AVX-512's popcount
  where the host has it, so a figure taken on an AVX2 host need not hold on another.
  """
  try:
    with open(cpuinfo) as f:
      info = f.read()
  except OSError:
    return platform.processor() or platform.machine()
  model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
  flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
  have = set(flags.group(1).split()) if flags else set()
  simd = next((x for x in _SIMD if x in have), "no avx2")
  return f"{model.group(1).strip() if model else platform.machine()}, {simd}"


def environment(**extra: Any) -> dict[str, Any]:
  """Run metadata: command, versions, platform, CPU model and SIMD level, CPUs,
  devices, UTC date (+ ``extra``)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  return dict(
      command=command(), jax=jax.__version__, numpy=np.__version__,
      python=platform.python_version(), platform=platform.platform(),
      cpu=cpu(), cpu_count=os.cpu_count(),
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
                  out: str | None = None) -> None:
  """Writes ``<out>/<name>.json`` and ``<out>/<name>.md`` (None: default_out(name))."""
  out = default_out(name) if out is None else out
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, f"{name}.json"), "w") as f:
    json.dump(payload, f, indent=2, default=float)
  with open(os.path.join(out, f"{name}.md"), "w") as f:
    f.write(md if md.endswith("\n") else md + "\n")


def _unit(r: dict[str, Any]) -> tuple[str, int, float]:
  return r["dataset"], r["seed"], r["ratio"]


def units_parser(name: str, doc: str) -> argparse.ArgumentParser:
  """:func:`parser` with the arguments of a study over the evaluation's units:
  ``--ratios``, ``--datasets`` (comma list; default all), ``--seeds`` and
  ``--report`` (rewrite the report from the stored lines, fit nothing)."""
  p = parser(name, doc)
  p.add_argument("--ratios", default="0.1")
  p.add_argument("--datasets", default="", help="comma list (default: all)")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--report", action="store_true")
  return p


def write_report(md: str, out: str, name: str) -> None:
  """Writes ``<out>/<name>.md`` and prints it."""
  with open(os.path.join(out, name + ".md"), "w") as f:
    f.write(md)
  print(md)


def pending_units(units_path: str, done_path: str, *, ratios: Sequence[float],
                  seeds: Sequence[int], datasets: str = "",
                  done_if=None) -> list[dict[str, Any]]:
  """The (data set, seed, ratio) records of ``units_path`` (JSON lines) still to run.

  A study over the evaluation's units appends one JSON line per finished unit to
  ``done_path`` and resumes where it stopped: kept are the records whose ratio and
  seed are listed, whose data set is in ``datasets`` (a comma list; empty: all) and
  that have no line in ``done_path`` (``done_if(line)``: only lines it accepts count).
  """
  done = set()
  if os.path.exists(done_path):
    with open(done_path) as f:
      done = {_unit(r) for r in map(json.loads, f) if done_if is None or done_if(r)}
  want = set(datasets.split(",")) if datasets else None
  with open(units_path) as f:
    units = [json.loads(x) for x in f]
  return [r for r in units if r["ratio"] in ratios and r["seed"] in seeds
          and (want is None or r["dataset"] in want) and _unit(r) not in done]


def run_units(units_path: str, done_path: str, run_one, *, ratios: Sequence[float],
              seeds: Sequence[int], datasets: str = "", done_if=None,
              describe=None) -> None:
  """Runs ``run_one(record)`` on every :func:`pending_units` record and appends its
  result (a dict) as one JSON line to ``done_path``, printing the unit and
  ``describe(result)`` (default: its ``seconds``) as it goes."""
  for rec in pending_units(units_path, done_path, ratios=ratios, seeds=seeds,
                           datasets=datasets, done_if=done_if):
    out = run_one(rec)
    note = describe(out) if describe else f"{out['seconds']:.1f}s"
    print(*_unit(rec), note, flush=True)
    with open(done_path, "a") as fh:
      fh.write(json.dumps(out) + "\n")


def units_main(name: str, doc: str, units_path: str, run_one, report, *,
               describe=None) -> None:
  """The ``main`` of a study over the evaluation's units: :func:`units_parser`'s
  arguments; ``--report`` writes ``report(<out>/<name>.jsonl)`` (markdown) to
  ``<out>/<name>.md``, otherwise :func:`run_units` appends to that file."""
  a = units_parser(name, doc).parse_args()
  os.makedirs(a.out, exist_ok=True)
  path = os.path.join(a.out, name + ".jsonl")
  if a.report:
    write_report(report(path), a.out, name)
    return
  run_units(units_path, path, run_one, ratios=[float(x) for x in a.ratios.split(",")],
            seeds=[int(x) for x in a.seeds.split(",")], datasets=a.datasets,
            describe=describe)


def labelled_pick(grid: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """What a researcher with labels picks from a unit's fitted grid: the point of best
  validation mAP (``val_map``: database items as queries, database labels only), the
  first on ties. The evaluation's gaps are its test ``map`` minus a rule's."""
  return max(grid, key=lambda g: g["val_map"])
