"""Registry, the common fit/encode surface for M = 3 views, and no retracing."""

import jax
import numpy as np
import pytest

from hashjax import baselines
from hashjax.baselines import cca_itq, cmfh, cvh

# Continuous hyper-parameters of each method: two settings that must share one trace.
_HYPER = {
    "cca_itq": ({"reg": 1e-3, "scale_power": 1.0}, {"reg": 1e-2, "scale_power": 0.5}),
    "cvh": ({"reg": 1e-3}, {"reg": 1e-1}),
    "cmfh": ({"mu": 100.0, "gamma": 0.01, "lambdas": [0.2, 0.3, 0.5]},
             {"mu": 10.0, "gamma": 0.1, "lambdas": [0.4, 0.4, 0.2]}),
}


def test_registry():
  assert set(baselines.BASELINES) == {"cca_itq", "cvh", "cmfh"}
  assert baselines.get_baseline("cca_itq") is cca_itq
  assert baselines.get_baseline("cvh") is cvh
  assert baselines.get_baseline("cmfh") is cmfh
  for impl in baselines.BASELINES.values():
    assert callable(impl.fit) and callable(impl.encode)
  with pytest.raises(ValueError, match="unknown baseline 'itq'"):
    baselines.get_baseline("itq")


@pytest.mark.parametrize("name", ["cca_itq", "cvh", "cmfh"])
def test_three_views_and_no_retrace(np_rng, name):
  impl = baselines.get_baseline(name)
  z = np_rng.normal(size=(120, 3))
  dims = (5, 4, 6)
  views = [(z @ np_rng.normal(size=(3, d)) + 0.1 * np_rng.normal(size=(120, d)))
           .astype(np.float32) for d in dims]
  first, second = _HYPER[name]
  before = impl._fit._cache_size()  # pylint: disable=protected-access
  m1 = impl.fit(views, bits=3, rng=jax.random.key(0), **first)
  m2 = impl.fit(views, bits=3, rng=jax.random.key(1), **second)
  assert impl._fit._cache_size() == before + 1  # pylint: disable=protected-access
  for model in (m1, m2):
    assert len(model.means) == len(model.projections) == len(model.thresholds) == 3
    codes = [np.asarray(impl.encode(model, v, m)) for m, v in enumerate(views)]
    for c, d, p in zip(codes, dims, model.projections):
      assert p.shape == (d, 3)
      assert c.dtype == np.int8 and c.shape == (120, 3)
      assert set(np.unique(c)) <= {-1, 1}
    # Strongly shared 3-d latent: every pair of views mostly agrees bit by bit.
    for a in range(3):
      for b in range(a + 1, 3):
        assert np.mean(codes[a] == codes[b]) > 0.8, (name, a, b)
