"""Loads OpenAI CLIP weights from a local path into the ``hashjax.dcgh.model`` tree.

Two layouts are understood:

* Hugging Face ``openai/clip-vit-base-patch32`` (a directory with ``config.json`` and
  ``model.safetensors`` (possibly sharded) or ``pytorch_model.bin``): keys
  ``vision_model.encoder.layers.{i}.self_attn.q_proj.weight`` etc.; Linear weights are
  ``[out, in]`` and are transposed.
* OpenAI's original ``ViT-B-32.pt`` (TorchScript archive or plain state dict): keys
  ``visual.transformer.resblocks.{i}.attn.in_proj_weight`` (q, k, v fused along the
  output axis) etc.; ``visual.proj`` and ``text_projection`` are already ``[in, out]``.

The patch-embedding conv kernel goes from OIHW to HWIO. A text positional embedding
longer than ``text.context_length`` (77 in CLIP, 32 in DCGH) keeps its first rows.
Every parameter's shape is checked; missing, unexpected and mis-shaped entries are all
listed in one ``ValueError``. Nothing is downloaded. ``.bin`` / ``.pt`` files need
PyTorch; safetensors files do not.

fp16 rounding (default, as the reference): DCGH's ``build_model`` (OpenAI CLIP's
``model.py``) converts the Conv / Linear / attention weights and biases and the two
projections to fp16 *before* ``load_state_dict``, and training later calls
``model.float()``. So those tensors start training rounded to fp16 even when the
checkpoint is fp32, while LayerNorms, the class / positional / token embeddings stay
as read. ``round_fp16=True`` does the same (see docs/differences.md#weights);
``round_fp16=False`` keeps every tensor as the checkpoint stores it.

Usage::

  vision, text = config_from_checkpoint(path, context_length=32)
  towers = load_clip_towers(path, vision=vision, text=text)
  params = replace_towers(variables["params"], towers)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from hashjax.dcgh.model import TextTransformer, VisionTransformer
from hashjax.dcgh.towers_config import CLIPTextConfig, CLIPVisionConfig

__all__ = [
    "config_from_checkpoint",
    "config_from_hf",
    "config_from_openai",
    "load_clip_towers",
    "params_from_state_dict",
    "read_state_dict",
    "replace_towers",
    "rounds_to_fp16",
]

_TOWERS = ("image_tower", "text_tower")
# Entries of real checkpoints that the model does not use.
_IGNORED = re.compile(
    r"^(logit_scale|input_resolution|context_length|vocab_size|"
    r"(text|vision)_model\.embeddings\.position_ids)$")
# Leaves that the reference's ``convert_weights`` stores in fp16: Conv2d / Linear
# weights and biases (incl. attention in_proj and out_proj) and the two projections.
_FP16_MODULES = frozenset({"conv1", "query", "key", "value", "out", "c_fc", "c_proj"})
_FP16_LEAVES = frozenset({"proj", "text_projection"})
_HF_ACT = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_new": "gelu_tanh",
           "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


# ----------------------------------------------------------------------------- reading


def _import_torch(path: str) -> Any:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"reading {path!r} needs PyTorch, which is not installed; install torch or "
        "convert the checkpoint to safetensors (model.safetensors).") from e
  return torch


def _read_torch(path: str) -> dict[str, np.ndarray]:
  torch = _import_torch(path)
  try:  # OpenAI's ViT-B-32.pt is a TorchScript archive.
    state = torch.jit.load(path, map_location="cpu").state_dict()
  except RuntimeError:
    state = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
    state = state["state_dict"]
  out = {}
  for k, v in state.items():
    if torch.is_tensor(v):
      v = v.detach().cpu()
      out[k] = (v.float() if v.is_floating_point() else v).numpy()
  return out


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  return dict(load_file(path))


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a checkpoint into ``{name: np.ndarray}`` (floats as float32).

  Args:
    path: an HF model directory, a ``.safetensors`` file, or a PyTorch ``.bin`` /
      ``.pt`` / ``.pth`` file (TorchScript or plain state dict; needs torch).

  Returns:
    The state dict as NumPy arrays.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    single = os.path.join(path, "model.safetensors")
    index = os.path.join(path, "model.safetensors.index.json")
    binary = os.path.join(path, "pytorch_model.bin")
    if os.path.isfile(single):
      state = _read_safetensors(single)
    elif os.path.isfile(index):
      with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      state = {}
      for shard in shards:
        state.update(_read_safetensors(os.path.join(path, shard)))
    elif os.path.isfile(binary):
      state = _read_torch(binary)
    else:
      raise ValueError(f"{path!r} holds no model.safetensors, "
                       "model.safetensors.index.json or pytorch_model.bin.")
  elif os.path.isfile(path):
    state = (_read_safetensors(path) if path.endswith(".safetensors")
             else _read_torch(path))
  else:
    raise ValueError(f"checkpoint path {path!r} does not exist.")
  return {k: v.astype(np.float32) if v.dtype.kind == "f" else v
          for k, v in state.items()}


def _layout(state: Mapping[str, Any]) -> str:
  if any(k.startswith(("vision_model.", "text_model.")) for k in state):
    return "hf"
  if "visual.conv1.weight" in state:
    return "openai"
  raise ValueError("unrecognised CLIP checkpoint layout: expected HF keys "
                   "('vision_model.*', 'text_model.*') or OpenAI keys "
                   f"('visual.conv1.weight', ...); first keys: {sorted(state)[:8]}.")


# ----------------------------------------------------------------------------- configs


def _pooling(pooling: str, eos_token_id: int) -> str:
  if pooling == "hf":  # transformers' CLIPTextModel convention.
    return "argmax" if eos_token_id == 2 else "eos"
  return pooling


def config_from_hf(path: str | os.PathLike[str], *, context_length: int | None = None,
                   pooling: str = "argmax"
                   ) -> tuple[CLIPVisionConfig, CLIPTextConfig]:
  """Builds model configs from a local HF CLIP ``config.json`` (no download).

  Args:
    path: directory holding ``config.json`` (or the file itself).
    context_length: text length of the model (DCGH: 32); default the checkpoint's
      ``max_position_embeddings`` (77 for OpenAI CLIP).
    pooling: "argmax" (CLIP/DCGH), "eos" or "hf" (argmax if the config's
      ``eos_token_id == 2`` else first ``eos_token_id``, as transformers does).

  Returns:
    ``(vision, text)`` configs.
  """
  from transformers import CLIPConfig  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if os.path.isfile(path):
    path = os.path.dirname(path) or "."
  if not os.path.isfile(os.path.join(path, "config.json")):
    raise ValueError(f"no config.json in {path!r}.")
  cfg = CLIPConfig.from_pretrained(path, local_files_only=True)
  v, t = cfg.vision_config, cfg.text_config

  def act(name):
    if name not in _HF_ACT:
      raise ValueError(f"unsupported hidden_act {name!r}; known: {sorted(_HF_ACT)}.")
    return _HF_ACT[name]

  vision = CLIPVisionConfig(
      image_size=v.image_size, patch_size=v.patch_size, width=v.hidden_size,
      layers=v.num_hidden_layers, heads=v.num_attention_heads,
      embed_dim=cfg.projection_dim, mlp_dim=v.intermediate_size,
      activation=act(v.hidden_act), layer_norm_eps=v.layer_norm_eps)
  eos = int(t.eos_token_id)
  text = CLIPTextConfig(
      vocab_size=t.vocab_size,
      context_length=context_length or t.max_position_embeddings,
      width=t.hidden_size, layers=t.num_hidden_layers, heads=t.num_attention_heads,
      embed_dim=cfg.projection_dim, mlp_dim=t.intermediate_size,
      activation=act(t.hidden_act), layer_norm_eps=t.layer_norm_eps,
      pooling=_pooling(pooling, eos), eos_token_id=eos)
  return vision, text


def _count_blocks(state: Mapping[str, Any], prefix: str) -> int:
  pat = re.compile(re.escape(prefix) + r"(\d+)\.")
  ids = {int(m.group(1)) for k in state if (m := pat.match(k))}
  return max(ids) + 1 if ids else 0


def config_from_openai(state_or_path: Any, *, context_length: int | None = None
                       ) -> tuple[CLIPVisionConfig, CLIPTextConfig]:
  """Infers configs from an OpenAI-layout state dict (or a path to one).

  Sizes come from tensor shapes as in CLIP's ``build_model`` (heads = width // 64).

  Args:
    state_or_path: ``{name: array}`` or a ``.pt`` / ``.safetensors`` path.
    context_length: text length of the model; default the checkpoint's (77).

  Returns:
    ``(vision, text)`` configs.
  """
  state = (read_state_dict(state_or_path)
           if isinstance(state_or_path, (str, os.PathLike)) else state_or_path)
  if _layout(state) != "openai":
    raise ValueError("config_from_openai needs an OpenAI-layout state dict.")
  conv = state["visual.conv1.weight"].shape
  grid = int(round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5))
  vision = CLIPVisionConfig(
      image_size=conv[-1] * grid, patch_size=conv[-1], width=conv[0],
      layers=_count_blocks(state, "visual.transformer.resblocks."),
      heads=conv[0] // 64, embed_dim=state["visual.proj"].shape[1],
      mlp_dim=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
  width = state["ln_final.weight"].shape[0]
  vocab = state["token_embedding.weight"].shape[0]
  text = CLIPTextConfig(
      vocab_size=vocab,
      context_length=context_length or state["positional_embedding"].shape[0],
      width=width, layers=_count_blocks(state, "transformer.resblocks."),
      heads=width // 64, embed_dim=state["text_projection"].shape[1],
      mlp_dim=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
      eos_token_id=vocab - 1)
  return vision, text


def config_from_checkpoint(path: str | os.PathLike[str] | None, *,
                           context_length: int | None = None
                           ) -> tuple[CLIPVisionConfig, CLIPTextConfig]:
  """``config_from_hf`` for a directory (config.json), else ``config_from_openai``."""
  if path is None:
    raise ValueError("a CLIP checkpoint path is required (config.model.clip_path).")
  path = os.fspath(path)
  if os.path.isdir(path):
    return config_from_hf(path, context_length=context_length)
  return config_from_openai(path, context_length=context_length)


# ----------------------------------------------------------------------------- mapping


def _hf_entries(L: Any, vision: CLIPVisionConfig, text: CLIPTextConfig) -> None:
  """Feeds ``L.put(tower, path, key, transform)`` with the HF layout."""
  T = lambda a: a.T  # noqa: E731

  def blocks(tower, prefix, layers):
    for i in range(layers):
      p, b = f"{prefix}.encoder.layers.{i}.", ("transformer", f"resblocks_{i}")
      for ln, ours in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2")):
        L.put(tower, (*b, ours, "scale"), p + ln + ".weight")
        L.put(tower, (*b, ours, "bias"), p + ln + ".bias")
      for hf, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"),
                       ("out_proj", "out")):
        L.put(tower, (*b, "attn", ours, "kernel"), f"{p}self_attn.{hf}.weight", T)
        L.put(tower, (*b, "attn", ours, "bias"), f"{p}self_attn.{hf}.bias")
      for hf, ours in (("fc1", "c_fc"), ("fc2", "c_proj")):
        L.put(tower, (*b, ours, "kernel"), f"{p}mlp.{hf}.weight", T)
        L.put(tower, (*b, ours, "bias"), f"{p}mlp.{hf}.bias")

  def ln(tower, ours, key):
    L.put(tower, (ours, "scale"), key + ".weight")
    L.put(tower, (ours, "bias"), key + ".bias")

  v = "vision_model"
  L.put("image_tower", ("conv1", "kernel"), f"{v}.embeddings.patch_embedding.weight",
        lambda a: a.transpose(2, 3, 1, 0))
  L.put("image_tower", ("class_embedding",), f"{v}.embeddings.class_embedding")
  L.put("image_tower", ("positional_embedding",),
        f"{v}.embeddings.position_embedding.weight")
  ln("image_tower", "ln_pre", f"{v}.pre_layrnorm")
  blocks("image_tower", v, vision.layers)
  ln("image_tower", "ln_post", f"{v}.post_layernorm")
  L.put("image_tower", ("proj",), "visual_projection.weight", T)
  t = "text_model"
  L.put("text_tower", ("token_embedding", "embedding"),
        f"{t}.embeddings.token_embedding.weight")
  L.put("text_tower", ("positional_embedding",),
        f"{t}.embeddings.position_embedding.weight",
        lambda a: a[: text.context_length])
  blocks("text_tower", t, text.layers)
  ln("text_tower", "ln_final", f"{t}.final_layer_norm")
  L.put("text_tower", ("text_projection",), "text_projection.weight", T)


def _openai_entries(L: Any, vision: CLIPVisionConfig, text: CLIPTextConfig) -> None:
  """Feeds ``L.put`` with OpenAI's original layout (fused q/k/v ``in_proj``)."""
  T = lambda a: a.T  # noqa: E731

  def blocks(tower, prefix, layers):
    for i in range(layers):
      p, b = f"{prefix}transformer.resblocks.{i}.", ("transformer", f"resblocks_{i}")
      for ln in ("ln_1", "ln_2"):
        L.put(tower, (*b, ln, "scale"), p + ln + ".weight")
        L.put(tower, (*b, ln, "bias"), p + ln + ".bias")
      for j, ours in enumerate(("query", "key", "value")):
        third = lambda a, j=j: np.split(a, 3, axis=0)[j]  # noqa: E731
        L.put(tower, (*b, "attn", ours, "kernel"), p + "attn.in_proj_weight",
              lambda a, f=third: f(a).T)
        L.put(tower, (*b, "attn", ours, "bias"), p + "attn.in_proj_bias", third)
      L.put(tower, (*b, "attn", "out", "kernel"), p + "attn.out_proj.weight", T)
      L.put(tower, (*b, "attn", "out", "bias"), p + "attn.out_proj.bias")
      for name in ("c_fc", "c_proj"):
        L.put(tower, (*b, name, "kernel"), f"{p}mlp.{name}.weight", T)
        L.put(tower, (*b, name, "bias"), f"{p}mlp.{name}.bias")

  def ln(tower, name, key):
    L.put(tower, (name, "scale"), key + ".weight")
    L.put(tower, (name, "bias"), key + ".bias")

  L.put("image_tower", ("conv1", "kernel"), "visual.conv1.weight",
        lambda a: a.transpose(2, 3, 1, 0))
  L.put("image_tower", ("class_embedding",), "visual.class_embedding")
  L.put("image_tower", ("positional_embedding",), "visual.positional_embedding")
  ln("image_tower", "ln_pre", "visual.ln_pre")
  blocks("image_tower", "visual.", vision.layers)
  ln("image_tower", "ln_post", "visual.ln_post")
  L.put("image_tower", ("proj",), "visual.proj")
  L.put("text_tower", ("token_embedding", "embedding"), "token_embedding.weight")
  L.put("text_tower", ("positional_embedding",), "positional_embedding",
        lambda a: a[: text.context_length])
  blocks("text_tower", "", text.layers)
  ln("text_tower", "ln_final", "ln_final")
  L.put("text_tower", ("text_projection",), "text_projection")


def _expected_shapes(vision: CLIPVisionConfig, text: CLIPTextConfig
                     ) -> dict[str, dict[tuple[str, ...], tuple[int, ...]]]:
  key = jax.random.key(0)
  img = jnp.zeros((1, vision.image_size, vision.image_size, 3), jnp.float32)
  tok = jnp.zeros((1, text.context_length), jnp.int32)
  out = {}
  for name, module, x in (("image_tower", VisionTransformer(vision), img),
                          ("text_tower", TextTransformer(text), tok)):
    tree = jax.eval_shape(module.init, key, x)["params"]
    out[name] = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree).items()}
  return out


class _Loader:
  """Collects converted tensors and every problem found on the way."""

  def __init__(self, state, expected):
    self.state, self.expected = state, expected
    self.used: set[str] = set()
    self.out: dict[str, dict[tuple[str, ...], np.ndarray]] = {t: {} for t in _TOWERS}
    self.missing: list[str] = []
    self.mismatched: list[str] = []

  def put(self, tower, path, key, transform=None):
    if key not in self.state:
      if key not in self.missing:
        self.missing.append(key)
      return
    self.used.add(key)
    arr = np.asarray(self.state[key])
    arr = transform(arr) if transform else arr
    want = self.expected[tower].get(path)
    if want is None:
      raise RuntimeError(f"internal: no model parameter {tower}/{'/'.join(path)}")
    if tuple(arr.shape) != want:
      self.mismatched.append(f"{key} -> {tower}/{'/'.join(path)}: checkpoint gives "
                             f"{tuple(arr.shape)}, model expects {want}")
      return
    self.out[tower][path] = np.ascontiguousarray(arr, dtype=np.float32)


def rounds_to_fp16(path: tuple[str, ...]) -> bool:
  """Whether the reference stores the tower leaf at ``path`` in fp16 (see top)."""
  return (len(path) >= 2 and path[-2] in _FP16_MODULES) or path[-1] in _FP16_LEAVES


def params_from_state_dict(state: Mapping[str, Any], *, vision: CLIPVisionConfig,
                           text: CLIPTextConfig, round_fp16: bool = True
                           ) -> dict[str, Any]:
  """Maps an HF- or OpenAI-layout CLIP state dict onto the model's towers.

  Args:
    state: ``{name: array}`` in PyTorch layout (Linear ``[out, in]``, conv OIHW).
    vision: the image tower config the parameters are for.
    text: the text tower config the parameters are for.
    round_fp16: round the leaves the reference keeps in fp16 (:func:`rounds_to_fp16`:
      Conv / Linear / attention kernels and biases, ``proj``, ``text_projection``)
      to the nearest fp16 value, as DCGH's ``build_model`` does; False keeps them as
      read.

  Returns:
    ``{"image_tower": tree, "text_tower": tree}`` of float32 NumPy arrays, the
    ``params`` sub-trees of ``VisionTransformer`` / ``TextTransformer``.

  Raises:
    ValueError: listing missing and unexpected checkpoint keys and shape mismatches.
  """
  layout = _layout(state)
  loader = _Loader(state, _expected_shapes(vision, text))
  (_hf_entries if layout == "hf" else _openai_entries)(loader, vision, text)
  unexpected = sorted(
      k for k in state if k not in loader.used and not _IGNORED.match(k))
  unfilled = sorted(f"{t}/{'/'.join(p)}" for t in _TOWERS
                    for p in loader.expected[t] if p not in loader.out[t])
  if loader.missing or unexpected or loader.mismatched:
    lines = [f"CLIP checkpoint ({layout} layout) does not fit the model config:"]
    for title, items in (("missing keys", loader.missing),
                         ("unexpected keys", unexpected),
                         ("shape mismatches", loader.mismatched)):
      if items:
        lines.append(f"  {title} ({len(items)}): " + "; ".join(items))
    raise ValueError("\n".join(lines))
  if unfilled:  # Every parameter has an entry above; guard against drift.
    raise ValueError(f"model parameters without a checkpoint entry: {unfilled}")
  if round_fp16:
    for t in _TOWERS:
      for p, a in loader.out[t].items():
        if rounds_to_fp16(p):
          loader.out[t][p] = a.astype(np.float16).astype(np.float32)
  return {t: traverse_util.unflatten_dict(loader.out[t]) for t in _TOWERS}


def load_clip_towers(path: str | os.PathLike[str], *, vision: CLIPVisionConfig,
                     text: CLIPTextConfig, round_fp16: bool = True) -> dict[str, Any]:
  """``read_state_dict`` + ``params_from_state_dict``: towers from a local path.

  ``round_fp16`` (default True, as the reference) is passed on to
  :func:`params_from_state_dict`.
  """
  return params_from_state_dict(read_state_dict(path), vision=vision, text=text,
                                round_fp16=round_fp16)


def replace_towers(params: Mapping[str, Any], towers: Mapping[str, Any]
                   ) -> dict[str, Any]:
  """Returns ``params`` with its ``image_tower`` / ``text_tower`` replaced.

  Args:
    params: the model's params tree (top-level keys image_tower, text_tower,
      image_head, text_head), or variables ``{"params": ...}``.
    towers: the output of ``load_clip_towers``.

  Returns:
    A new tree of the same structure and dtypes (heads untouched).

  Raises:
    ValueError: if a tower's structure or shapes differ from ``params``.
  """
  if "params" in params and "image_tower" not in params:
    return {**params, "params": replace_towers(params["params"], towers)}
  new = dict(params)
  for name in _TOWERS:
    if name not in params or name not in towers:
      raise ValueError(f"both trees need a {name!r} entry; params has "
                       f"{sorted(params)}, towers has {sorted(towers)}.")
    old = traverse_util.flatten_dict(params[name])
    got = traverse_util.flatten_dict(towers[name])
    bad = sorted("/".join(k) for k in set(old) ^ set(got))
    bad += sorted(f"{'/'.join(k)}: {tuple(got[k].shape)} vs {tuple(old[k].shape)}"
                  for k in set(old) & set(got) if got[k].shape != old[k].shape)
    if bad:
      raise ValueError(f"{name} does not match the model: {bad}")
    new[name] = traverse_util.unflatten_dict(
        {k: jnp.asarray(got[k], dtype=old[k].dtype) for k in old})
  return new
