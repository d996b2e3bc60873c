"""Helpers for config files: ``parse_arg`` turns ``"bits=64,runlocal"`` into typed settings."""

from __future__ import annotations

from typing import Any

__all__ = ["dcgh_feature_config", "dcgh_paper_config", "parse_arg", "rreh_config",
           "rreh_feature_config"]


def parse_arg(arg: str | None, **defaults: Any) -> dict[str, Any]:
  """Parses a config argument such as ``"bits=32,runlocal"`` against typed defaults.

  A bare word sets a bool default to True. Unknown keys raise ``ValueError`` (a typo
  in a launch command must not silently run the default experiment).

  Args:
    arg: comma-separated ``key=value`` / ``flag`` items, or None.
    **defaults: every accepted key with its default value (its type is the parse type).

  Returns:
    dict of settings.
  """
  out = dict(defaults)
  if not arg:
    return out
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    key, eq, raw = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {sorted(defaults)}.")
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f"config argument {key!r} needs a value ({key}=...).")
      out[key] = True
    elif isinstance(default, bool):
      if raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={raw!r} is not a bool.")
      out[key] = raw.lower() in ("true", "1")
    elif isinstance(default, (int, float)):
      kind = type(default)
      try:
        out[key] = kind(raw)
      except ValueError:
        what = "an int" if kind is int else "a number"
        raise ValueError(f"config argument {key}={raw!r} is not {what}.") from None
    else:
      out[key] = raw
  return out


def dcgh_paper_config(dataset: str, arg: str | None = None):
  """DCGH paper setting (docs/dcgh.md) for ``dataset`` in mirflickr | nuswide | coco.

  The three ``configs/dcgh_<dataset>.py`` files differ only in the data set name;
  their docstrings list the arguments.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top

  if dataset not in ("mirflickr", "nuswide", "coco"):
    raise ValueError(f"dataset must be mirflickr, nuswide or coco, got {dataset!r}.")
  a = parse_arg(arg, bits=64, root="", image_root="", strip_prefix="", clip="", vocab="",
                seed=0, epochs=100, batch=128, num_val=1000, legacy_rng=True,
                parallelism="jit", dtype="float32",
                runlocal=False)
  c = ml_collections.ConfigDict()
  c.method = "dcgh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.num_epochs = a["epochs"]
  c.parallelism = a["parallelism"]
  c.data = ml_collections.ConfigDict(dict(
      name=dataset, root=a["root"] or None, image_root=a["image_root"] or None,
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
      remat=False, clip_round_fp16=True))   # fp16-rounded weights, as the reference
  c.loss = ml_collections.ConfigDict(dict(neg_weight=0.8, pos_weight=0.05))
  c.optim = ml_collections.ConfigDict(dict(
      tower_lr=1e-5, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
      weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
      proxy_weight_decay=5e-4))
  # on_damage: "fallback" resumes from the newest intact step, "refuse" stops.
  c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=2,
                                                on_damage="fallback"))
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


def rreh_config(a: dict, *, data: dict, num_anchors: int, beta: float):
  """The RREH config every ``configs/rreh_*.py`` builds, around its data fields.

  theta, lam and init_v are chosen without labels by ``hashjax.rreh.select`` unless
  the arguments give them (``theta=``, ``lam=``, ``init_v=``); ``select=false`` takes
  ``hashjax.rreh.criterion.FIXED`` for those not given.

  Args:
    a: parsed config arguments (bits, paired_ratio, mode, seed, iterations, theta,
      lam, init_v ("" = chosen), select, runlocal, view_weights ("" = uniform,
      "auto" = chosen, or weights joined by "+": :func:`parse_view_weights`),
      ridge_cap ("" = chosen with lam, 0 = none, or the cap kappa of
      docs/rreh.md#ridge-cap)).
    data: the ``data`` fields (see :func:`hashjax.data.get_retrieval_split`).
    num_anchors, beta: the data set's fixed RREH hyper-parameters.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top

  c = ml_collections.ConfigDict()
  c.method = "rreh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.data = ml_collections.ConfigDict(dict(data))
  c.semi_paired = ml_collections.ConfigDict(dict(
      paired_ratio=a["paired_ratio"], mode=a["mode"], seed=a["seed"]))
  c.rreh = ml_collections.ConfigDict(dict(
      num_anchors=num_anchors, beta=beta, iterations=a["iterations"], kernel=True,
      orthogonal_v=False, delta2=None, reconstruct_against="anchors",
      select=a["select"]))
  # None (chosen) values need a declared type for later overrides.
  c.rreh.theta = ml_collections.FieldReference(
      float(a["theta"]) if a["theta"] else None, field_type=float)
  c.rreh.lam = ml_collections.FieldReference(
      float(a["lam"]) if a["lam"] else None, field_type=float)
  c.rreh.init_v = ml_collections.FieldReference(a["init_v"] or None, field_type=str)
  c.rreh.view_weights = parse_view_weights(a.get("view_weights", ""))
  cap = a.get("ridge_cap", "")
  c.rreh.ridge_cap = ml_collections.FieldReference(
      None if cap in ("", None) else float(cap), field_type=float)
  c.eval = ml_collections.ConfigDict(dict(top_r=100, ks=()))
  if a["runlocal"]:
    c.rreh.iterations = min(c.rreh.iterations, 3)
  return c


RREH_ARGS = dict(theta="", lam="", init_v="", select=True, view_weights="",
                 ridge_cap="")


def parse_view_weights(raw: str):
  """The ``view_weights`` config argument: "" -> None (uniform), "auto", or weights
  joined by "+" (``view_weights=1+1+1+0.2+1+1``) -> a tuple of floats (checked,
  like every RREH field, by :func:`hashjax.validate.validate_config`)."""
  if not raw:
    return None
  if raw == "auto":
    return raw
  try:
    return tuple(float(x) for x in raw.split("+"))
  except ValueError:
    raise ValueError(f"config argument view_weights={raw!r} must be 'auto' or numbers "
                     "joined by '+' (e.g. 1+1+0.2).") from None


def rreh_feature_config(arg: str | None, *, image_key: str, num_classes: int | None):
  """RREH on a user's "image + text features + labels" file (MIRFlickr / NUS-WIDE).

  ``configs/rreh_mirflickr.py`` and ``configs/rreh_nuswide.py`` differ only in the
  default image key and the number of classes; their docstrings list the arguments.
  """
  a = parse_arg(arg, path="", image_key=image_key, text_key="YAll", label_key="LAll",
                bits=64, paired_ratio=0.1, mode="disjoint", num_query=2000,
                num_train=10000, seed=0, iterations=20, num_anchors=600, runlocal=False,
                **RREH_ARGS)
  c = rreh_config(a, data=dict(
      name="features", path=a["path"] or None, views=None,
      view_keys=[a["image_key"], a["text_key"]], view_names=["image", "text"],
      label_key=a["label_key"], num_classes=num_classes, label_offset=0,
      num_query=a["num_query"], num_train=a["num_train"], seed=0),
      num_anchors=a["num_anchors"], beta=0.1)
  if a["runlocal"]:
    c.data.num_query, c.data.num_train = 200, 1000
  return c


def dcgh_feature_config(a: dict, *, data: dict, num_validation: int):
  """Frozen-feature DCGH (MLP towers on shipped features), docs/dcgh.md loss and optimiser.

  ``configs/dcgh_{wikipedia,uci}_features.py`` differ only in the data set and the
  number of validation queries held out of training.

  Args:
    a: parsed config arguments (bits, seed, epochs, batch, parallelism, runlocal;
      optional label_fraction (default 1.0) and label_seed (< 0 or absent: seed)).
    data: the ``data`` fields (see :func:`hashjax.data.get_retrieval_split`).
    num_validation: training items held out as validation queries.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top

  c = ml_collections.ConfigDict()
  c.method = "dcgh"
  c.seed = a["seed"]
  c.bits = a["bits"]
  c.num_epochs = a["epochs"]
  c.parallelism = a["parallelism"]
  c.data = ml_collections.ConfigDict(dict(data))
  c.validation = ml_collections.ConfigDict(dict(num_items=num_validation, seed=0,
                                                source="train"))
  # Label budget: only a seeded `fraction` of the training items keep their labels;
  # DCGH trains and validates on those alone (docs/dcgh.md#labels).
  c.labels = ml_collections.ConfigDict(dict(
      fraction=float(a.get("label_fraction", 1.0)),
      seed=int(a["seed"] if a.get("label_seed", -1) < 0 else a["label_seed"])))
  c.input = ml_collections.ConfigDict(dict(
      batch_size=a["batch"], eval_batch_size=512, num_threads=0, prefetch=2))
  c.model = ml_collections.ConfigDict(dict(
      kind="features", hidden=(1024, 512), activation="relu", layer_norm=True,
      tower_dropout=0.0, dropout=0.2))
  c.loss = ml_collections.ConfigDict(dict(neg_weight=0.8, pos_weight=0.05))
  c.optim = ml_collections.ConfigDict(dict(
      tower_lr=1e-3, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
      weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
      proxy_weight_decay=5e-4))
  c.checkpoint = ml_collections.ConfigDict(dict(every_steps=400, keep=2,
                                                on_damage="fallback"))
  c.eval = ml_collections.ConfigDict(dict(top_r=100, query_every_eval=True))
  c.eval_every_epochs = 5
  c.log_every_steps = 100
  c.progress_bar = True
  c.stop_after_steps = 0   # > 0: stop (after saving) at that step; 0: run to the end
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1))
  if a["runlocal"]:
    c.num_epochs = min(c.num_epochs, 3)
    c.input.batch_size = 64
    c.model.hidden = (64,)
    c.eval_every_epochs = 1
    c.log_every_steps = 10
    c.checkpoint.every_steps = 20
  return c
