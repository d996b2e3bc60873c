"""DCGH, frozen-feature variant, on UCI multiple features (shipped with hashjax).

Two of the six views of the 2000 handwritten digits play "image" and "text"
(``views=fac+pix`` by default: 216-d profile correlations and 240-d pixel averages).
400 seeded queries, database = training = the other 1600, of which 160 are held out as
validation queries (model selection). MLP towers from scratch at lr 1e-3; loss,
optimiser and schedule as in DCGH (docs/dcgh.md). Single-label: negative pair terms are 0.
``label_fraction=0.1`` keeps the labels of a seeded 10% of the training items only
(``label_seed``, default the run's seed); DCGH then trains and validates on those
(docs/dcgh.md#labels).

  python -m hashjax.main --config=configs/dcgh_uci_features.py:bits=64 \\
      --workdir=/tmp/hashjax/dcgh_uci_64
"""

from hashjax.config_utils import dcgh_feature_config, parse_arg


def get_config(arg=None):
  a = parse_arg(arg, bits=64, seed=0, epochs=100, batch=128, label_fraction=1.0,
                label_seed=-1, views="fac+pix",
                parallelism="jit", runlocal=False)
  views = a["views"].split("+")
  if len(views) != 2:
    raise ValueError(f"DCGH needs exactly two views (a+b), got {a['views']!r}.")
  return dcgh_feature_config(a, data=dict(
      name="uci_mfeat", path=None, views=views, num_query=400, num_train=None,
      seed=0), num_validation=160)
