"""DCGH, frozen-feature variant, on Wikipedia (shipped with hashjax).

The CLIP towers are replaced by MLPs on the data set's fixed features (128-d SIFT
bag-of-words images, 10-d LDA texts); loss, optimiser and schedule are DCGH's (SPEC §2).
The MLP towers start from scratch, so they train at the heads' lr (1e-3) instead of
CLIP's fine-tuning lr (1e-5). Query = the 693 test pairs, database = the 2173 training
pairs; 217 training pairs are held out as validation queries (model selection), the
other 1956 train. Wikipedia is single-label, so DCGH's negative pair terms are 0.

  python -m hashjax.main --config=configs/dcgh_wikipedia_features.py:bits=64 \\
      --workdir=/tmp/hashjax/dcgh_wiki_64
"""

import ml_collections

from hashjax.config_utils import parse_arg


def get_config(arg=None):
  a = parse_arg(arg, bits=64, seed=0, epochs=100, batch=128, parallelism="jit",
                runlocal=False)
  c = ml_collections.ConfigDict()
  c.method = "dcgh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.num_epochs = a["epochs"]
  c.parallelism = a["parallelism"]
  c.data = ml_collections.ConfigDict(dict(
      name="wikipedia", path=None, views=None, num_query=None, num_train=None, seed=None))
  c.validation = ml_collections.ConfigDict(dict(num_items=217, seed=0, source="train"))
  c.input = ml_collections.ConfigDict(dict(
      batch_size=a["batch"], eval_batch_size=512, num_threads=0, prefetch=2))
  c.model = ml_collections.ConfigDict(dict(
      kind="features", hidden=(1024, 512), activation="relu", layer_norm=True,
      tower_dropout=0.0, dropout=0.2))
  c.loss = ml_collections.ConfigDict(dict(neg_weight=0.8, pos_weight=0.05))
  c.optim = ml_collections.ConfigDict(dict(
      tower_lr=1e-3, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
      weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
      proxy_weight_decay=5e-4))
  c.checkpoint = ml_collections.ConfigDict(dict(every_steps=400, keep=2))
  c.eval = ml_collections.ConfigDict(dict(top_r=100, query_every_eval=True))
  c.eval_every_epochs = 5
  c.log_every_steps = 100
  c.progress_bar = True
  c.stop_after_steps = 0   # > 0: stop (after saving) at that step; 0: run to the end
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1))
  if a["runlocal"]:
    c.num_epochs = min(c.num_epochs, 3)
    c.input.batch_size = 64
    c.model.hidden = (64,)
    c.eval_every_epochs = 1
    c.log_every_steps = 10
    c.checkpoint.every_steps = 20
  return c
