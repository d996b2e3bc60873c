"""DCGH end to end on COCO-MINI: real JPEGs + captions, tiny CLIP-shaped towers, CPU.

Exercises the whole image-text path in a few minutes: JPEG decoding, CLIP
preprocessing, a byte-level BPE tokenizer trained on the training captions, the
ViT / causal-text towers (tiny, random init), DCGH loss and optimiser, Orbax
checkpoints, resumption and evaluation. Far too small for meaningful mAP.

Data: the official COCO json layout; by default the committed fixture
``hashjax/data/files/coco_mini`` (16 train2017 + 8 val2017 images, shipped with the
package: ``hashjax.data.coco_mini_root()``); pass
``root=/path/to/coco_mini`` for the full COCO-MINI (159 images) with e.g.
``num_query=30,num_val=20``. train2017 and val2017 are pooled and split as DCGH does:
a seeded permutation, query = first ``num_query``, validation = the last ``num_val``
items, train = the rest.

  python -m hashjax.main --config=configs/dcgh_coco_mini.py --workdir=/tmp/dcgh_mini
  python -m hashjax.main --config=configs/dcgh_coco_mini.py:root=/data/coco_mini,num_query=30,num_val=20 \\
      --workdir=/tmp/dcgh_mini_full
"""

import os

import ml_collections

from hashjax.config_utils import parse_arg
from hashjax.data import coco_mini_root


def get_config(arg=None):
  a = parse_arg(arg, root=str(coco_mini_root()), bits=16, seed=0, epochs=10, batch=8,
                num_query=6, num_val=4, image_size=32, parallelism="jit", runlocal=False)
  c = ml_collections.ConfigDict()
  c.method = "dcgh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.num_epochs = a["epochs"]
  c.parallelism = a["parallelism"]
  c.data = ml_collections.ConfigDict(dict(
      name="coco_json", root=os.path.normpath(a["root"]), splits=("train2017", "val2017"),
      num_query=a["num_query"], num_train=None, seed=1818, legacy_rng=False))
  c.validation = ml_collections.ConfigDict(dict(num_items=a["num_val"], seed=0,
                                                source="rest"))
  c.input = ml_collections.ConfigDict(dict(
      batch_size=a["batch"], eval_batch_size=a["batch"], image_size=a["image_size"],
      num_threads=2, prefetch=2))
  c.text = ml_collections.ConfigDict(dict(tokenizer="bpe", vocab_size=400,
                                          context_length=24))
  c.model = ml_collections.ConfigDict(dict(
      kind="clip", preset="tiny", context_length=24, dropout=0.2, clip_path=None,
      vision=dict(image_size=a["image_size"], patch_size=8)))
  c.loss = ml_collections.ConfigDict(dict(neg_weight=0.8, pos_weight=0.05))
  # Random-init towers train at the heads' lr (CLIP fine-tuning would use 1e-5).
  c.optim = ml_collections.ConfigDict(dict(
      tower_lr=1e-3, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
      weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
      proxy_weight_decay=5e-4))
  c.checkpoint = ml_collections.ConfigDict(dict(every_steps=4, keep=2,
                                                on_damage="fallback"))
  c.eval = ml_collections.ConfigDict(dict(top_r=None, query_every_eval=True))
  c.eval_every_epochs = 2
  c.log_every_steps = 2
  c.progress_bar = True
  c.stop_after_steps = 0   # > 0: stop (after saving) at that step; 0: run to the end
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1))
  if a["runlocal"]:
    c.num_epochs = min(c.num_epochs, 2)
    c.eval_every_epochs = 1
  return c
