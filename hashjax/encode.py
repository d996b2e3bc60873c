"""Turns a trained model plus data into hash codes on disk.

  python -m hashjax.encode --config=configs/rreh_wikipedia.py \
      --checkpoint=/tmp/hashjax/rreh_wiki/model.npz --split=database --modality=text \
      --out=/tmp/db_codes.npz

Output (``codes.npz``, the format :mod:`hashjax.search` reads): ``codes`` int8
``[n, bits]`` in {-1, +1}, ``ids`` int64 ``[n]`` (row numbers within the split),
``labels`` uint8 ``[n, C]``, ``bits`` and ``modality`` (name).

The method registry (:mod:`hashjax.methods`) loads the model: shallow methods (RREH,
baselines) read ``model.npz`` written by :func:`hashjax.experiment.train_and_evaluate`;
DCGH its Orbax checkpoint directory. Flags are defined when the command runs, not on
import.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from hashjax import cli, fileio, methods, validate

__all__ = ["define_flags", "encode_split", "load_encoder", "main"]


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the command's flags (once)."""
  if "checkpoint" in flag_values:
    return
  if "config" not in flag_values:   # hashjax.main's --config is the same flag
    config_flags.DEFINE_config_file(
        "config", None, "Config the model was trained with.", flag_values=flag_values)
  flags.DEFINE_string("checkpoint", None, "model.npz (shallow) or workdir (DCGH).",
                      flag_values=flag_values)
  flags.DEFINE_enum("split", "database", ["train", "query", "database"],
                    "Which split to encode.", flag_values=flag_values)
  flags.DEFINE_string("modality", None, "View name or index (default: the first view).",
                      flag_values=flag_values)
  flags.DEFINE_string("out", None, "Output .npz path (local or gs://...).",
                      flag_values=flag_values)
  flags.mark_flags_as_required(["config", "checkpoint", "out"], flag_values=flag_values)


def load_encoder(config: Any, checkpoint: str):
  """``encode_fn(x [n, d_m], m) -> {-1,+1} codes [n, bits]`` of a saved model."""
  method = methods.get(config.method)
  model = method.load(config, checkpoint)
  return lambda x, m: method.encode(model, x, m)


def encode_split(config: Any, checkpoint: str, split: str, modality: str | int | None
                 ) -> dict[str, np.ndarray]:
  """Encodes one modality of one split; returns the arrays written to ``codes.npz``."""
  return methods.get(config.method).encode_split(config, checkpoint, split, modality)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  validate.validate_config(f.config)
  if "://" not in f.out:
    out_dir = os.path.dirname(os.path.abspath(f.out))
    if not os.path.isdir(out_dir):
      raise ValueError(f"--out={f.out}: folder {out_dir} does not exist.")
  if f.config.method != "dcgh":   # model file vs config, before importing JAX
    from hashjax import serialization  # pylint: disable=g-import-not-at-top
    meta = serialization.load_meta(f.checkpoint)
    if meta.get("method") != f.config.method:
      raise ValueError(f"{f.checkpoint} holds a {meta.get('method')!r} model but "
                       f"the config is for {f.config.method!r}.")
    validate.check_model_bits(f.config, meta.get("bits"), f.checkpoint)
  out = encode_split(f.config, f.checkpoint, f.split, f.modality)
  path = f.out if f.out.endswith(".npz") else f.out + ".npz"   # as np.savez names it
  buf = io.BytesIO()
  np.savez(buf, **out)
  fileio.write_bytes(path, buf.getvalue())
  print(f"wrote {out['codes'].shape[0]} codes of {int(out['bits'])} bits "
        f"({out['modality']}) to {path}")


if __name__ == "__main__":
  define_flags()
  f = flags.FLAGS
  cli.run_absl(main, key_flags=tuple(
      f[n] for n in ("config", "checkpoint", "split", "modality", "out")))
