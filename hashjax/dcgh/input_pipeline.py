"""DCGH input pipeline: images + captions (CLIP towers) or frozen features, in grain.

Every batch is a pure function of the global step (and the seed), so a resumed run
replays exactly the batches an uninterrupted run would have seen:

* epoch ``e = step // steps_per_epoch`` visits the training items in the order
  ``default_rng([seed, e]).permutation(n)`` (the reference reshuffles every epoch);
* the last batch of an epoch is kept, as in the reference (``total_steps = ceil(n / B)
  * epochs`` there too), but padded to the full global batch ``B`` with a ``mask``
  (False on padding) so every step has the same shapes and nothing recompiles; the
  loss ignores masked rows, so a padded batch gives the loss of its real rows;
* training captions: one caption per item at random, ``default_rng([seed, 1, step])``;
  evaluation uses each item's first caption (the reference draws at random, unseeded,
  even at test time).

Images (docs/dcgh.md, CLIP preprocessing): training ``Resize(shorter side -> S, bicubic) +
CenterCrop(S)``; evaluation squash-resizes to ``S x S`` (bicubic); both convert to RGB,
scale to [0, 1] and normalise with CLIP's mean/std. Output NHWC float32.

Batches are dicts of NumPy arrays: ``image`` (``[B, S, S, 3]`` float32 or ``[B, d1]``
features), ``text`` (``[B, L]`` int32 tokens or ``[B, d2]`` features), ``labels``
(``[B, C]`` float32), ``mask`` (``[B]`` bool), ``index`` (``[B]`` int64 item ids).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
import os
import shutil
from typing import Any, NamedTuple, Protocol

import grain
import jax
import numpy as np
from PIL import Image

from hashjax import checks

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "FeatureSource",
    "ImageTextSource",
    "ItemSource",
    "Sources",
    "batch_indices",
    "build_sources",
    "check_global_batch",
    "eval_batches",
    "feature_sources",
    "image_text_sources",
    "load_image",
    "make_tokenizer",
    "num_eval_batches",
    "pick_captions",
    "preprocess_image",
    "steps_per_epoch",
    "train_batches",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------------------- images


def preprocess_image(image: Image.Image, *, image_size: int, train: bool) -> np.ndarray:
  """CLIP preprocessing of one PIL image (docs/dcgh.md).

  Args:
    image: a PIL image (any mode).
    image_size: output side S.
    train: ``Resize(S) + CenterCrop(S)`` if True, squash ``Resize((S, S))`` if False.

  Returns:
    float32 ``[S, S, 3]`` normalised with :data:`CLIP_MEAN` / :data:`CLIP_STD`.
  """
  s = checks.check_positive_int("image_size", image_size)
  if train:
    w, h = image.size
    if w <= h:
      new_w, new_h = s, int(s * h / w)   # torchvision's rounding (truncation)
    else:
      new_w, new_h = int(s * w / h), s
    if (new_w, new_h) != (w, h):
      image = image.resize((new_w, new_h), Image.BICUBIC)
    top = int(round((new_h - s) / 2.0))
    left = int(round((new_w - s) / 2.0))
    image = image.crop((left, top, left + s, top + s))
  else:
    image = image.resize((s, s), Image.BICUBIC)
  x = np.asarray(image.convert("RGB"), np.float32) / 255.0
  return (x - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)


_ENV_IMAGE_LOG = "HASHJAX_IMAGE_LOAD_LOG"


def load_image(path: str, *, image_size: int, train: bool) -> np.ndarray:
  """Reads an image file and applies :func:`preprocess_image`.

  With ``HASHJAX_IMAGE_LOAD_LOG=<dir>`` set, every decode appends ``path`` as a line to
  ``<dir>/image_loads.<os pid>.txt`` (the multi-process tests count with it which
  images each process decodes).
  """
  log_dir = os.environ.get(_ENV_IMAGE_LOG)
  if log_dir:
    with open(os.path.join(log_dir, f"image_loads.{os.getpid()}.txt"), "a") as f:
      f.write(f"{path}\n")
  with Image.open(path) as im:
    im.load()
    return preprocess_image(im, image_size=image_size, train=train)


def pick_captions(captions: Sequence[Sequence[str]], indices: np.ndarray, *,
                  seed: int, step: int, train: bool, offset: int = 0,
                  global_size: int | None = None) -> list[str]:
  """One caption per item: random (seeded by ``seed``, ``step``) for training, else first.

  Args:
    captions: per item, a sequence of one or more captions.
    indices: int ``[b]`` item ids.
    seed: run seed.
    step: global step (the draw is a pure function of ``(seed, step)``).
    train: random caption if True, first caption if False.
    offset: position of ``indices[0]`` in the global batch (multi-host: this
      process's first row).
    global_size: rows of the global batch (default ``b``). The draw is made for the
      whole global batch and this process takes its rows, so every process split
      picks the captions one process would.

  Returns:
    b captions.
  """
  if not train:
    return [captions[i][0] for i in indices]
  rng = np.random.default_rng([int(seed), 1, int(step)])
  n = len(indices)
  u = rng.random(global_size or n)[int(offset):int(offset) + n]
  return [captions[i][int(x * len(captions[i]))] for i, x in zip(indices, u)]


# ----------------------------------------------------------------------------- sources


class ItemSource(Protocol):
  """Anything that turns item ids into model inputs."""

  @property
  def num_items(self) -> int: ...

  @property
  def labels(self) -> np.ndarray: ...

  def load(self, indices: np.ndarray, *, step: int, train: bool, offset: int = 0,
           global_size: int | None = None) -> dict[str, np.ndarray]:
    """``{"image": [b, ...], "text": [b, ...]}`` for item ids ``indices`` ``[b]``.

    ``offset`` / ``global_size``: where these rows sit in the global batch (a host's
    share), for draws that must not depend on the process split.
    """


@dataclasses.dataclass(frozen=True)
class FeatureSource:
  """Frozen features in memory: ``image`` ``[n, d1]``, ``text`` ``[n, d2]``, labels ``[n, C]``."""

  image: np.ndarray
  text: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    checks.check_matrix("image features", self.image)
    checks.check_matrix("text features", self.text)
    checks.check_same_rows(["image", "text", "labels"],
                           [self.image, self.text, self.labels])
    object.__setattr__(self, "image", np.asarray(self.image, np.float32))
    object.__setattr__(self, "text", np.asarray(self.text, np.float32))

  @classmethod
  def from_data(cls, data: Any, views: Sequence[int] = (0, 1)) -> "FeatureSource":
    """From a :class:`hashjax.data.MultiModalData` (two of its views)."""
    if data.num_modalities < 2:
      raise ValueError(f"DCGH needs two views, got {data.num_modalities}.")
    return cls(data.views[views[0]], data.views[views[1]], data.labels)

  @property
  def num_items(self) -> int:
    return int(self.labels.shape[0])

  def load(self, indices: np.ndarray, *, step: int, train: bool, offset: int = 0,
           global_size: int | None = None) -> dict[str, np.ndarray]:
    del step, train, offset, global_size
    return {"image": self.image[indices], "text": self.text[indices]}


@dataclasses.dataclass(frozen=True)
class ImageTextSource:
  """Image files + captions (:class:`hashjax.data.ImageTextData`), tokenised on the fly.

  Attributes:
    data: the items.
    tokenizer: object with ``encode(list[str]) -> int32 [n, L]``.
    image_size: S.
    seed: seed of the training caption draw.
  """

  data: Any
  tokenizer: Any
  image_size: int
  seed: int = 0

  @property
  def num_items(self) -> int:
    return self.data.num_items

  @property
  def labels(self) -> np.ndarray:
    return self.data.labels

  def load(self, indices: np.ndarray, *, step: int, train: bool, offset: int = 0,
           global_size: int | None = None) -> dict[str, np.ndarray]:
    images = np.stack([
        load_image(self.data.image_paths[i], image_size=self.image_size, train=train)
        for i in indices])
    caps = pick_captions(self.data.captions, indices, seed=self.seed, step=step,
                         train=train, offset=offset, global_size=global_size)
    tokens = np.asarray(self.tokenizer.encode(caps), np.int32)
    return {"image": images, "text": tokens}


# ----------------------------------------------------------------------------- batching


def check_global_batch(batch_size: int, num_devices: int) -> int:
  """Returns ``batch_size``; raises unless it is a positive multiple of ``num_devices``."""
  b = checks.check_positive_int("batch_size", batch_size)
  if b % num_devices:
    raise ValueError(
        f"global batch size {b} is not divisible by the device count {num_devices}; "
        f"use a multiple of {num_devices} (e.g. {num_devices * max(1, b // num_devices)}).")
  return b


def steps_per_epoch(num_items: int, batch_size: int) -> int:
  """``ceil(num_items / batch_size)``: the last partial batch is kept (padded)."""
  return math.ceil(checks.check_positive_int("num_items", num_items) /
                   checks.check_positive_int("batch_size", batch_size))


def batch_indices(step: int, *, num_items: int, batch_size: int, seed: int,
                  shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Item ids and mask of training batch ``step`` (padding repeats the batch's first id).

  Returns:
    ``(indices [B] int64, mask [B] bool)``.
  """
  spe = steps_per_epoch(num_items, batch_size)
  epoch, b = divmod(int(step), spe)
  order = (np.random.default_rng([int(seed), int(epoch)]).permutation(num_items)
           if shuffle else np.arange(num_items))
  sel = order[b * batch_size:(b + 1) * batch_size]
  mask = np.zeros(batch_size, bool)
  mask[:sel.size] = True
  idx = np.full(batch_size, sel[0], np.int64)
  idx[:sel.size] = sel
  return idx, mask


def _assemble(source: ItemSource, idx: np.ndarray, mask: np.ndarray, *, step: int,
              train: bool, process_index: int, process_count: int) -> dict[str, np.ndarray]:
  per = idx.shape[0] // process_count
  sl = slice(process_index * per, (process_index + 1) * per)
  global_size = idx.shape[0]
  idx, mask = idx[sl], mask[sl]
  out = dict(source.load(idx, step=step, train=train, offset=sl.start,
                         global_size=global_size))
  out["labels"] = np.asarray(source.labels[idx], np.float32)
  out["mask"] = mask
  out["index"] = idx
  return out


def _read_options(num_threads: int, prefetch: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=max(0, int(num_threads)),
                           prefetch_buffer_size=max(0, int(prefetch)))


def train_batches(source: ItemSource, *, batch_size: int, num_epochs: int, seed: int,
                  start_step: int = 0, num_threads: int = 2, prefetch: int = 4,
                  process_index: int = 0, process_count: int = 1
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Training batches for global steps ``start_step .. total_steps - 1`` (grain).

  Args:
    source: the training items.
    batch_size: global batch B (each process gets ``B / process_count`` rows).
    num_epochs: epochs; ``total_steps = steps_per_epoch * num_epochs``.
    seed: shuffling and caption seed.
    start_step: first step to produce (resume).
    num_threads: grain reader threads (0: in the main thread).
    prefetch: batches read ahead.
    process_index: this host (multi-host: its contiguous share of every batch).
    process_count: number of hosts.

  Returns:
    an iterator of batch dicts (see the module docstring), this host's rows.
  """
  total = steps_per_epoch(source.num_items, batch_size) * num_epochs
  if batch_size % process_count:
    raise ValueError(f"batch size {batch_size} not divisible by {process_count} hosts.")

  def make(step: int) -> dict[str, np.ndarray]:
    idx, mask = batch_indices(step, num_items=source.num_items, batch_size=batch_size,
                              seed=seed)
    out = _assemble(source, idx, mask, step=step, train=True,
                    process_index=process_index, process_count=process_count)
    out["step"] = np.asarray(step, np.int64)
    return out

  ds = grain.MapDataset.range(int(start_step), total).map(make)
  return iter(ds.to_iter_dataset(_read_options(num_threads, prefetch)))


def num_eval_batches(num_items: int, batch_size: int) -> int:
  return steps_per_epoch(num_items, batch_size)


def eval_batches(source: ItemSource, *, batch_size: int, num_threads: int = 2,
                 prefetch: int = 4, process_index: int = 0, process_count: int = 1
                 ) -> Iterator[dict[str, np.ndarray]]:
  """All items in order, in padded batches of B (mask False on padding); first captions."""
  n = source.num_items

  def make(b: int) -> dict[str, np.ndarray]:
    sel = np.arange(b * batch_size, min((b + 1) * batch_size, n))
    idx = np.full(batch_size, sel[0], np.int64)
    idx[:sel.size] = sel
    mask = np.arange(batch_size) < sel.size
    return _assemble(source, idx, mask, step=0, train=False,
                     process_index=process_index, process_count=process_count)

  ds = grain.MapDataset.range(num_eval_batches(n, batch_size)).map(make)
  return iter(ds.to_iter_dataset(_read_options(num_threads, prefetch)))


# ----------------------------------------------------------------------------- config


class Sources(NamedTuple):
  """Item sources of one run (validation is held out of training)."""

  train: ItemSource
  val_query: ItemSource
  val_database: ItemSource
  query: ItemSource
  database: ItemSource
  num_classes: int
  tokenizer: Any = None   # image-text data only


def make_tokenizer(kind: str, *, context_length: int, path: str | None = None,
                   vocab_size: int | None = None, captions: Sequence[str] = (),
                   save_dir: str | None = None):
  """The tokenizer of the text tower.

  Args:
    kind: ``"clip"`` (CLIP's BPE read from ``path``: vocab.json + merges.txt) or
      ``"bpe"`` (trained on ``captions`` with ``vocab_size`` entries; saved to and
      reloaded from ``save_dir`` when given).
    context_length: tokens per caption L.
    path: folder of a CLIP tokenizer (``"clip"``).
    vocab_size: vocabulary size (``"bpe"``).
    captions: training captions (``"bpe"``).
    save_dir: folder (any epath path) of the trained tokenizer (``"bpe"``).
  """
  from hashjax import fileio  # pylint: disable=g-import-not-at-top
  from hashjax.dcgh import tokenizer as tk  # pylint: disable=g-import-not-at-top

  if kind == "clip":
    if not path:
      raise ValueError("config.text.path (a CLIP vocab.json + merges.txt folder) is "
                       "required for tokenizer 'clip'.")
    return tk.load_tokenizer(path, context_length=context_length)
  if kind == "bpe":
    if save_dir and fileio.isdir(save_dir):
      return tk.load_tokenizer(save_dir, context_length=context_length)
    tok = tk.train_bpe_tokenizer(list(captions), int(vocab_size),
                                 context_length=context_length)
    # Every process trains the same tokeniser; only process 0 writes it, and on a
    # local disk complete under a temporary name first, so that another process never
    # opens a half-written one.
    if save_dir and jax.process_index() == 0:
      if "://" in str(save_dir):
        tok.save(save_dir)
      else:
        tmp = f"{save_dir}.tmp{os.getpid()}"
        tok.save(tmp)
        try:
          os.rename(tmp, save_dir)
        except OSError:   # written meanwhile (a concurrent run): keep that one
          shutil.rmtree(tmp, ignore_errors=True)
    return tok
  raise ValueError(f"config.text.tokenizer must be 'clip' or 'bpe', got {kind!r}.")


def feature_sources(held_out: Any) -> Sources:
  """:class:`Sources` of a :class:`hashjax.data.HeldOutSplit` of feature data."""
  train = FeatureSource.from_data(held_out.train)
  return Sources(train=train, val_query=FeatureSource.from_data(held_out.validation),
                 val_database=train, query=FeatureSource.from_data(held_out.query),
                 database=FeatureSource.from_data(held_out.database),
                 num_classes=held_out.train.num_classes)


def image_text_sources(held_out: Any, *, tokenizer: Any, image_size: int,
                       seed: int) -> Sources:
  """:class:`Sources` of a :class:`hashjax.data.HeldOutSplit` of image-text data."""
  size, seed = int(image_size), int(seed)
  src = lambda d: ImageTextSource(d, tokenizer, size, seed)  # noqa: E731
  train = src(held_out.train)
  return Sources(train=train, val_query=src(held_out.validation), val_database=train,
                 query=src(held_out.query), database=src(held_out.database),
                 num_classes=held_out.train.num_classes, tokenizer=tokenizer)


def build_sources(config: Any, workdir: str | None = None) -> Sources:
  """The config boundary of the input pipeline: a DCGH config -> :class:`Sources`.

  The only function here that reads ``config``; it unpacks it and calls the data
  registry (:mod:`hashjax.data`) and the functions above with plain values.

  ``config.model.kind == "features"``: ``config.data`` goes to
  :func:`hashjax.data.get_retrieval_split` (views 0 and 1 are the image and text
  inputs); ``config.validation.num_items`` training items (``seed``) are held out as
  validation queries (:func:`hashjax.data.deal_validation`). With
  ``config.labels.fraction < 1`` only the labelled training items
  (:func:`hashjax.data.labelled_positions`, seed ``config.labels.seed``) train and
  validate: the validation count is scaled by the same fraction (rounded half up, at
  least 1)
  and drawn from the labelled items; the database keeps every training item (its
  labels only judge retrieval). ``"clip"``:
  ``config.data`` names an image-text data set
  (:func:`hashjax.data.get_image_text_data`) dealt by
  :func:`hashjax.data.deal_image_text` (``num_query``, ``num_train``, ``seed``,
  ``legacy_rng``; validation from the training items, ``validation.source =
  "train"``, or from the database items outside the training set, ``"rest"``).
  Validation queries retrieve from the training items; test queries from the whole
  database.

  Args:
    config: the run config.
    workdir: where a locally trained tokenizer is saved / reloaded (None: not saved).

  Returns:
    :class:`Sources`.
  """
  from hashjax import data as hdata  # pylint: disable=g-import-not-at-top
  from hashjax import fileio  # pylint: disable=g-import-not-at-top

  kind = config.model.get("kind", "clip")
  v = config.get("validation", None)
  v = v.to_dict() if hasattr(v, "to_dict") else dict(v or {})
  num_val, v_source, v_seed = (v.get("num_items", 0), v.get("source", "train"),
                               int(v.get("seed", 0)))
  lab = config.get("labels", None)
  lab = lab.to_dict() if hasattr(lab, "to_dict") else dict(lab or {})
  fraction = float(lab.get("fraction", 1.0))
  if kind == "features":
    if v_source != "train":
      raise ValueError("feature data sets support validation.source = 'train' only.")
    split = hdata.get_retrieval_split(config.data)
    train = split.train
    if fraction < 1.0:   # only the labelled items train and validate (docs/dcgh.md#labels)
      n = train.num_items
      pos = hdata.labelled_positions(n, fraction, seed=int(lab.get("seed", config.seed)))
      num_val = min(pos.size - 1, max(1, int(np.floor(num_val * pos.size / n + 0.5))))
      train = train.subset(pos)
    return feature_sources(hdata.deal_validation(
        train, split.query, split.database, num_validation=num_val, seed=v_seed))
  if kind != "clip":
    raise ValueError(f"config.model.kind must be 'clip' or 'features', got {kind!r}.")
  if fraction < 1.0:
    raise ValueError("config.labels.fraction < 1 is supported for feature data sets "
                     "(config.model.kind = 'features') only.")
  d = config.data
  data = hdata.get_image_text_data(
      d.name, root=d.get("root", None),
      coco_splits=tuple(d.get("splits", ("train2017", "val2017"))),
      image_root=d.get("image_root", None), strip_prefix=d.get("strip_prefix", None))
  held_out = hdata.deal_image_text(
      data, num_query=d.num_query, num_train=d.get("num_train", None),
      seed=int(d.get("seed", 1818)), legacy_rng=bool(d.get("legacy_rng", False)),
      num_validation=num_val, validation_source=v_source, validation_seed=v_seed)
  t = config.text
  tok = make_tokenizer(
      t.get("tokenizer", "clip"), context_length=int(t.get("context_length", 32)),
      path=t.get("path", None) or config.model.get("clip_path", None),
      vocab_size=t.get("vocab_size", None),
      captions=[c for caps in held_out.train.captions for c in caps],
      save_dir=fileio.join(workdir, "tokenizer") if workdir else None)
  return image_text_sources(held_out, tokenizer=tok, image_size=config.input.image_size,
                            seed=int(config.seed))
