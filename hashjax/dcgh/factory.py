"""``build_model``: a DCGH module from a config (presets, checkpoint sizes, overrides).

Above both :mod:`hashjax.dcgh.model` (the modules) and
:mod:`hashjax.dcgh.clip_weights` (sizes read from a checkpoint), so neither imports
the other back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hashjax import checks
from hashjax.dcgh.model import DCGH, FeatureDCGH
from hashjax.dcgh.towers_config import clip_preset

__all__ = ["build_model"]

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _dtype(value: Any) -> Any:
  if isinstance(value, str):
    if value not in _DTYPES:
      raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {value!r}.")
    return _DTYPES[value]
  return value


def _overrides(cfg: Any, section: Mapping[str, Any] | None) -> Any:
  if not section:
    return cfg
  section = dict(section.to_dict() if hasattr(section, "to_dict") else section)
  names = {f.name for f in dataclasses.fields(cfg)}
  unknown = sorted(set(section) - names)
  if unknown:
    raise ValueError(f"unknown {type(cfg).__name__} fields {unknown}; "
                     f"expected some of {sorted(names)}.")
  return dataclasses.replace(cfg, **section)


def build_model(config: Any) -> nn.Module:
  """Builds ``DCGH`` or ``FeatureDCGH`` from ``config.model`` (a ConfigDict/dict).

  Fields read (defaults in brackets): ``kind`` ["clip"] in {"clip", "features"};
  ``bits`` [``config.bits``]; ``dtype`` ["float32"]; ``dropout`` [0.2].
  kind "clip": ``preset`` ["vit_b32"] in {"vit_b32", "tiny", "checkpoint"} (the
  last reads sizes from ``clip_path``, an HF dir or an OpenAI ``.pt``);
  ``context_length`` [32]; ``text_pooling`` ["argmax"]; ``remat`` [False];
  ``vision`` / ``text`` [{}]: overrides of CLIPVisionConfig / CLIPTextConfig fields.
  kind "features": ``hidden`` [(1024, 512)], ``activation`` ["relu"],
  ``layer_norm`` [True], ``tower_dropout`` [0.0].
  """
  m = config["model"] if "model" in config else None
  if m is None:
    raise ValueError("config.model is missing.")
  bits = m.get("bits", None)
  if bits is None:
    bits = config.get("bits", None)
  checks.check_bits(bits)
  kind = m.get("kind", "clip")
  dtype = _dtype(m.get("dtype", "float32"))
  dropout = float(m.get("dropout", 0.2))
  if kind == "clip":
    preset = m.get("preset", "vit_b32")
    context = m.get("context_length", 32)
    if preset == "checkpoint":
      from hashjax.dcgh import clip_weights  # pylint: disable=g-import-not-at-top
      vision, text = clip_weights.config_from_checkpoint(
          m.get("clip_path", None), context_length=context)
    else:
      vision, text = clip_preset(preset, context_length=context)
    vision = _overrides(vision, m.get("vision", None))
    text = _overrides(text, m.get("text", None))
    if m.get("text_pooling", None):
      text = dataclasses.replace(text, pooling=m.get("text_pooling"))
    return DCGH(vision=vision, text=text, bits=bits, dropout_rate=dropout,
                dtype=dtype, remat=bool(m.get("remat", False)))
  if kind == "features":
    return FeatureDCGH(bits=bits, hidden=tuple(m.get("hidden", (1024, 512))),
                       activation=m.get("activation", "relu"),
                       layer_norm=bool(m.get("layer_norm", True)),
                       tower_dropout=float(m.get("tower_dropout", 0.0)),
                       dropout_rate=dropout, dtype=dtype)
  raise ValueError(f"config.model.kind must be 'clip' or 'features', got {kind!r}.")
