"""DCGH on NUS-WIDE (21 classes, 195,834 items) with CLIP ViT-B/32 (paper setting, SPEC §2).

Data in the DCHMT / DCGH layout (``index.mat``, ``caption.txt``, ``label.mat`` in
``root``; images under ``image_root``, default ``root``; ``strip_prefix`` removes the
absolute prefix stored in ``index.mat``). Split seed 1818: query = first 5000 of the
permutation, train = next 10000, database = all but the query. 1000 database items
outside the training set are validation queries (model selection); the training set
is the paper's. CLIP weights and vocabulary from a local folder (``clip=``: an HF
``openai/clip-vit-base-patch32`` folder, or ``clip=ViT-B-32.pt,vocab=<folder with
vocab.json + merges.txt>``). 100 epochs, batch 128, bits 16/32/64. ``legacy_rng``
reproduces the reference's ``np.random.permutation`` split for files in its row order.
``dtype=bfloat16`` computes in bf16 with float32 parameters and optimiser state.

  python -m hashjax.main \\
      --config=configs/dcgh_nuswide.py:bits=64,root=/data/nuswide,clip=/models/clip-vit-base-patch32 \\
      --workdir=/tmp/hashjax/dcgh_nuswide_64
"""

import ml_collections

from hashjax.config_utils import parse_arg

DATASET = "nuswide"


def get_config(arg=None):
  a = parse_arg(arg, bits=64, root="", image_root="", strip_prefix="", clip="", vocab="",
                seed=0, epochs=100, batch=128, num_val=1000, legacy_rng=False,
                parallelism="jit", dtype="float32",
                runlocal=False)
  c = ml_collections.ConfigDict()
  c.method = "dcgh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.num_epochs = a["epochs"]
  c.parallelism = a["parallelism"]
  c.data = ml_collections.ConfigDict(dict(
      name=DATASET, root=a["root"] or None, image_root=a["image_root"] or None,
      strip_prefix=a["strip_prefix"] or None, num_query=5000, num_train=10000, seed=1818,
      legacy_rng=a["legacy_rng"]))
  c.validation = ml_collections.ConfigDict(dict(num_items=a["num_val"], seed=0,
                                                source="rest"))
  c.input = ml_collections.ConfigDict(dict(
      batch_size=a["batch"], eval_batch_size=256, image_size=224, num_threads=8,
      prefetch=4))
  c.text = ml_collections.ConfigDict(dict(
      tokenizer="clip", path=a["vocab"] or a["clip"] or None, context_length=32))
  c.model = ml_collections.ConfigDict(dict(
      kind="clip", preset="checkpoint" if a["clip"] else "vit_b32",
      clip_path=a["clip"] or None, context_length=32, dropout=0.2, dtype=a["dtype"],
      remat=False))
  c.loss = ml_collections.ConfigDict(dict(neg_weight=0.8, pos_weight=0.05))
  c.optim = ml_collections.ConfigDict(dict(
      tower_lr=1e-5, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
      weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
      proxy_weight_decay=5e-4))
  c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=2))
  c.eval = ml_collections.ConfigDict(dict(top_r=None, query_every_eval=True))
  c.eval_every_epochs = 1
  c.log_every_steps = 50
  c.progress_bar = True
  c.stop_after_steps = 0   # > 0: stop (after saving) at that step; 0: run to the end
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1))
  if a["runlocal"]:   # CPU-sized: tiny towers, a locally trained BPE, few items
    c.num_epochs = min(c.num_epochs, 2)
    c.data.num_query, c.data.num_train = 40, 160
    c.validation.num_items = min(c.validation.num_items, 24)
    c.input.update(batch_size=16, eval_batch_size=32, image_size=32, num_threads=2)
    c.text.update(tokenizer="bpe", path=None, vocab_size=512)
    c.model.update(preset="tiny", clip_path=None, vision=dict(image_size=32, patch_size=8))
    c.optim.tower_lr = 1e-3
    c.log_every_steps = 5
    c.checkpoint.every_steps = 10
  return c
