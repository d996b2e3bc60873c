"""parse_arg and every config file under configs/."""

import pathlib

import pytest

from hashjax.config_utils import parse_arg
from hashjax.configs_io import load_config_module

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
KNOWN_METHODS = {"rreh", "cca_itq", "cvh", "cmfh", "dcgh"}


def test_parse_arg_types_and_flags():
  out = parse_arg("bits=32,runlocal,ratio=0.5,name=x", bits=64, runlocal=False,
                  ratio=1.0, name="y")
  assert out == {"bits": 32, "runlocal": True, "ratio": 0.5, "name": "x"}
  assert parse_arg(None, bits=64) == {"bits": 64}


@pytest.mark.parametrize("arg,match", [
    ("bitz=3", "unknown config argument 'bitz'"),
    ("bits", "needs a value"),
    ("runlocal=maybe", "not a bool"),
])
def test_parse_arg_errors(arg, match):
  with pytest.raises(ValueError, match=match):
    parse_arg(arg, bits=64, runlocal=False)


def _load(path):
  return load_config_module(path)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.py")), ids=lambda p: p.stem)
def test_every_config_builds(path):
  mod = _load(path)
  cfg = mod.get_config()
  assert cfg.method in KNOWN_METHODS
  assert isinstance(cfg.bits, int) and cfg.bits > 0
  assert mod.__doc__ and "python -m hashjax.main" in mod.__doc__, (
      "the launch command belongs in the config docstring")
