"""configs/rreh_*.py: valid RREH settings, data fields the registry accepts."""

import pathlib
import re

import pytest

from hashjax import data as hdata
from hashjax import rreh
from hashjax.configs_io import load_config_module

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def _config(name, arg=None):
  mod = load_config_module(CONFIGS / f"{name}.py")
  return mod.get_config(arg), mod.__doc__


@pytest.mark.parametrize("name", ["rreh_wikipedia", "rreh_uci", "rreh_mirflickr",
                                  "rreh_nuswide"])
def test_rreh_config_fields(name):
  cfg, doc = _config(name)
  assert cfg.method == "rreh" and cfg.bits == 64 and cfg.eval.top_r == 100
  assert cfg.semi_paired.paired_ratio == 0.1 and cfg.semi_paired.mode == "disjoint"
  one_line = re.sub(r"\s*\\\n\s*", " ", doc)  # join shell line continuations
  assert f"python -m hashjax.main --config=configs/{name}.py" in one_line
  resolved = rreh.resolve_config(dict(cfg.rreh.to_dict(), bits=cfg.bits))
  assert resolved["num_anchors"] > 0 and resolved["iterations"] > 0
  if name in ("rreh_mirflickr", "rreh_nuswide"):
    # The registry accepts every data field; it stops only at the missing file.
    with pytest.raises(ValueError, match="needs a path"):
      hdata.get_retrieval_split(cfg.data)


def test_rreh_uci_views():
  cfg, _ = _config("rreh_uci")
  assert list(cfg.data.views) == ["fac", "pix"]
  cfg6, _ = _config("rreh_uci", "views=all,paired_ratio=0.3")
  assert list(cfg6.data.views) == ["fac", "fou", "kar", "mor", "pix", "zer"]
  assert cfg6.semi_paired.paired_ratio == 0.3
  split = hdata.get_retrieval_split(cfg6.data)
  assert split.train.num_modalities == 6 and split.query.num_items == 400


@pytest.mark.parametrize("name", ["rreh_wikipedia", "rreh_uci", "rreh_mirflickr"])
def test_rreh_config_selection_arguments(name):
  cfg = _config(name)[0]
  # Default: theta, lam, init_v chosen by label-free selection.
  assert cfg.rreh.init_v is None and cfg.rreh.theta is None and cfg.rreh.lam is None
  assert cfg.rreh.select is True
  fixed = _config(name, "init_v=gaussian,theta=0.3,lam=0.001,select=false")[0]
  assert fixed.rreh.init_v == "gaussian" and fixed.rreh.theta == 0.3
  assert fixed.rreh.lam == 0.001 and fixed.rreh.select is False
  resolved = rreh.resolve_config(dict(fixed.rreh.to_dict(), bits=fixed.bits))
  assert resolved["theta"] == 0.3 and resolved["init_v"] == "gaussian"
  cfg.rreh.theta = 3.0                  # overridable after the fact (typed field)
  assert rreh.resolve_config(dict(cfg.rreh.to_dict()))["theta"] == 3.0
