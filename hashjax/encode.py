"""Turns a trained model plus data into hash codes on disk.

  python -m hashjax.encode --config=configs/rreh_wikipedia.py \
      --checkpoint=/tmp/hashjax/rreh_wiki/model.npz --split=database --modality=text \
      --out=/tmp/db_codes.npz

Output (``codes.npz``, the format :mod:`hashjax.search` reads): ``codes`` int8
``[n, bits]`` in {-1, +1}, ``ids`` int64 ``[n]`` (row numbers within the split),
``labels`` uint8 ``[n, C]``, ``bits`` and ``modality`` (name).

Shallow methods (RREH, baselines) load ``model.npz`` written by
:func:`hashjax.experiment.train_and_evaluate`; DCGH loads its Orbax checkpoint
directory (``hashjax.dcgh.export.encode_split`` / ``load_encoder``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from hashjax.codes import modality_index

__all__ = ["encode_split", "load_encoder", "main"]

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config the model was trained with.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "model.npz (shallow) or checkpoint dir (DCGH).")
_SPLIT = flags.DEFINE_enum("split", "database", ["train", "query", "database"], "Which split to encode.")
_MODALITY = flags.DEFINE_string("modality", None, "View name or index (default: the first view).")
_OUT = flags.DEFINE_string("out", None, "Output .npz path.")


def load_encoder(config: Any, checkpoint: str):
  """Returns ``encode_fn(x [n, d_m], m) -> {-1,+1} codes [n, bits]`` of a saved model."""
  from hashjax import experiment, serialization  # pylint: disable=g-import-not-at-top

  method = config.method
  if method in experiment.SHALLOW_METHODS:
    model, meta = serialization.load_pytree(checkpoint)
    if meta.get("method") != method:
      raise ValueError(
          f"{checkpoint} holds a {meta.get('method')!r} model but the config is for "
          f"{method!r}.")
    if method == "rreh":
      from hashjax import rreh  # pylint: disable=g-import-not-at-top

      return lambda x, m: rreh.encode(model, x, m)
    from hashjax import baselines  # pylint: disable=g-import-not-at-top

    impl = baselines.get_baseline(method)
    return lambda x, m: impl.encode(model, x, m)
  if method == "dcgh":
    from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top

    return export.load_encoder(config, checkpoint)
  raise ValueError(f"unknown method {method!r}.")


def encode_split(config: Any, checkpoint: str, split: str, modality: str | int | None
                 ) -> dict[str, np.ndarray]:
  """Encodes one modality of one split; returns the arrays written to ``codes.npz``."""
  if config.method == "dcgh":  # images + captions (or features), dealt as in training
    from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top

    return export.encode_split(config, checkpoint, split, modality)
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top

  parts = hdata.get_retrieval_split(config.data)
  if split not in parts._fields:
    raise ValueError(f"split must be one of {parts._fields}, got {split!r}.")
  part = getattr(parts, split)
  m = 0 if modality is None else modality_index(modality, part.num_modalities,
                                                 tuple(part.view_names))
  codes = np.asarray(load_encoder(config, checkpoint)(part.views[m], m)).astype(np.int8)
  return {"codes": codes, "ids": np.arange(part.num_items, dtype=np.int64),
          "labels": part.labels, "bits": np.int64(codes.shape[1]),
          "modality": np.array(part.view_names[m])}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out = encode_split(_CONFIG.value, _CHECKPOINT.value, _SPLIT.value, _MODALITY.value)
  np.savez(_OUT.value, **out)
  print(f"wrote {out['codes'].shape[0]} codes of {int(out['bits'])} bits "
        f"({out['modality']}) to {_OUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "checkpoint", "out"])
  app.run(main)
