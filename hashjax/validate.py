"""Config validation before any work: ``validate_config(config)``, ``check_workdir``.

One function per method family checks every field a run reads (type and range) and
raises ``ValueError`` naming the field (``config.optim.tower_lr must be >= 0, got
-1.0``). :func:`validate_config` dispatches on ``config.method``; the training entry
points call it first, and the command line calls it before importing JAX.

Fields missing from a config are not errors here (the code's defaults apply); a field
present with a wrong type or out of range is.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

from hashjax import checks, methods

__all__ = ["DCGH_METHODS", "ON_DAMAGE", "SHALLOW_METHODS", "check_model_bits",
           "check_workdir", "validate_config", "validate_dcgh", "validate_shallow"]

SHALLOW_METHODS = methods.names("shallow")
DCGH_METHODS = methods.names("deep")
ON_DAMAGE = ("fallback", "refuse")

_MISSING = object()


def _get(config: Any, dotted: str) -> Any:
  node = config
  for part in dotted.split("."):
    if node is None:
      return _MISSING
    try:
      node = node.get(part, _MISSING) if hasattr(node, "get") else getattr(
          node, part, _MISSING)
    except (AttributeError, KeyError, TypeError):
      return _MISSING
    if node is _MISSING:
      return _MISSING
  return node


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) or (
      type(v).__name__.startswith(("int", "uint")) and hasattr(v, "dtype"))


def _is_number(v: Any) -> bool:
  return (_is_int(v) or isinstance(v, float)
          or (hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0
              and v.dtype.kind in "iuf")) and not isinstance(v, bool)


def _int(config: Any, field: str, *, low: int | None = None, none_ok: bool = False
         ) -> None:
  v = _get(config, field)
  if v is _MISSING or (v is None and none_ok):
    return
  if not _is_int(v):
    raise ValueError(f"config.{field} must be an integer, got {v!r}.")
  if low is not None and v < low:
    raise ValueError(f"config.{field} must be >= {low}, got {v}.")


def _num(config: Any, field: str, *, low: float | None = None,
         high: float | None = None, low_open: bool = False, high_open: bool = False,
         none_ok: bool = False) -> None:
  v = _get(config, field)
  if v is _MISSING or (v is None and none_ok):
    return
  if not _is_number(v) or not math.isfinite(float(v)):
    raise ValueError(f"config.{field} must be a finite number, got {v!r}.")
  v = float(v)
  bad_low = low is not None and (v <= low if low_open else v < low)
  bad_high = high is not None and (v >= high if high_open else v > high)
  if bad_low or bad_high:
    lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "" if high is None else f"{high:g}{')' if high_open else ']'}"
    rng = f"in {lo}, {hi}" if lo and hi else (
        f"{'>' if low_open else '>='} {low:g}" if lo else
        f"{'<' if high_open else '<='} {high:g}")
    raise ValueError(f"config.{field} must be {rng}, got {v:g}.")


def _choice(config: Any, field: str, choices: tuple) -> None:
  v = _get(config, field)
  if v is _MISSING:
    return
  if v not in choices:
    raise ValueError(f"config.{field} must be one of {list(choices)}, got {v!r}.")


def _bool(config: Any, field: str) -> None:
  v = _get(config, field)
  if v is not _MISSING and not isinstance(v, bool):
    raise ValueError(f"config.{field} must be True or False, got {v!r}.")


def _common(config: Any) -> None:
  _int(config, "bits", low=1)
  _int(config, "seed")
  for f in ("num_query", "num_train"):
    _int(config, f"data.{f}", low=1, none_ok=True)
  _int(config, "eval.top_r", low=1, none_ok=True)
  ks = _get(config, "eval.ks")
  if ks is not _MISSING and ks is not None:
    for k in ks:
      if not _is_int(k) or k < 1:
        raise ValueError(f"config.eval.ks must hold integers >= 1, got {list(ks)}.")


def validate_shallow(config: Any) -> None:
  """Checks an RREH / baseline config (``configs/rreh_*.py``, ``baseline_*.py``).

  Raises:
    ValueError: naming the first bad field.
  """
  _common(config)
  _num(config, "semi_paired.paired_ratio", low=0.0, high=1.0, low_open=True)
  _choice(config, "semi_paired.mode", ("disjoint", "shuffled"))
  _int(config, "semi_paired.seed")
  if config.get("method") == "rreh" and _get(config, "rreh") is not _MISSING:
    _int(config, "rreh.num_anchors", low=1)
    _int(config, "rreh.iterations", low=1)
    # theta, lam and init_v may be None: chosen without labels (hashjax.rreh.select).
    _num(config, "rreh.theta", low=0.0, low_open=True, none_ok=True)
    _num(config, "rreh.beta", low=0.0)
    _num(config, "rreh.lam", low=0.0, low_open=True, none_ok=True)
    _num(config, "rreh.ridge_cap", low=0.0, none_ok=True)   # 0: no cap
    for f in ("kernel", "orthogonal_v"):
      _bool(config, f"rreh.{f}")
    _choice(config, "rreh.init_v", ("pca", "gaussian", None))
    if _get(config, "rreh.select") is not _MISSING:
      _bool(config, "rreh.select")
    _choice(config, "rreh.reconstruct_against", ("anchors", "paired"))
    _view_weights(config)


def _view_weights(config: Any) -> None:
  """``rreh.view_weights``: None, "auto" (with selection on) or one weight per view."""
  v = _get(config, "rreh.view_weights")
  if v is _MISSING or v is None:
    return
  views = _get(config, "data.views")
  n = len(views) if isinstance(views, (list, tuple)) else None
  checks.check_view_weights("config.rreh.view_weights", v, n)
  if v == checks.VIEW_WEIGHTS_AUTO and _get(config, "rreh.select") is False:
    raise ValueError("config.rreh.view_weights='auto' is chosen by label-free "
                     "selection; it needs config.rreh.select=True.")


def validate_dcgh(config: Any) -> None:
  """Checks a DCGH config (``configs/dcgh_*.py``).

  Raises:
    ValueError: naming the first bad field.
  """
  _common(config)
  _int(config, "num_epochs", low=1)
  _choice(config, "parallelism", ("jit", "pmap"))
  _int(config, "input.batch_size", low=1)
  _int(config, "input.eval_batch_size", low=1)
  _int(config, "input.num_threads", low=0)
  _int(config, "input.prefetch", low=0)
  _int(config, "input.image_size", low=1)
  _int(config, "validation.num_items", low=1)
  _num(config, "labels.fraction", low=0.0, high=1.0, low_open=True)
  _int(config, "labels.seed")
  fraction = _get(config, "labels.fraction")
  if (fraction is not _MISSING and _is_number(fraction) and float(fraction) < 1.0
      and _get(config, "model.kind") not in ("features", _MISSING)):
    raise ValueError("config.labels.fraction < 1 is supported for feature data sets "
                     f"(model.kind 'features') only, got model.kind "
                     f"{_get(config, 'model.kind')!r}.")
  for f in ("tower_lr", "head_lr", "proxy_lr", "weight_decay", "proxy_weight_decay"):
    _num(config, f"optim.{f}", low=0.0)
  _num(config, "optim.warmup", low=0.0, high=1.0)
  for f in ("b1", "b2", "proxy_momentum"):
    _num(config, f"optim.{f}", low=0.0, high=1.0, high_open=True)
  _num(config, "optim.eps", low=0.0, low_open=True)
  _num(config, "optim.max_grad_norm", low=0.0, low_open=True)
  for f in ("neg_weight", "pos_weight"):
    _num(config, f"loss.{f}", low=0.0)
  _num(config, "model.dropout", low=0.0, high=1.0, high_open=True)
  _num(config, "model.tower_dropout", low=0.0, high=1.0, high_open=True)
  hidden = _get(config, "model.hidden")
  if hidden is not _MISSING and hidden is not None:
    if not all(_is_int(h) and h >= 1 for h in hidden):
      raise ValueError(f"config.model.hidden must hold integers >= 1, got {hidden!r}.")
  _int(config, "checkpoint.every_steps", low=1)
  _int(config, "checkpoint.keep", low=1)
  _choice(config, "checkpoint.on_damage", ON_DAMAGE)
  _int(config, "eval_every_epochs", low=1)
  _int(config, "log_every_steps", low=1)
  _int(config, "stop_after_steps", low=0, none_ok=True)
  _int(config, "debug.nan_at_step", low=-1, none_ok=True)
  _bool(config, "progress_bar")
  _bool(config, "eval.query_every_eval")


def validate_config(config: Any) -> None:
  """Checks every field of ``config`` the run reads; dispatches on ``config.method``.

  Raises:
    ValueError: unknown method or a bad field (naming it).
  """
  if config is None or not hasattr(config, "get"):
    raise ValueError(f"config must be a ConfigDict, got {type(config).__name__}.")
  method = config.get("method", None)
  if method in SHALLOW_METHODS:
    validate_shallow(config)
  elif method in DCGH_METHODS:
    validate_dcgh(config)
  else:
    raise ValueError(
        f"config.method must be one of {list(SHALLOW_METHODS + DCGH_METHODS)}, "
        f"got {method!r}.")


def check_workdir(workdir: str | os.PathLike | None) -> None:
  """Creates ``workdir`` and checks a file can be written in it (before any work).

  Paths with a URL scheme (``gs://...``) are not checked here.

  Raises:
    ValueError: ``workdir`` is a file, or cannot be created or written.
  """
  if not workdir or "://" in os.fspath(workdir):
    return
  path = os.fspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"workdir {path} exists and is not a directory.")
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".hashjax_write_test"):
      pass
  except OSError as e:
    raise ValueError(f"workdir {path} is not writable ({e.strerror}).") from None


def check_model_bits(config: Any, model_bits: int | None, path: str) -> None:
  """Raises when the config's ``bits`` differs from a saved model's."""
  bits = config.get("bits", None)
  if model_bits is not None and bits is not None and int(bits) != int(model_bits):
    raise ValueError(
        f"config.bits is {bits} but {path} holds a {model_bits}-bit model; pass "
        f"--config.bits={model_bits} (or the config the model was trained with).")
