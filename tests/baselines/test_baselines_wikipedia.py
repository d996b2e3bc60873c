"""Smoke check on real data: cross-modal mAP on Wikipedia is well above chance.

Query = the 693 test pairs, database = the 2173 training pairs (each method trained on
all training pairs); relevant = same class; mAP@all with Hamming ranking, ties broken
by database index. Chance is about 0.11 for these class frequencies.
"""

import importlib.resources

import jax
import numpy as np
import pytest
import scipy.io

from hashjax import baselines


def _map_at_all(q_codes, db_codes, q_labels, db_labels):
  dist = (q_codes.shape[1]
          - q_codes.astype(np.int64) @ db_codes.astype(np.int64).T) // 2
  aps = []
  for i in range(q_codes.shape[0]):
    order = np.argsort(dist[i], kind="stable")
    rel = (db_labels[order] == q_labels[i]).astype(np.float64)
    if rel.sum() == 0:
      aps.append(0.0)
      continue
    prec = np.cumsum(rel) / np.arange(1, rel.size + 1)
    aps.append(float(np.sum(prec * rel) / rel.sum()))
  return float(np.mean(aps))


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
