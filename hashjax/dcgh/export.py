"""Hash codes from a trained DCGH run: ``load_encoder`` and ``encode_split``.

  python -m hashjax.encode --config=configs/dcgh_coco_mini.py --checkpoint=/tmp/dcgh_coco_mini \\
      --split=database --out=/tmp/codes.npz

Both read the parameters with the best validation mAP (``workdir/best``, written by
:func:`hashjax.dcgh.train.train_and_evaluate`); a locally trained BPE tokenizer is
read back from ``workdir/tokenizer``. Codes are int8 ``{-1, +1}`` (``sign(0) = +1``).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hashjax import checkpoint as ckpt_lib
from hashjax import fileio, validate
from hashjax.codes import binarize, modality_index
from hashjax.dcgh import input_pipeline as pp
from hashjax.dcgh.factory import build_model

__all__ = ["MODALITIES", "DCGHEncoder", "encode_split", "load_best_params",
           "load_encoder", "save_encoder"]

MODALITIES = ("image", "text")


def _workdir(checkpoint: str) -> str:
  path = fileio.path(checkpoint)
  return os.fspath(path.parent if path.name == "best" else path)


def load_best_params(config: Any, checkpoint: str) -> tuple[Any, Any]:
  """``(model, params)`` of a run's best checkpoint.

  Args:
    config: the run's config.
    checkpoint: the run's workdir (or its ``best/`` folder).

  Returns:
    the flax module (vocabulary size read from the checkpoint for BPE runs) and its
    parameters (NumPy leaves).

  Raises:
    ValueError: no checkpoint under ``checkpoint``.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  best_dir = fileio.join(_workdir(checkpoint), "best")
  if not fileio.isdir(best_dir):
    raise ValueError(f"no best/ checkpoint folder under {checkpoint!r}: pass the workdir "
                     "of a finished DCGH run.")
  with ocp.CheckpointManager(best_dir) as mgr:
    step = mgr.best_step() if mgr.best_step() is not None else mgr.latest_step()
    if step is None:
      raise ValueError(f"no checkpoint under {best_dir}.")
    problem = ckpt_lib.verify_step(os.path.join(best_dir, str(step)))
    if problem not in (None, "unsealed"):
      raise ckpt_lib.CheckpointDamagedError(
          f"best checkpoint step {step} ({best_dir}/{step}) is damaged: {problem}.")
    tree = mgr.restore(step, args=ocp.args.StandardRestore())
    params = tree["params"]
  if "proxies" in tree:   # a saved encoder copy holds the parameters only
    validate.check_model_bits(config, np.shape(tree["proxies"])[-1], best_dir)
  model_cfg = {"model": config.model.to_dict(), "bits": int(config.bits)}
  if config.model.get("kind") == "clip" and config.text.get("tokenizer") == "bpe":
    vocab = int(np.asarray(params["text_tower"]["token_embedding"]["embedding"]).shape[0])
    model_cfg["model"]["text"] = {**dict(config.model.get("text", None) or {}),
                                  "vocab_size": vocab, "eos_token_id": vocab - 1}
  return build_model(model_cfg), params


class DCGHEncoder:
  """``encoder(x, m) -> int8 {-1,+1} [n, bits]``: a DCGH module and its parameters.

  m = 0 encodes images (features ``[n, d1]`` or preprocessed ``[n, S, S, 3]``),
  m = 1 texts (features ``[n, d2]`` or token ids ``[n, L]``).
  """

  def __init__(self, module: Any, params: Any):
    self.module, self.params = module, params
    self._fns = tuple(
        jax.jit(lambda p, x, name=name: module.apply({"params": p}, x, method=name))
        for name in ("encode_image", "encode_text"))

  def __call__(self, x: Any, m: int) -> np.ndarray:
    h = self._fns[modality_index(m, 2, MODALITIES)](self.params, jnp.asarray(x))
    return np.asarray(binarize(h, jnp.int8))


def load_encoder(config: Any, checkpoint: str) -> DCGHEncoder:
  """The :class:`DCGHEncoder` of a run's best parameters.

  Args:
    config: the run's config.
    checkpoint: the run's workdir (or its ``best/`` folder).
  """
  return DCGHEncoder(*load_best_params(config, checkpoint))


def save_encoder(path: str, encoder: DCGHEncoder, meta: Any = None) -> None:
  """Writes ``encoder``'s parameters as ``path/best`` (what :func:`load_encoder` reads).

  ``meta`` is accepted for the registry's common ``save`` signature and not stored
  (a DCGH run's ``config.json`` describes the model).
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  del meta
  with ocp.CheckpointManager(fileio.join(path, "best"),
                             options=ocp.CheckpointManagerOptions(create=True)) as mgr:
    mgr.save(0, args=ocp.args.StandardSave({"params": encoder.params}), force=True)
    mgr.wait_until_finished()


def _modality_index(modality: str | int | None) -> int:
  return 0 if modality is None else modality_index(modality, 2, MODALITIES)


def encode_split(config: Any, checkpoint: str, split: str,
                 modality: str | int | None = None) -> dict[str, np.ndarray]:
  """Encodes one modality of one split of a DCGH run's data (the ``codes.npz`` arrays).

  The data are dealt exactly as in training (:func:`input_pipeline.build_sources`):
  ``query`` and ``database`` are the test split; ``train`` the training items (the
  validation items held out). Images get the evaluation preprocessing, texts their
  first caption.

  Args:
    config: the run's config.
    checkpoint: the run's workdir (or its ``best/`` folder).
    split: ``"train"``, ``"query"`` or ``"database"``.
    modality: ``"image"`` / 0 (default) or ``"text"`` / 1.

  Returns:
    ``codes`` int8 ``[n, bits]``, ``ids`` int64 ``[n]`` (rows within the split),
    ``labels`` uint8 ``[n, C]``, ``bits``, ``modality`` (name).
  """
  if split not in ("train", "query", "database"):
    raise ValueError(f"split must be 'train', 'query' or 'database', got {split!r}.")
  m = _modality_index(modality)
  workdir = _workdir(checkpoint)
  if (config.model.get("kind", "clip") == "clip" and config.text.get("tokenizer") == "bpe"
      and not fileio.isdir(fileio.join(workdir, "tokenizer"))):
    raise ValueError(f"{workdir} has no tokenizer/ folder (the BPE tokenizer trained with "
                     "the model); pass the run's workdir.")
  encode_fn = load_encoder(config, checkpoint)
  part = getattr(pp.build_sources(config, workdir), split)
  chunks = []
  for batch in pp.eval_batches(part, batch_size=int(config.input.eval_batch_size),
                               num_threads=config.input.get("num_threads", 2)):
    chunks.append(encode_fn(batch[MODALITIES[m]], m)[batch["mask"]])
  codes = np.concatenate(chunks)
  return {"codes": codes, "ids": np.arange(part.num_items, dtype=np.int64),
          "labels": np.asarray(part.labels, np.uint8), "bits": np.int64(codes.shape[1]),
          "modality": np.array(MODALITIES[m])}
