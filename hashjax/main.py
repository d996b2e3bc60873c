"""Entry point: ``python -m hashjax.main --config=configs/rreh_wikipedia.py --workdir=DIR``.

Reads the config, asks the method registry (:mod:`hashjax.methods`) for the method's
``train_and_evaluate`` and runs it. Without ``--config`` it runs the default job, RREH
on the shipped Wikipedia data (``configs/rreh_wikipedia.py`` of the source tree).
Config arguments go after a colon: ``--config=configs/rreh_uci.py:views=all,bits=32``;
single fields can be overridden with ``--config.bits=32``. ``--workdir`` may be any
path ``etils.epath`` opens (a local folder, ``gs://bucket/run``).

Flags are defined when the command runs (:func:`run`), not on import, so this module
and :mod:`hashjax.encode` can be imported together.
"""

from __future__ import annotations

import os

from absl import app, flags
from ml_collections import config_flags

from hashjax import cli, methods, validate
from hashjax.configs_io import load_config_file

__all__ = ["DEFAULT_CONFIG", "define_flags", "get_train_and_evaluate",
           "load_config_file", "main", "run"]

# configs/ sits next to the hashjax/ package in a source checkout (the README's install).
DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
    "rreh_wikipedia.py")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines ``--config`` and ``--workdir`` (once)."""
  if "workdir" in flag_values:
    return
  if "config" not in flag_values:
    config_flags.DEFINE_config_file(
        "config", None,
        "Path to a config file (configs/<method>_<dataset>.py); default: RREH on "
        "Wikipedia.", flag_values=flag_values, lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory for results/checkpoints (local "
                      "or gs://...).", flag_values=flag_values)


def get_train_and_evaluate(method: str):
  """Returns ``train_and_evaluate(config, workdir)`` of ``method`` (the registry's)."""
  return methods.get(method).train_and_evaluate_fn()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = flags.FLAGS.config
  if config is None:
    if not os.path.exists(DEFAULT_CONFIG):
      raise app.UsageError(
          f"--config is required (the default {DEFAULT_CONFIG} exists only in a "
          "source checkout).")
    config = load_config_file(DEFAULT_CONFIG)
  # Every setting and the workdir are checked before JAX is imported (issue 15).
  validate.validate_config(config)
  workdir = flags.FLAGS.workdir
  validate.check_workdir(workdir)
  if not workdir:
    cli.warn("no --workdir given: nothing (results, model, checkpoints) will be saved.")
  from hashjax import distributed  # pylint: disable=g-import-not-at-top

  distributed.initialize()
  get_train_and_evaluate(config.method)(config, workdir)


def run():
  define_flags()
  cli.run_absl(main, key_flags=(flags.FLAGS["config"], flags.FLAGS["workdir"]))


if __name__ == "__main__":
  run()
