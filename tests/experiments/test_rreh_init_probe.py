"""experiments/rreh_init_probe.py: its rotated PCA start and its report's arithmetic."""

import experiment_scripts
import jax
import numpy as np

from hashjax import rreh


def test_rotated_pca_start_spans_the_pca_subspace():
  mod = experiment_scripts.load("rreh_init_probe.py")
  rs = np.random.default_rng(0)
  paired = [rs.normal(size=(30, d)) for d in (6, 5)]
  unpaired = [rs.normal(size=(10, d)) for d in (6, 5)]
  cfg = rreh.resolve_config(dict(bits=4, num_anchors=12))
  problem, _ = rreh.make_problem(paired, unpaired, cfg, jax.random.key(1))
  rng = jax.random.key(2)
  pca = np.asarray(rreh.solver._pca_directions(problem, rng, 4), np.float64)
  rot = np.asarray(mod.start_directions(problem, rng, 4, "pca_rot"), np.float64)
  # Same subspace (projectors equal), orthonormal columns, but not the same basis.
  np.testing.assert_allclose(rot @ rot.T, pca @ pca.T, atol=1e-5)
  np.testing.assert_allclose(rot.T @ rot, np.eye(4), atol=1e-5)
  assert np.abs(np.abs(rot) - np.abs(pca)).max() > 0.1
  half = np.asarray(mod.start_directions(problem, rng, 4, "pca_half"), np.float64)
  gauss = np.asarray(jax.random.normal(rng, (pca.shape[0], 4)), np.float64)
  np.testing.assert_allclose(half, np.concatenate([pca[:, :2], gauss[:, 2:]], axis=1),
                             rtol=1e-6, atol=1e-6)


def _grid(cap, rows):
  return [dict(cap=cap, theta=t, start=s, map=m, val_map=v, objective=o)
          for t, s, m, v, o in rows]


def test_analyse_by_hand():
  mod = experiment_scripts.load("rreh_init_probe.py")
  unit = ("d", 0, 0.1)
  # theta 1: gaussian has the lower objective, pca the better validation mAP;
  # theta 2: pca has both. Other starts only matter for their own rows.
  rows = [(1.0, "gaussian", 0.50, 0.40, 9.0), (1.0, "pca", 0.60, 0.55, 10.0),
          (2.0, "gaussian", 0.45, 0.35, 8.0), (2.0, "pca", 0.58, 0.50, 7.0),
          (1.0, "pca_rot", 0.52, 0.5, 0.0), (2.0, "pca_rot", 0.4, 0.4, 0.0),
          (1.0, "gauss_mean", 0.3, 0.3, 0.0), (2.0, "gauss_mean", 0.3, 0.3, 0.0)]
  rec = dict(dataset="d", seed=0, ratio=0.1, grid=_grid(None, rows) + _grid(3.0, rows))
  ev = {unit: dict(grid=[dict(map=0.62, val_map=0.9), dict(map=0.7, val_map=0.1)])}
  # The criterion prefers (theta 1, gaussian) overall, pca at theta 2.
  table = [dict(theta=1.0, init_v="gaussian", score=0.8),
           dict(theta=1.0, init_v="pca", score=0.7),
           dict(theta=2.0, init_v="gaussian", score=0.1),
           dict(theta=2.0, init_v="pca", score=0.2)]
  res = mod.analyse([rec], ev, {None: {unit: dict(criterion=table)},
                                3.0: {unit: dict(criterion=table)}})
  got = res[(None, 0.1)]
  # Agreement with validation (pca at both thetas): objective 1 of 2, criterion 1.
  assert got["agree"] == dict(objective=1, criterion=1, cases=2)
  rules = got["rules"]
  # The labelled pick scores 0.62 (best validation mAP, not best test mAP).
  np.testing.assert_allclose(rules["criterion (theta, start)"]["d"], 0.62 - 0.50)
  np.testing.assert_allclose(
      rules["criterion theta, start by lower objective"]["d"], 0.62 - 0.50)
  np.testing.assert_allclose(rules["criterion theta, start pca"]["d"], 0.62 - 0.60)
  np.testing.assert_allclose(rules["criterion theta, start pca_rot"]["d"], 0.62 - 0.52)
  assert set(res) == {(None, 0.1), (3.0, 0.1)}
