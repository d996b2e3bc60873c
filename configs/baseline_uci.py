"""Unsupervised baselines (CCA-ITQ, CVH, CMFH) on UCI multiple features (shipped).

2000 handwritten digits in six views; 400 queries (seeded), database = training = the
other 1600. ``views`` picks views by name (``views=fac+pix`` by default; ``views=all`` for six).

  python -m hashjax.main --config=configs/baseline_uci.py:method=cvh,bits=64 \
      --workdir=/tmp/hashjax/cvh_uci
"""

import ml_collections

from hashjax.config_utils import parse_arg

ALL_VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")


def get_config(arg=None):
  a = parse_arg(arg, method="cmfh", bits=64, paired_ratio=1.0, views="fac+pix",
                seed=0, runlocal=False)
  if a["method"] not in ("cca_itq", "cvh", "cmfh"):
    raise ValueError(f"method must be cca_itq, cvh or cmfh, got {a['method']!r}.")
  views = ALL_VIEWS if a["views"] == "all" else tuple(a["views"].split("+"))
  c = ml_collections.ConfigDict()
  c.method = a["method"]
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.data = ml_collections.ConfigDict(dict(
      name="uci_mfeat", path=None, views=list(views), num_query=400, num_train=None,
      seed=0))
  c.semi_paired = ml_collections.ConfigDict(dict(
      paired_ratio=a["paired_ratio"], mode="disjoint", seed=a["seed"]))
  c.baseline = ml_collections.ConfigDict()
  c.eval = ml_collections.ConfigDict(dict(top_r=100, ks=()))
  return c
