"""DCGH on NUS-WIDE (21 classes, 195,834 items) with CLIP ViT-B/32 (paper setting, docs/dcgh.md).

Data in the DCHMT / DCGH layout (``index.mat``, ``caption.txt``, ``label.mat`` in
``root``; images under ``image_root``, default ``root``; ``strip_prefix`` removes the
absolute prefix stored in ``index.mat``). Split seed 1818: query = first 5000 of the
permutation, train = next 10000, database = all but the query. 1000 database items
outside the training set are validation queries (model selection); the training set
is the paper's. CLIP weights and vocabulary from a local folder (``clip=``: an HF
``openai/clip-vit-base-patch32`` folder, or ``clip=ViT-B-32.pt,vocab=<folder with
vocab.json + merges.txt>``). 100 epochs, batch 128, bits 16/32/64. The split is the
reference code's (``np.random.seed(1818); perm = np.random.permutation(n)``: query =
``perm[:5000]``, train = ``perm[5000:15000]``, database = ``perm[5000:]``) for files in
its row order; ``legacy_rng=False`` draws it with ``np.random.default_rng`` instead.
``dtype=bfloat16`` computes in bf16 with float32 parameters and optimiser state.

  python -m hashjax.main \\
      --config=configs/dcgh_nuswide.py:bits=64,root=/data/nuswide,clip=/models/clip-vit-base-patch32 \\
      --workdir=/tmp/hashjax/dcgh_nuswide_64
"""

from hashjax.config_utils import dcgh_paper_config


def get_config(arg=None):
  return dcgh_paper_config("nuswide", arg)
