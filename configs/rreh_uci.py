"""RREH (docs/rreh.md) on UCI multiple features (handwritten digits, shipped), semi-paired.

2000 items, 400 queries (seeded), database = training = the other 1600. ``views``
picks views by name: ``fac+pix`` (default, two modalities) or ``all`` (the six views
fac, fou, kar, mor, pix, zer: M = 6). Training: ``paired_ratio`` (default 0.1) of the
training items keep every view; the rest is dealt out disjointly over the views.
theta, lam, init_v and the W ridge's spectral cap are chosen without labels by
``hashjax.rreh.select`` unless given (``theta``, ``lam``, ``init_v``, ``ridge_cap``
(0 = none) arguments; ``select=false`` uses hashjax.rreh.criterion.FIXED). ``view_weights``: per-view weights of the joint fit
(docs/rreh.md#weights): empty = uniform, ``auto`` = chosen without labels, or one
weight per view joined by ``+`` (``views=all,view_weights=1+1+1+0.2+1+1``).

  python -m hashjax.main --config=configs/rreh_uci.py --workdir=/tmp/hashjax/rreh_uci
  python -m hashjax.main --config=configs/rreh_uci.py:views=all --workdir=/tmp/hashjax/rreh_uci6
  python -m hashjax.main --config=configs/rreh_uci.py:views=all,view_weights=auto \
      --workdir=/tmp/hashjax/rreh_uci6w
"""

from hashjax.config_utils import RREH_ARGS, parse_arg, rreh_config

ALL_VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")


def get_config(arg=None):
  a = parse_arg(arg, bits=64, paired_ratio=0.1, views="fac+pix", mode="disjoint",
                seed=0, iterations=20, runlocal=False, **RREH_ARGS)
  views = ALL_VIEWS if a["views"] == "all" else tuple(a["views"].split("+"))
  return rreh_config(a, data=dict(
      name="uci_mfeat", path=None, views=list(views), num_query=400, num_train=None,
      seed=0), num_anchors=600, beta=0.1)
