"""RREH (docs/rreh.md) on MIRFlickr-25K features, for users who have them (not shipped).

The standard shallow-hashing layout: one ``.mat`` / ``.npz`` file holding
``FAll`` ``[n, 4096]`` (VGG fc7 image features), ``YAll`` ``[n, 1386]`` (tag
bag-of-words) and ``LAll`` ``[n, 24]`` (multi-hot concept labels), read with the
generic ``features`` data set of hashjax.data (keys can be changed with
``image_key`` / ``text_key`` / ``label_key``). Files in the DJSRH/UGACH layout are
separate; merge them once, e.g. ``np.savez("mirflickr.npz", FAll=..., YAll=..., LAll=...)``.
Protocol: 2000 queries (seeded), database = the rest, RREH trained on ``num_train``
(default 10000) database items of which ``paired_ratio`` (default 0.1) keep both
views. k = 600 anchors as in the paper; theta, lam, init_v and the W ridge's
spectral cap are chosen without labels by ``hashjax.rreh.select`` (label-free: held-out
paired items retrieve their counterparts' neighbours) unless given as arguments
(``theta``, ``lam``, ``init_v``, ``ridge_cap`` (0 = none); ``select=false`` uses
hashjax.rreh.criterion.FIXED).

  python -m hashjax.main \\
      --config=configs/rreh_mirflickr.py:path=/data/mirflickr.npz \\
      --workdir=/tmp/hashjax/rreh_mirflickr
"""

from hashjax.config_utils import rreh_feature_config


def get_config(arg=None):
  return rreh_feature_config(arg, image_key="FAll", num_classes=24)
