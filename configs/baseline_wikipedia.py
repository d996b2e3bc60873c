"""Unsupervised baselines (CCA-ITQ, CVH, CMFH) on Wikipedia (shipped with hashjax).

Query = the 693 test pairs, database = the 2173 training pairs (the standard protocol).
By default a baseline is trained on ALL training pairs (paired_ratio=1.0); with
``paired_ratio=0.1`` it is trained on the paired 10% only, the usual semi-paired comparison.
Default bits: 64, except CCA-ITQ whose CCA step gives at most 10 directions here (the
text view is 10-d LDA), so it defaults to (and cannot exceed) 10 bits.

  python -m hashjax.main --config=configs/baseline_wikipedia.py:method=cmfh,bits=64 \
      --workdir=/tmp/hashjax/cmfh_wiki
"""

import ml_collections

from hashjax.config_utils import parse_arg


def get_config(arg=None):
  a = parse_arg(arg, method="cmfh", bits=0, paired_ratio=1.0, seed=0, runlocal=False)
  # CCA gives at most min(d_m) directions and Wikipedia's text view is 10-d.
  if a["bits"] == 0:
    a["bits"] = 10 if a["method"] == "cca_itq" else 64
  if a["method"] not in ("cca_itq", "cvh", "cmfh"):
    raise ValueError(f"method must be cca_itq, cvh or cmfh, got {a['method']!r}.")
  c = ml_collections.ConfigDict()
  c.method = a["method"]
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.data = ml_collections.ConfigDict(dict(
      name="wikipedia", path=None, views=None, num_query=None, num_train=None, seed=0))
  c.semi_paired = ml_collections.ConfigDict(dict(
      paired_ratio=a["paired_ratio"], mode="disjoint", seed=a["seed"]))
  c.baseline = ml_collections.ConfigDict()  # method defaults
  c.eval = ml_collections.ConfigDict(dict(top_r=100, ks=()))
  return c
