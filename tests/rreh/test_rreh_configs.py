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
  # ridge_cap: "" = chosen with lam, 0 = none, a number fixes it.
  assert cfg.rreh.ridge_cap is None
  assert _config(name, "ridge_cap=0")[0].rreh.ridge_cap == 0.0
  assert _config(name, "ridge_cap=3")[0].rreh.ridge_cap == 3.0


def test_results_record_the_label_free_choice(tmp_path):
  # UCI fac+pix at 10% paired, 3 iterations: results.json names what selection chose
  # and scored; the saved model is the fit with those values given, W bit for bit.
  import json

  import jax
  import numpy as np

  from hashjax import experiment, methods
  from hashjax.rreh import criterion

  cfg = _config("rreh_uci", "runlocal")[0]
  experiment.train_and_evaluate(cfg, str(tmp_path))
  details = json.loads((tmp_path / "results.json").read_text())["details"]
  sel = details["hyper_selection"]
  assert set(sel["chosen"]) == set(criterion.SELECT_KEYS)
  table = [dict(r, score=-np.inf if r["score"] is None else r["score"])
           for r in sel["table"]]
  assert len(table) == 12 and all(np.isfinite(r["score"]) for r in table)
  pick = table[criterion.choose(table)]
  assert sel["chosen"] == {k: pick[k] for k in criterion.SELECT_KEYS}
  saved = methods.get("rreh").load(cfg, str(tmp_path / "model.npz"))
  given = cfg.copy_and_resolve_references()
  for k, v in sel["chosen"].items():
    given.rreh[k] = 0.0 if (k == "ridge_cap" and v is None) else v
  split = hdata.get_retrieval_split(cfg.data)
  sp = hdata.semi_paired_split(split.train.num_items, cfg.semi_paired.paired_ratio,
                               split.train.num_modalities, cfg.semi_paired.mode,
                               cfg.semi_paired.seed)
  paired, unpaired = hdata.apply_semi_paired(split.train, sp)
  refit = methods.get("rreh").fit(paired, unpaired, given, jax.random.key(cfg.seed))
  np.testing.assert_array_equal(np.asarray(refit.W), np.asarray(saved.W))
