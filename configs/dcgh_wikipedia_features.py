"""DCGH, frozen-feature variant, on Wikipedia (shipped with hashjax).

The CLIP towers are replaced by MLPs on the data set's fixed features (128-d SIFT
bag-of-words images, 10-d LDA texts); loss, optimiser and schedule are DCGH's (docs/dcgh.md).
The MLP towers start from scratch, so they train at the heads' lr (1e-3) instead of
CLIP's fine-tuning lr (1e-5). Query = the 693 test pairs, database = the 2173 training
pairs; 217 training pairs are held out as validation queries (model selection), the
other 1956 train. Wikipedia is single-label, so DCGH's negative pair terms are 0.
``label_fraction=0.1`` keeps the labels of a seeded 10% of the training items only
(``label_seed``, default the run's seed); DCGH then trains and validates on those
(docs/dcgh.md#labels).

  python -m hashjax.main --config=configs/dcgh_wikipedia_features.py:bits=64 \\
      --workdir=/tmp/hashjax/dcgh_wiki_64
"""

from hashjax.config_utils import dcgh_feature_config, parse_arg


def get_config(arg=None):
  a = parse_arg(arg, bits=64, seed=0, epochs=100, batch=128, label_fraction=1.0,
                label_seed=-1, parallelism="jit",
                runlocal=False)
  return dcgh_feature_config(a, data=dict(
      name="wikipedia", path=None, views=None, num_query=None, num_train=None,
      seed=None), num_validation=217)
