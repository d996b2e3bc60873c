"""experiments/rreh_select_eval.py: the --fit table's arithmetic by hand."""

import experiment_scripts
import numpy as np


def _rec(name, seed, val_best_map, default_map):
  fixed = dict(theta=0.03, lam=0.01, init_v="pca")
  other = dict(theta=0.3, lam=0.01, init_v="gaussian")
  grid = [dict(fixed, map=default_map, val_map=0.1),
          dict(other, map=val_best_map, val_map=0.9)]        # the labelled pick
  return dict(dataset=name, seed=seed, ratio=0.1, grid=grid,
              criterion=[dict(p, score=s) for p, s in ((fixed, 0.5), (other, 0.4))],
              baselines=dict(cca_itq=0.1, cvh=0.2, cmfh=0.3),
              now=dict(chosen=fixed))


def test_fit_table_by_hand():
  mod = experiment_scripts.load("rreh_select_eval.py")
  assert mod._parse_extra("ridge_cap=3,init_v=pca") == dict(ridge_cap=3.0, init_v="pca")
  assert mod._config_tag({}) == "defaults"
  assert mod._config_tag(dict(ridge_cap=0.0)) == "ridge_cap=0"
  recs = [_rec("a", 0, 0.60, 0.50), _rec("a", 1, 0.70, 0.66),
          _rec("b", 0, 0.40, 0.40), _rec("b", 1, 0.44, 0.44)]
  fits = []
  for r, got, off in zip(recs, (0.595, 0.695, 0.25, 0.43), (0.51, 0.65, 0.40, 0.45)):
    for config, m in (({}, got), (dict(ridge_cap=0.0), off)):
      fits.append(dict(dataset=r["dataset"], seed=r["seed"], ratio=0.1, config=config,
                       map=m))
  lines = mod._fit_table(recs, fits, 0.1)
  text = "\n".join(lines)
  # defaults: a gaps 0.005, 0.005 -> 0.005 (within); b gaps 0.15, 0.01 -> 0.08.
  assert ("fit with defaults: within 0.01 of (c) on 1 of 2 data sets (mean gap 0.0425, "
          "max 0.0800)") in text
  # ridge_cap=0: a gaps 0.09, 0.05 -> 0.07; b 0.0, -0.01 -> -0.005 (within).
  assert "fit with ridge_cap=0: within 0.01 of (c) on 1 of 2 data sets" in text
  # Baselines (max 0.3): defaults a 0.645, b 0.34 -> both above.
  assert "on 2 of 2." in text
  # Rounding: ridge_cap=0 fits against the grid's default point (0.50, 0.66, 0.40,
  # 0.44): |diff| 0.01, 0.01, 0, 0.01 -> median 0.01, max 0.01.
  assert "median 0.0100, max 0.0100 over 4 units" in text
  row_a = next(x for x in lines if x.startswith("| a |"))
  np.testing.assert_equal(row_a.count("|"), 3 + 2 * 2 + 1)
