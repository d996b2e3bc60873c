"""Full-size ViT-B/32 parity: hashjax's CLIP towers vs PyTorch on random weights.

Builds a randomly initialised transformers ``CLIPModel`` with ViT-B/32 sizes (nothing
is downloaded), writes it in the three layouts ``clip_weights`` reads:

* an HF folder (``config.json`` + ``model.safetensors``, fp32),
* an OpenAI-layout plain ``.pt`` state dict (fused ``in_proj``, fp32),
* an OpenAI-style TorchScript archive in fp16 (as the released ``ViT-B-32.pt``),

loads each with ``clip_weights.load_clip_towers`` and compares the image and text
embeddings with the PyTorch forward (for the fp16 archive: the same model with every
float tensor rounded to fp16, run in fp32). fp32 files are loaded with
``round_fp16=False``, so the check is of the architecture and the name mapping.

Usage (needs the ``parity`` extra, i.e. torch==2.13.0)::

  python experiments/clip_vit_b32_parity.py [--batch 2] [--tol 1e-4] [--workdir DIR]

Prints one line per layout with the largest absolute differences; exit status 1 if
any exceeds ``--tol``, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=2, help="images and captions compared")
  p.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed")
  p.add_argument("--workdir", default="", help="where the checkpoints go (default: a "
                 "temporary directory, removed at the end); needs ~1.5 GB")
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args(argv)
  if a.batch < 1:
    p.exit(2, f"--batch must be >= 1, got {a.batch}\n")
  if not a.tol > 0:
    p.exit(2, f"--tol must be > 0, got {a.tol}\n")
  if a.workdir and not os.path.isdir(a.workdir):
    p.exit(2, f"--workdir {a.workdir!r} is not a directory\n")
  return a


def _openai_names(hf, layers_v, layers_t):
  """HF CLIPModel state dict -> OpenAI names (q/k/v fused, projections [in, out])."""
  o = {}

  def blocks(src, dst, layers):
    for i in range(layers):
      a, b = f"{src}.encoder.layers.{i}.", f"{dst}transformer.resblocks.{i}."
      for part in ("weight", "bias"):
        o[f"{b}attn.in_proj_{part}"] = np.concatenate(
            [hf[f"{a}self_attn.{m}_proj.{part}"] for m in "qkv"], 0)
      for x, y in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                   ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                   ("mlp.fc2", "mlp.c_proj")):
        for part in ("weight", "bias"):
          o[f"{b}{y}.{part}"] = hf[f"{a}{x}.{part}"]

  v, t = "vision_model.", "text_model."
  o["visual.conv1.weight"] = hf[v + "embeddings.patch_embedding.weight"]
  o["visual.class_embedding"] = hf[v + "embeddings.class_embedding"]
  o["visual.positional_embedding"] = hf[v + "embeddings.position_embedding.weight"]
  for x, y in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
    for part in ("weight", "bias"):
      o[f"visual.{y}.{part}"] = hf[f"{v}{x}.{part}"]
  o["visual.proj"] = hf["visual_projection.weight"].T
  blocks("vision_model", "visual.", layers_v)
  o["token_embedding.weight"] = hf[t + "embeddings.token_embedding.weight"]
  o["positional_embedding"] = hf[t + "embeddings.position_embedding.weight"]
  for part in ("weight", "bias"):
    o[f"ln_final.{part}"] = hf[f"{t}final_layer_norm.{part}"]
  o["text_projection"] = hf["text_projection.weight"].T
  blocks("text_model", "", layers_t)
  o["logit_scale"] = hf["logit_scale"]
  return {k: np.ascontiguousarray(x) for k, x in o.items()}


def _scripted(torch, state):
  """A TorchScript module whose state_dict has exactly the given dotted names."""
  root = torch.nn.Module()
  for key, value in state.items():
    *path, leaf = key.split(".")
    mod = root
    for name in path:
      if name not in mod._modules:  # pylint: disable=protected-access
        mod.add_module(name, torch.nn.Module())
      mod = mod._modules[name]  # pylint: disable=protected-access
    mod.register_parameter(
        leaf, torch.nn.Parameter(torch.from_numpy(value), requires_grad=False))
  return torch.jit.script(root)


def main(argv=None) -> int:
  a = _parse(sys.argv[1:] if argv is None else argv)
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from safetensors.torch import save_file  # pylint: disable=g-import-not-at-top
  from transformers import CLIPConfig, CLIPModel  # pylint: disable=g-import-not-at-top

  from hashjax.dcgh import clip_weights  # pylint: disable=g-import-not-at-top
  from hashjax.dcgh.model import (  # pylint: disable=g-import-not-at-top
      TextTransformer, VisionTransformer)

  print(f"torch {torch.__version__}, jax {jax.__version__}, "
        f"load {os.getloadavg()[0]:.2f}", flush=True)
  t0 = time.time()
  torch.manual_seed(a.seed)
  config = CLIPConfig()   # defaults: ViT-B/32 (768/12/12, patch 32, 224; text 512/12/8)
  ref = CLIPModel(config).eval()
  hf = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
  hf.pop("text_model.embeddings.position_ids", None)
  hf.pop("vision_model.embeddings.position_ids", None)
  n_params = sum(x.size for k, x in hf.items() if k != "logit_scale")
  print(f"random CLIPModel: {n_params / 1e6:.1f}M parameters "
        f"({time.time() - t0:.1f} s)", flush=True)

  rng = np.random.default_rng(a.seed)
  images = rng.standard_normal((a.batch, 224, 224, 3)).astype(np.float32)
  ctx = config.text_config.max_position_embeddings
  tokens = np.zeros((a.batch, ctx), np.int32)
  for i in range(a.batch):
    m = 2 + (7 * i) % (ctx - 3)   # EOT (id 49407, the highest) at position m
    tokens[i, 0] = 49406
    tokens[i, 1:m] = rng.integers(1, 49405, m - 1)
    tokens[i, m] = 49407

  def torch_forward(model):
    with torch.no_grad():
      pooled = model.vision_model(
          pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).pooler_output
      img = model.visual_projection(pooled).numpy()
      pooled = model.text_model(input_ids=torch.from_numpy(tokens).long()).pooler_output
      txt = model.text_projection(pooled).numpy()
    return img, txt

  want32 = torch_forward(ref)
  with torch.no_grad():
    for p in ref.parameters():
      p.copy_(p.half().float())
  want16 = torch_forward(ref)

  tmp = tempfile.TemporaryDirectory() if not a.workdir else None
  root = a.workdir or tmp.name
  hf_dir = os.path.join(root, "hf")
  os.makedirs(hf_dir, exist_ok=True)
  config.save_pretrained(hf_dir)
  save_file({k: torch.from_numpy(x) for k, x in hf.items()},
            os.path.join(hf_dir, "model.safetensors"), metadata={"format": "pt"})
  layers_v = config.vision_config.num_hidden_layers
  layers_t = config.text_config.num_hidden_layers
  openai = _openai_names(hf, layers_v, layers_t)
  plain = os.path.join(root, "openai_fp32.pt")
  torch.save({k: torch.from_numpy(x) for k, x in openai.items()}, plain)
  jit16 = os.path.join(root, "ViT-B-32.pt")
  _scripted(torch, {k: x.astype(np.float16) for k, x in openai.items()}).save(jit16)
  del openai

  vision, text = clip_weights.config_from_hf(hf_dir, pooling="hf")
  image_fn = jax.jit(lambda p, x: VisionTransformer(vision).apply({"params": p}, x))
  text_fn = jax.jit(lambda p, x: TextTransformer(text).apply({"params": p}, x))
  worst = 0.0
  for name, path, want in (("HF folder (fp32)", hf_dir, want32),
                           ("OpenAI .pt (fp32)", plain, want32),
                           ("TorchScript .pt (fp16)", jit16, want16)):
    t1 = time.time()
    v2, t2 = clip_weights.config_from_checkpoint(path, context_length=ctx)
    if (v2.width, v2.layers, v2.heads, t2.width, t2.layers, t2.heads) != (
        vision.width, vision.layers, vision.heads, text.width, text.layers, text.heads):
      print(f"{name}: sizes read from the file differ: {v2} {t2}")
      return 1
    towers = clip_weights.load_clip_towers(path, vision=vision, text=text,
                                           round_fp16=False)
    img = np.asarray(image_fn(towers["image_tower"], images))
    txt = np.asarray(text_fn(towers["text_tower"], tokens))
    d_img = float(np.max(np.abs(img - want[0])))
    d_txt = float(np.max(np.abs(txt - want[1])))
    worst = max(worst, d_img, d_txt)
    print(f"{name:24s} max |hashjax - torch|: image {d_img:.3g}, text {d_txt:.3g} "
          f"(|image| max {np.abs(want[0]).max():.3g}, |text| max "
          f"{np.abs(want[1]).max():.3g}; {time.time() - t1:.1f} s)", flush=True)
  if tmp is not None:
    tmp.cleanup()
  ok = worst <= a.tol
  print(f"{'PASS' if ok else 'FAIL'}: worst {worst:.3g} vs tol {a.tol:g}; "
        f"total {time.time() - t0:.1f} s, load {os.getloadavg()[0]:.2f}")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
