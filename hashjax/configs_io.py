"""The one config-file loader: ``configs/<method>_<dataset>.py`` -> ``get_config(arg)``.

Outside the absl entry points (``hashjax.main``, ``hashjax.encode``) so that library
code, experiment scripts and tests can load configs without defining flags::

  from hashjax.configs_io import load_config_file
  config = load_config_file("configs/rreh_uci.py", "views=all,bits=32")

``load_config_file(path, arg)`` is what ``--config=path:arg`` does on the command line
(without ``lock_config``).
"""

from __future__ import annotations

import importlib.util
import os
import types
from typing import Any

__all__ = ["load_config_file", "load_config_module"]


def load_config_module(path: str | os.PathLike) -> types.ModuleType:
  """Imports the config file at ``path`` as a fresh module (not in ``sys.modules``)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"config file {path!r} does not exist.")
  name = "hashjax_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or spec.loader is None:
    raise ValueError(f"cannot import config file {path!r}.")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ValueError(f"config file {path!r} defines no get_config().")
  return module


def load_config_file(path: str | os.PathLike, arg: str | None = None) -> Any:
  """``get_config(arg)`` of the config file at ``path`` (``get_config()`` if None)."""
  module = load_config_module(path)
  return module.get_config(arg) if arg is not None else module.get_config()
