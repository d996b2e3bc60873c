"""RREH (SPEC §1) on MIRFlickr-25K features, for users who have them (not shipped).

The standard shallow-hashing layout: one ``.mat`` / ``.npz`` file holding
``FAll`` ``[n, 4096]`` (VGG fc7 image features), ``YAll`` ``[n, 1386]`` (tag
bag-of-words) and ``LAll`` ``[n, 24]`` (multi-hot concept labels), read with the
generic ``features`` data set of hashjax.data (keys can be changed with
``image_key`` / ``text_key`` / ``label_key``). Files in the DJSRH/UGACH layout are
separate; merge them once, e.g. ``np.savez("mirflickr.npz", FAll=..., YAll=..., LAll=...)``.
Protocol: 2000 queries (seeded), database = the rest, RREH trained on ``num_train``
(default 10000) database items of which ``paired_ratio`` (default 0.1) keep both
views. k = 600 anchors as in the paper; theta / beta / lam from the Wikipedia / UCI
validation (experiments/results/rreh_tune.md) — re-tune on a training split for new
data (experiments/rreh_tune.py).

  python -m hashjax.main \\
      --config=configs/rreh_mirflickr.py:path=/data/mirflickr.npz \\
      --workdir=/tmp/hashjax/rreh_mirflickr
"""

import ml_collections

from hashjax.config_utils import parse_arg


def get_config(arg=None):
  a = parse_arg(arg, path="", image_key="FAll", text_key="YAll", label_key="LAll",
                bits=64, paired_ratio=0.1, mode="disjoint", num_query=2000,
                num_train=10000, seed=0, iterations=20, num_anchors=600, runlocal=False)
  c = ml_collections.ConfigDict()
  c.method = "rreh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.data = ml_collections.ConfigDict(dict(
      name="features", path=a["path"] or None, views=None,
      view_keys=[a["image_key"], a["text_key"]], view_names=["image", "text"],
      label_key=a["label_key"], num_classes=24, label_offset=0,
      num_query=a["num_query"], num_train=a["num_train"], seed=0))
  c.semi_paired = ml_collections.ConfigDict(dict(
      paired_ratio=a["paired_ratio"], mode=a["mode"], seed=a["seed"]))
  c.rreh = ml_collections.ConfigDict(dict(
      num_anchors=a["num_anchors"], theta=1.0, beta=0.1, lam=0.01,
      iterations=a["iterations"], kernel=True, orthogonal_v=False, delta2=None,
      reconstruct_against="anchors"))
  c.eval = ml_collections.ConfigDict(dict(top_r=100, ks=()))
  if a["runlocal"]:
    c.rreh.iterations = min(c.rreh.iterations, 3)
    c.data.num_query, c.data.num_train = 200, 1000
  return c
