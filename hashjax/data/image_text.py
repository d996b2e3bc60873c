"""Raw image + caption data: the container and loaders for COCO and the DCGH layout.

Images stay on disk (paths only); decoding, resizing and tokenising belong to the
input pipeline of the model that uses them.

Two layouts are read:

* the official MS-COCO layout: ``root/annotations/{captions,instances}_<split>.json``
  and ``root/<split>/*.jpg`` (:func:`load_coco`);
* the DCHMT / DSPH / DCGH ``.mat`` layout used for MIRFlickr-25K, NUS-WIDE and
  MS-COCO: ``index.mat`` (key ``index``, image paths), ``caption.mat`` (key
  ``caption``) or ``caption.txt`` (NUS-WIDE), ``label.mat`` (key ``category``,
  ``[N, C]`` multi-hot) (:func:`load_standard_layout`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from hashjax import checks
from hashjax.data import _io
from hashjax.data.core import to_multihot
from hashjax.data.loaders import _labels_to_multihot

__all__ = [
    "STANDARD_LAYOUT_DATASETS",
    "ImageTextData",
    "coco_mini_root",
    "load_coco",
    "load_standard_layout",
]

STANDARD_LAYOUT_DATASETS = ("mirflickr", "nuswide", "coco")
_MISSING_IMAGES = ("error", "drop", "ignore")
_STRIP = " \t\r\n\x00"


@dataclasses.dataclass(frozen=True)
class ImageTextData:
  """Items with one image file, one or more captions and multi-hot labels.

  Attributes:
    image_paths: n image file paths.
    captions: n tuples of one or more captions (str) each.
    labels: ``[n, C]`` uint8 multi-hot labels.
    name: data set name, for reports.
    class_names: C class names, or ``()`` when unknown.
  """

  image_paths: tuple[str, ...]
  captions: tuple[tuple[str, ...], ...]
  labels: np.ndarray
  name: str = ""
  class_names: tuple[str, ...] = ()

  def __post_init__(self):
    paths = tuple(str(p) for p in self.image_paths)
    if not paths:
      raise ValueError("ImageTextData needs at least one item.")
    caps = []
    for i, c in enumerate(self.captions):
      if isinstance(c, str):
        raise ValueError(
            f"captions[{i}] must be a sequence of captions, got a str {c!r}.")
      c = tuple(c)
      if not c or not all(isinstance(s, str) for s in c):
        raise ValueError(
            f"captions[{i}] must hold one or more str captions, got {c!r}.")
      caps.append(c)
    if len(caps) != len(paths):
      raise ValueError(
          f"{len(paths)} image paths but {len(caps)} caption lists were given.")
    labels = to_multihot(self.labels)
    checks.check_labels("labels", labels, rows=len(paths))
    names = tuple(self.class_names)
    if names and len(names) != labels.shape[1]:
      raise ValueError(
          f"{len(names)} class names for {labels.shape[1]} label columns.")
    object.__setattr__(self, "image_paths", paths)
    object.__setattr__(self, "captions", tuple(caps))
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "class_names", names)

  @property
  def num_items(self) -> int:
    return len(self.image_paths)

  @property
  def num_classes(self) -> int:
    return int(self.labels.shape[1])

  def subset(self, indices: Any) -> ImageTextData:
    """Items ``indices`` (int ``[k]``, k >= 1), in that order."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
      raise ValueError(
          f"indices must be a non-empty 1-D integer array, got shape {idx.shape}, "
          f"dtype {idx.dtype}.")
    if idx.min() < 0 or idx.max() >= self.num_items:
      raise ValueError(
          f"indices must lie in [0, {self.num_items}), got min {idx.min()}, "
          f"max {idx.max()}.")
    return dataclasses.replace(
        self, image_paths=tuple(self.image_paths[i] for i in idx),
        captions=tuple(self.captions[i] for i in idx), labels=self.labels[idx])


def _concat(parts: Sequence[ImageTextData], name: str) -> ImageTextData:
  return ImageTextData(
      image_paths=tuple(p for d in parts for p in d.image_paths),
      captions=tuple(c for d in parts for c in d.captions),
      labels=np.concatenate([d.labels for d in parts]), name=name,
      class_names=parts[0].class_names)


def _read_json(path: pathlib.Path) -> dict[str, Any]:
  if not path.is_file():
    raise FileNotFoundError(f"annotation file not found: {str(path)!r}.")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  for key in ("images", "annotations"):
    if key not in data:
      raise ValueError(
          f"{str(path)!r} has no {key!r} list; keys present: {sorted(data)}.")
  return data


def _filter_missing(paths: Sequence[str], missing_images: str,
                    where: str) -> np.ndarray:
  """Indices of the items to keep, after checking that image files exist."""
  if missing_images not in _MISSING_IMAGES:
    raise ValueError(
        f"missing_images must be one of {_MISSING_IMAGES}, got {missing_images!r}.")
  keep = np.arange(len(paths))
  if missing_images == "ignore":
    return keep
  exists = np.array([os.path.isfile(p) for p in paths], bool)
  if missing_images == "error" and not exists.all():
    bad = [paths[i] for i in np.flatnonzero(~exists)[:3]]
    raise ValueError(
        f"{where}: {int((~exists).sum())} of {len(paths)} image files are missing, "
        f"e.g. {bad}; fix the paths (image_root / strip_prefix) or pass "
        "missing_images='drop'.")
  return keep[exists]


def _load_coco_split(root: pathlib.Path, split: str, *, drop_unlabeled: bool,
                     missing_images: str) -> ImageTextData:
  inst = _read_json(root / "annotations" / f"instances_{split}.json")
  caps = _read_json(root / "annotations" / f"captions_{split}.json")
  where = f"COCO {split} in {str(root)!r}"
  if not inst.get("categories"):
    raise ValueError(f"{where}: instances file has no 'categories' list.")
  cats = sorted(inst["categories"], key=lambda c: c["id"])
  col = {c["id"]: j for j, c in enumerate(cats)}
  item_labels: dict[int, set[int]] = {}
  for a in inst["annotations"]:
    if a["category_id"] not in col:
      raise ValueError(
          f"{where}: annotation {a.get('id')} has category_id {a['category_id']}, "
          "which is not in the categories list.")
    item_labels.setdefault(a["image_id"], set()).add(col[a["category_id"]])
  item_caps: dict[int, list[str]] = {}
  for a in caps["annotations"]:
    item_caps.setdefault(a["image_id"], []).append(a["caption"].strip(_STRIP))
  files = {im["id"]: im["file_name"] for im in caps["images"]}
  ids = sorted(i for i in files
               if i in item_labels or not drop_unlabeled)
  no_cap = [i for i in ids if not item_caps.get(i)]
  if no_cap:
    raise ValueError(
        f"{where}: {len(no_cap)} images have no caption, e.g. ids {no_cap[:3]}.")
  if not ids:
    raise ValueError(f"{where}: no (labelled) images.")
  paths = [str(root / split / files[i]) for i in ids]
  keep = _filter_missing(paths, missing_images, where)
  if keep.size == 0:
    raise ValueError(f"{where}: none of the {len(ids)} image files exist.")
  labels = np.zeros((len(ids), len(cats)), np.uint8)
  for r, i in enumerate(ids):
    labels[r, sorted(item_labels.get(i, ()))] = 1
  return ImageTextData(
      image_paths=tuple(paths[k] for k in keep),
      captions=tuple(tuple(item_caps[ids[k]]) for k in keep),
      labels=labels[keep], name=f"coco_{split}",
      class_names=tuple(c["name"] for c in cats))


def load_coco(root: str | os.PathLike, split: str | Sequence[str] = "train2017", *,
              drop_unlabeled: bool = True,
              missing_images: str = "error") -> ImageTextData:
  """MS-COCO from the official json layout.

  Items are the images of the captions file, sorted by image id (the row order of
  the DCGH ``make_coco.py`` files). Labels are multi-hot over the categories of the
  instances file, sorted by id (COCO 2017: 80 classes; id 1 -> column 0 ...).
  Captions keep the order of the annotation list.

  Args:
    root: folder with ``annotations/{captions,instances}_<split>.json`` and
      ``<split>/`` images.
    split: e.g. ``"train2017"``; a sequence of splits is concatenated in that order
      (``("train2017", "val2017")`` is DCGH's full COCO set).
    drop_unlabeled: drop images without any instance annotation (as DCGH does);
      otherwise they get an all-zero label row.
    missing_images: ``"error"`` (default), ``"drop"`` or ``"ignore"`` image files
      that do not exist.

  Returns:
    ``ImageTextData`` with absolute image paths.
  """
  root = pathlib.Path(root).expanduser().resolve()
  if not root.is_dir():
    raise FileNotFoundError(f"COCO root folder not found: {str(root)!r}.")
  splits = [split] if isinstance(split, str) else list(split)
  if not splits:
    raise ValueError("split must name at least one COCO split.")
  parts = [_load_coco_split(root, s, drop_unlabeled=drop_unlabeled,
                            missing_images=missing_images) for s in splits]
  if any(p.class_names != parts[0].class_names for p in parts):
    raise ValueError(f"splits {splits} have different category lists.")
  return parts[0] if len(parts) == 1 else _concat(parts, "coco_" + "+".join(splits))


def coco_mini_root() -> pathlib.Path:
  """The packaged COCO-MINI fixture: 16 train2017 + 8 val2017 images, official layout.

  A real subset of MS-COCO 2017 (see ``hashjax/data/files/coco_mini/README.md``) for
  tests, the notebooks and ``configs/dcgh_coco_mini.py``: pass it to :func:`load_coco`.
  """
  return _io.packaged_folder("coco_mini")


def _flatten_strings(x: Any) -> list[str]:
  """All strings inside nested MATLAB char / cell arrays, stripped, in order."""
  if isinstance(x, (str, np.str_)):
    return [str(x).strip(_STRIP)]
  if isinstance(x, bytes):
    return [x.decode("utf-8").strip(_STRIP)]
  arr = np.asarray(x)
  if arr.dtype.kind in "US" or arr.dtype == object:
    return [s for e in arr.ravel() for s in _flatten_strings(e)]
  raise ValueError(f"expected text, found a {arr.dtype} array of shape {arr.shape}.")


def _as_caption_tuple(strings: list[str]) -> tuple[str, ...]:
  non_empty = tuple(s for s in strings if s)
  return non_empty or ("",)


def _parse_captions(arr: np.ndarray, n: int, where: str) -> list[tuple[str, ...]]:
  """caption.mat: ``[n]`` / ``[n, 1]`` char rows, ``[1, n]`` or ``[n, K]`` cells."""
  if arr.dtype.kind not in "US" and arr.dtype != object:
    raise ValueError(
        f"{where}: 'caption' must be a char or cell array, got dtype {arr.dtype}.")
  if arr.ndim == 2 and arr.shape == (1, n):
    cells = list(arr[0])          # one cell (list of captions) per item
  elif arr.ndim >= 1 and arr.shape[0] == n:
    cells = list(arr)             # one row (of strings or cells) per item
  else:
    raise ValueError(
        f"{where}: 'caption' has shape {arr.shape}, expected {n} items as [{n}], "
        f"[{n}, K] or [1, {n}].")
  return [_as_caption_tuple(_flatten_strings(c)) for c in cells]


def load_standard_layout(
    root: str | os.PathLike,
    *,
    dataset: str,
    image_root: str | os.PathLike | None = None,
    strip_prefix: str | None = None,
    missing_images: str = "error",
) -> ImageTextData:
  """Reads the DCHMT / DCGH ``index.mat`` + ``caption.mat|txt`` + ``label.mat`` files.

  Files in ``root``: ``index.mat`` (key ``index``: a char array of image paths,
  space padded), ``label.mat`` (key ``category``: ``[N, C]`` multi-hot) and the
  captions: ``caption.mat`` (key ``caption``; MIRFlickr: ``N x 1`` char rows of
  tags, COCO: a cell array of caption lists) or, for NUS-WIDE, ``caption.txt`` (one
  line of tags per image). Rows are kept in file order (the split depends on it).

  Args:
    root: folder holding the three files.
    dataset: ``'mirflickr'``, ``'nuswide'`` (reads ``caption.txt``) or ``'coco'``.
    image_root: folder that relative image paths are joined to (default ``root``).
      Absolute paths are kept.
    strip_prefix: removed from the start of every stored path first, e.g. the
      absolute folder of the machine that wrote the files (then the rest is
      joined to ``image_root``).
    missing_images: ``"error"`` (default), ``"drop"`` or ``"ignore"`` image files
      that do not exist.

  Returns:
    ``ImageTextData`` named ``dataset``.
  """
  if dataset not in STANDARD_LAYOUT_DATASETS:
    raise ValueError(
        f"dataset must be one of {STANDARD_LAYOUT_DATASETS}, got {dataset!r}.")
  root = pathlib.Path(root).expanduser()
  if not root.is_dir():
    raise FileNotFoundError(f"data folder not found: {str(root)!r}.")
  base = root if image_root is None else pathlib.Path(image_root).expanduser()
  with _io.resolve_path(root / "index.mat", None) as p:
    index = _io.read_arrays(p, ["index"], allow_object=True)["index"]
  rel = _flatten_strings(index)
  n = len(rel)
  if n == 0:
    raise ValueError(f"{str(root / 'index.mat')!r}: 'index' is empty.")
  if any(not s for s in rel):
    raise ValueError(f"{str(root / 'index.mat')!r}: 'index' has empty paths.")
  paths = []
  for s in rel:
    if strip_prefix and s.startswith(strip_prefix):
      s = s[len(strip_prefix):].lstrip("/\\")
    paths.append(s if os.path.isabs(s) else str(base / s))

  if dataset == "nuswide":
    txt = root / "caption.txt"
    if not txt.is_file():
      raise FileNotFoundError(f"caption file not found: {str(txt)!r}.")
    lines = txt.read_text(encoding="utf-8").splitlines()
    if len(lines) != n:
      raise ValueError(
          f"{str(txt)!r} has {len(lines)} lines but index.mat lists {n} images.")
    captions = [(line.strip(_STRIP),) for line in lines]
  else:
    with _io.resolve_path(root / "caption.mat", None) as p:
      cap = _io.read_arrays(p, ["caption"], allow_object=True)["caption"]
    captions = _parse_captions(cap, n, str(root / "caption.mat"))

  with _io.resolve_path(root / "label.mat", None) as p:
    cat = _io.read_arrays(p, ["category"])["category"]
  where = str(root / "label.mat")
  if cat.ndim != 2 or cat.shape[0] != n:
    raise ValueError(
        f"{where}: 'category' has shape {cat.shape}, expected [{n}, C] for the {n} "
        "images of index.mat.")
  if cat.shape[1] == 1:
    raise ValueError(f"{where}: 'category' must be [N, C] multi-hot with C >= 2.")
  labels = _labels_to_multihot(cat, num_classes=None, label_offset=0, where=where)

  keep = _filter_missing(paths, missing_images, f"{dataset} in {str(root)!r}")
  if keep.size == 0:
    raise ValueError(f"{dataset} in {str(root)!r}: none of the {n} image files exist.")
  return ImageTextData(
      image_paths=tuple(paths[k] for k in keep),
      captions=tuple(captions[k] for k in keep), labels=labels[keep], name=dataset)
