"""Smoke check on real data: cross-modal mAP on Wikipedia is well above chance.

Query = the 693 test pairs, database = the 2173 training pairs (each method trained on
all training pairs); relevant = same class; mAP@all with Hamming ranking, ties broken
by database index. Chance is about 0.11 for these class frequencies.
"""

import importlib.resources

import jax
import numpy as np
import retrieval_reference
import pytest
import scipy.io

from hashjax import baselines


_map_at_all = retrieval_reference.mean_ap   # the shared NumPy reference


@pytest.fixture(scope="module")
def wiki():
  path = importlib.resources.files("hashjax.data") / "files" / "wikipedia.mat"
  with importlib.resources.as_file(path) as p:
    d = scipy.io.loadmat(p)
  return {k: d[k].astype(np.float32) if k[0] in "IT" else d[k].ravel()
          for k in ("I_tr", "T_tr", "I_te", "T_te", "L_tr", "L_te")}


@pytest.mark.parametrize("name", ["cca_itq", "cvh", "cmfh"])
def test_wikipedia_map_above_chance(wiki, name):
  impl = baselines.get_baseline(name)
  extra = {"iterations": 30} if name == "cmfh" else {}
  model = impl.fit([wiki["I_tr"], wiki["T_tr"]], bits=8, rng=jax.random.key(0),
                   **extra)
  enc = lambda x, m: np.asarray(impl.encode(model, x, m))
  i2t = _map_at_all(enc(wiki["I_te"], 0), enc(wiki["T_tr"], 1), wiki["L_te"],
                    wiki["L_tr"])
  t2i = _map_at_all(enc(wiki["T_te"], 1), enc(wiki["I_tr"], 0), wiki["L_te"],
                    wiki["L_tr"])
  # Chance level for reference: a random ranking of the same database.
  rng = np.random.default_rng(0)
  chance = _map_at_all(np.ones((200, 1)), np.ones((2173, 1)),
                       rng.permutation(wiki["L_te"])[:200],
                       rng.permutation(wiki["L_tr"]))
  assert chance < 0.13
  assert i2t > 0.15 and t2i > 0.15, (name, i2t, t2i)
