"""RREH (docs/rreh.md) on NUS-WIDE features, for users who have them (not shipped).

The standard shallow-hashing layout: one ``.mat`` / ``.npz`` file holding ``XAll``
``[n, 4096]`` (VGG fc7 image features), ``YAll`` ``[n, 1000]`` (tag bag-of-words) and
``LAll`` ``[n, C]`` (multi-hot labels; the 10- or 21-concept subset), read with the
generic ``features`` data set of hashjax.data (keys can be changed with ``image_key``
/ ``text_key`` / ``label_key``). Files in the DJSRH/UGACH layout are separate; merge
them once, e.g. ``np.savez("nuswide.npz", XAll=..., YAll=..., LAll=...)``.
Protocol: 2000 queries (seeded), database = the rest (about 190k items), RREH
trained on ``num_train`` (default 10000) database items of which ``paired_ratio``
(default 0.1) keep both views. k = 600 anchors as in the paper; theta, lam, init_v
and the W ridge's spectral cap are chosen without labels by ``hashjax.rreh.select``
(held-out paired items retrieve their counterparts' neighbours) unless given as
arguments (``theta``, ``lam``, ``init_v``, ``ridge_cap`` (0 = none); ``select=false``
uses hashjax.rreh.criterion.FIXED).

  python -m hashjax.main \\
      --config=configs/rreh_nuswide.py:path=/data/nuswide.npz \\
      --workdir=/tmp/hashjax/rreh_nuswide
"""

from hashjax.config_utils import rreh_feature_config


def get_config(arg=None):
  return rreh_feature_config(arg, image_key="XAll", num_classes=None)
