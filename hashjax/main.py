"""Entry point: ``python -m hashjax.main --config=configs/rreh_wikipedia.py --workdir=DIR``.

Reads the config, picks the method's ``train_and_evaluate`` and runs it. Without
``--config`` it runs the default job, RREH on the shipped Wikipedia data
(``configs/rreh_wikipedia.py`` of the source tree). Config
arguments go after a colon: ``--config=configs/rreh_uci.py:views=all,bits=32``; single
fields can be overridden with ``--config.bits=32``.
"""

from __future__ import annotations

import os

from absl import app, flags
from ml_collections import config_flags

from hashjax import cli, validate

__all__ = ["DEFAULT_CONFIG", "get_train_and_evaluate", "load_config_file", "main", "run"]

# configs/ sits next to the hashjax/ package in a source checkout (the README's install).
DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
    "rreh_wikipedia.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Path to a config file (configs/<method>_<dataset>.py); default: RREH on "
    "Wikipedia.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results/checkpoints.")


def load_config_file(path: str, arg: str | None = None):
  """Imports a config file and returns ``get_config(arg)`` (as ``--config=path:arg``)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location("hashjax_config", path)
  if spec is None or spec.loader is None:
    raise ValueError(f"cannot import config file {path!r}.")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def get_train_and_evaluate(method: str):
  """Returns ``train_and_evaluate(config, workdir)`` for ``method``."""
  from hashjax import experiment  # pylint: disable=g-import-not-at-top

  if method in experiment.SHALLOW_METHODS:
    return experiment.train_and_evaluate
  if method == "dcgh":
    from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top

    return train.train_and_evaluate
  raise ValueError(
      f"unknown method {method!r}; known: {list(experiment.SHALLOW_METHODS) + ['dcgh']}.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None:
    if not os.path.exists(DEFAULT_CONFIG):
      raise app.UsageError(
          f"--config is required (the default {DEFAULT_CONFIG} exists only in a "
          "source checkout).")
    config = load_config_file(DEFAULT_CONFIG)
  # Every setting and the workdir are checked before JAX is imported (issue 15).
  validate.validate_config(config)
  validate.check_workdir(_WORKDIR.value)
  if not _WORKDIR.value:
    cli.warn("no --workdir given: nothing (results, model, checkpoints) will be saved.")
  from hashjax import distributed  # pylint: disable=g-import-not-at-top

  distributed.initialize()
  get_train_and_evaluate(config.method)(config, _WORKDIR.value)


def run():
  cli.run_absl(main, key_flags=(_CONFIG, _WORKDIR))


if __name__ == "__main__":
  run()
