"""Data set name -> ``RetrievalSplit``, from a config.

The config (an ``ml_collections.ConfigDict`` or any mapping) holds:

* ``name``: one of :func:`dataset_names`;
* ``path``: file to read (``None``: the packaged copy; required for ``features``);
* ``views``: view names to keep, in order (``None``: all);
* ``num_query`` / ``num_train`` / ``seed``: the query / train / database split for
  data sets without a fixed one (query = first ``num_query`` of a seeded
  permutation; train = the next ``num_train``, or every non-query item when
  ``num_train`` is given as ``None``; database = every non-query item). Missing
  (or ``None``) ``num_query`` / ``seed`` and a missing ``num_train`` take the data
  set's defaults: ``uci_mfeat`` 400 / train = database / 0, ``mirflickr_tags``
  2000 / 10000 / 0, ``features`` (required) / train = database / 0;
* for ``features`` only: ``view_keys``, ``label_key``, ``view_names``,
  ``num_classes``, ``label_offset``;
* for ``mirflickr_tags`` only: ``lall_path`` (``path`` is the ``YAll`` file).

Unknown fields raise, so a misspelt setting does not pass silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hashjax import checks
from hashjax.data import image_text, loaders, splits
from hashjax.data.core import MultiModalData, RetrievalSplit

__all__ = ["IMAGE_TEXT_DATASETS", "dataset_names", "get_image_text_data",
           "get_retrieval_split"]

_COMMON = ("name", "path", "views", "num_query", "num_train", "seed")
_FEATURE_KEYS = ("view_keys", "label_key", "view_names", "num_classes",
                 "label_offset")

# name -> (defaults of the split fields, extra allowed fields)
_SPECS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "wikipedia": ({}, ()),
    "uci_mfeat": ({"num_query": 400, "num_train": None, "seed": 0}, ()),
    "mirflickr_tags": ({"num_query": 2000, "num_train": 10000, "seed": 0},
                       ("lall_path",)),
    "features": ({"num_query": None, "num_train": None, "seed": 0}, _FEATURE_KEYS),
}


def dataset_names() -> tuple[str, ...]:
  """Names accepted by :func:`get_retrieval_split`."""
  return tuple(_SPECS)


def _as_dict(cfg: Any) -> dict[str, Any]:
  if hasattr(cfg, "to_dict"):
    return dict(cfg.to_dict())
  if isinstance(cfg, Mapping):
    return dict(cfg)
  raise ValueError(
      f"cfg must be a ConfigDict or a mapping, got {type(cfg).__name__}.")


def _random_split(data: MultiModalData, *, num_query: Any, num_train: Any,
                  seed: Any, name: str) -> RetrievalSplit:
  if num_query is None:
    raise ValueError(f"data set {name!r} has no fixed split: set num_query.")
  n = data.num_items
  q = checks.check_positive_int("num_query", num_query)
  if num_train is None:
    if q >= n:
      raise ValueError(
          f"num_query = {q} leaves no database items ({name!r} has {n} items).")
    num_train = n - q
  query_idx, train_idx, db_idx = splits.query_database_split(
      n, num_query=q, num_train=num_train, seed=seed)
  database = data.subset(db_idx)
  train = database if train_idx.size == db_idx.size else data.subset(train_idx)
  return RetrievalSplit(train=train, query=data.subset(query_idx), database=database)


def _load_features(f: dict[str, Any]) -> MultiModalData:
  if f.get("path") is None:
    raise ValueError("data set 'features' needs a path.")
  for key in ("view_keys", "label_key"):
    if not f.get(key):
      raise ValueError(f"data set 'features' needs {key!r}.")
  return loaders.load_feature_file(
      f["path"], view_keys=list(f["view_keys"]), label_key=f["label_key"],
      view_names=f.get("view_names"), num_classes=f.get("num_classes"),
      label_offset=f.get("label_offset") or 0)


_LOADERS: dict[str, Callable[[dict[str, Any]], MultiModalData]] = {
    "uci_mfeat": lambda f: loaders.load_uci_mfeat(f.get("path")),
    "mirflickr_tags": lambda f: loaders.load_mirflickr_tags(
        f.get("path"), f.get("lall_path")),
    "features": _load_features,
}


def get_retrieval_split(cfg: Any) -> RetrievalSplit:
  """Loads the data set named by ``cfg.name`` and splits it for retrieval.

  Args:
    cfg: a ``ConfigDict`` / mapping with the fields listed in the module docstring.

  Returns:
    ``RetrievalSplit(train, query, database)``; ``train is database`` when the
    protocol trains on the whole database (Wikipedia; ``num_train=None``).

  Raises:
    ValueError: unknown data set name (the message lists the known ones), unknown
      or inconsistent fields, or an invalid split.
  """
  f = _as_dict(cfg)
  name = f.get("name")
  if name not in _SPECS:
    raise ValueError(
        f"unknown data set {name!r}; known data sets: {list(dataset_names())}.")
  defaults, extra = _SPECS[name]
  unknown = sorted(set(f) - set(_COMMON) - set(extra))
  if unknown:
    raise ValueError(
        f"unknown field(s) {unknown} for data set {name!r}; allowed: "
        f"{sorted(set(_COMMON) | set(extra))}.")
  if name == "wikipedia":
    # `seed` is accepted (and unused): shared configs carry one for every data set.
    fixed = [k for k in ("num_query", "num_train") if f.get(k) is not None]
    if fixed:
      raise ValueError(
          f"wikipedia has a fixed split (query = test set, train = database = "
          f"training set); remove {fixed}.")
    split = loaders.load_wikipedia(f.get("path"))
  else:
    data = _LOADERS[name](f)
    opts = dict(defaults)
    for k in ("num_query", "seed"):
      if f.get(k) is not None:
        opts[k] = f[k]
    if "num_train" in f:  # an explicit None: train on every non-query item.
      opts["num_train"] = f["num_train"]
    split = _random_split(data, name=name, **opts)
  views = f.get("views")
  if views:
    views = list(views)
    keep = lambda d: d.select_views(views)  # noqa: E731
    train = keep(split.train)
    database = train if split.database is split.train else keep(split.database)
    split = RetrievalSplit(train=train, query=keep(split.query), database=database)
  return split


IMAGE_TEXT_DATASETS = ("coco_json", *image_text.STANDARD_LAYOUT_DATASETS)


def get_image_text_data(name: str, *, root: str | None,
                        coco_splits: Any = ("train2017", "val2017"),
                        image_root: str | None = None, strip_prefix: str | None = None
                        ) -> image_text.ImageTextData:
  """Loads an image-text data set (image files + captions + labels) by name.

  Args:
    name: ``"coco_json"`` (official COCO layout: ``root``, ``coco_splits``) or
      one of ``"mirflickr"``, ``"nuswide"``, ``"coco"`` (the ``index.mat`` layout of
      :func:`hashjax.data.load_standard_layout`, with ``image_root`` and
      ``strip_prefix``).
    root: the data folder.
    coco_splits: COCO splits to concatenate (``coco_json`` only).
    image_root: where image paths are resolved (standard layout).
    strip_prefix: prefix removed from the stored image paths (standard layout).

  Returns:
    :class:`hashjax.data.ImageTextData`.
  """
  if name not in IMAGE_TEXT_DATASETS:
    raise ValueError(f"image-text data set must be one of {IMAGE_TEXT_DATASETS}, got "
                     f"{name!r}.")
  if not root:
    raise ValueError(f"config.data.root is required for {name!r} (the data folder).")
  if name == "coco_json":
    return image_text.load_coco(root, list(coco_splits))
  return image_text.load_standard_layout(root, dataset=name, image_root=image_root,
                                         strip_prefix=strip_prefix)
