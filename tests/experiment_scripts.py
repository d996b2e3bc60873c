"""Loads a script of experiments/ as a module, as `python experiments/<script>.py`
runs it: with the script's own folder on ``sys.path``, where its shared helpers
(experiments/_common.py, experiments/benchmarks/_load.py, ...) are found."""

import importlib.util
import pathlib
import sys
from types import ModuleType

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def load(relpath: str) -> ModuleType:
  """The module of ``experiments/<relpath>``, freshly executed (a private name, so a
  test's changes to it do not leak into another test's copy)."""
  path = EXPERIMENTS / relpath
  if str(path.parent) not in sys.path:
    sys.path.insert(0, str(path.parent))
  name = relpath.replace("/", "_").removesuffix(".py") + "_under_test"
  spec = importlib.util.spec_from_file_location(name, path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod
