"""CLIP tower configs and presets: sizes only (no flax), shared by the model and loader.

``CLIPVisionConfig`` / ``CLIPTextConfig`` hold the sizes of the two towers,
``clip_preset`` returns a named pair. :mod:`hashjax.dcgh.model` builds modules from
them and :mod:`hashjax.dcgh.clip_weights` infers them from checkpoints; this module
imports neither (it sat in model.py, which made model and clip_weights import each
other).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from hashjax import checks

__all__ = ["ACTIVATIONS", "CLIPTextConfig", "CLIPVisionConfig", "activation",
           "clip_preset", "quick_gelu"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {}


def quick_gelu(x: jax.Array) -> jax.Array:
  """CLIP's activation ``x * sigmoid(1.702 x)``."""
  return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS.update({
    "quick_gelu": quick_gelu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
})


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in ACTIVATIONS:
    raise ValueError(
        f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.")
  return ACTIVATIONS[name]


def _check_tower(cfg: Any) -> None:
  for field in ("width", "layers", "heads", "embed_dim"):
    checks.check_positive_int(field, getattr(cfg, field))
  if cfg.width % cfg.heads:
    raise ValueError(
        f"width ({cfg.width}) must be divisible by heads ({cfg.heads}).")
  activation(cfg.activation)


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
  """Sizes of the CLIP ViT image tower (defaults: ViT-B/32)."""
  image_size: int = 224
  patch_size: int = 32
  width: int = 768
  layers: int = 12
  heads: int = 12
  embed_dim: int = 512
  mlp_dim: int | None = None  # None: 4 * width.
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5

  def __post_init__(self):
    _check_tower(self)
    checks.check_positive_int("patch_size", self.patch_size)
    if self.image_size % self.patch_size:
      raise ValueError(f"image_size ({self.image_size}) must be a multiple of "
                       f"patch_size ({self.patch_size}).")

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  """Sizes of the CLIP text tower (defaults: ViT-B/32's, context 32 as in DCGH).

  ``pooling="argmax"`` takes the feature at the highest token id (CLIP, DCGH);
  ``pooling="eos"`` at the first ``eos_token_id`` (HF CLIP when its config's
  ``eos_token_id != 2``).
  """
  vocab_size: int = 49408
  context_length: int = 32
  width: int = 512
  layers: int = 12
  heads: int = 8
  embed_dim: int = 512
  mlp_dim: int | None = None  # None: 4 * width.
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  pooling: str = "argmax"
  eos_token_id: int = 49407

  def __post_init__(self):
    _check_tower(self)
    checks.check_positive_int("vocab_size", self.vocab_size)
    checks.check_positive_int("context_length", self.context_length)
    if self.pooling not in ("argmax", "eos"):
      raise ValueError(f"pooling must be 'argmax' or 'eos', got {self.pooling!r}.")


_PRESETS = {
    "vit_b32": (CLIPVisionConfig(), CLIPTextConfig()),
    "tiny": (
        CLIPVisionConfig(image_size=32, patch_size=8, width=32, layers=2, heads=4,
                         embed_dim=16),
        CLIPTextConfig(vocab_size=64, context_length=8, width=32, layers=2, heads=4,
                       embed_dim=16, eos_token_id=63),
    ),
}


def clip_preset(name: str, *, context_length: int | None = None
                ) -> tuple[CLIPVisionConfig, CLIPTextConfig]:
  """Returns ``(vision, text)`` configs of a preset: ``"vit_b32"`` or ``"tiny"``."""
  if name not in _PRESETS:
    raise ValueError(f"preset must be one of {sorted(_PRESETS)}, got {name!r}.")
  vision, text = _PRESETS[name]
  if context_length is not None:
    text = dataclasses.replace(text, context_length=context_length)
  return vision, text


