"""RREH (docs/rreh.md) on Wikipedia (shipped with hashjax), semi-paired.

Query = the 693 test pairs, database = the 2173 training pairs (the standard protocol).
Training: ``paired_ratio`` (default 0.1) of the 2173 training items keep both views;
the rest is dealt out disjointly, half image-only, half text-only. theta, lam, init_v
and the W ridge's spectral cap are chosen without labels by ``hashjax.rreh.select``
(held-out paired items retrieve their counterparts' feature-space neighbours;
experiments/rreh_select_eval.py compares it with a labelled validation pick); give
them to fix them.

  python -m hashjax.main --config=configs/rreh_wikipedia.py --workdir=/tmp/hashjax/rreh_wiki

Arguments: ``bits``, ``paired_ratio``, ``mode`` (disjoint | shuffled), ``seed``,
``iterations``, ``theta``, ``lam`` (relative ridges), ``init_v`` (pca | gaussian),
``ridge_cap`` (0 = none, or kappa: docs/rreh.md#ridge-cap), ``select`` (false: hashjax.rreh.criterion.FIXED for those not given), e.g.
``--config=configs/rreh_wikipedia.py:bits=32,paired_ratio=0.3`` or
``--config=configs/rreh_wikipedia.py:theta=0.3,lam=0.001,init_v=pca``.
"""

from hashjax.config_utils import RREH_ARGS, parse_arg, rreh_config


def get_config(arg=None):
  a = parse_arg(arg, bits=64, paired_ratio=0.1, mode="disjoint", seed=0,
                iterations=20, runlocal=False, **RREH_ARGS)
  return rreh_config(a, data=dict(
      name="wikipedia", path=None, views=None, num_query=None, num_train=None, seed=0),
      num_anchors=600, beta=0.1)
