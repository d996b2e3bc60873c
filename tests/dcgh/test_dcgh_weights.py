"""Tests for hashjax.dcgh.clip_weights on a tiny checkpoint written in the test.

The checkpoint uses the key names of transformers' ``CLIPModel`` (modeling_clip.py);
the forward reference is a plain NumPy CLIP written here on the PyTorch-layout
tensors, so it checks the name mapping, the transposes and the model together.
"""

import dataclasses
import functools
import json
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from safetensors.numpy import save_file

from hashjax.dcgh import clip_weights
from hashjax.dcgh.factory import build_model
from hashjax.dcgh.model import DCGH, TextTransformer, VisionTransformer

VOCAB, MAX_POS, PROJ = 50, 12, 16
VISION = dict(image_size=32, patch_size=8, hidden_size=64, intermediate_size=96,
              num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu")
TEXT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=MAX_POS,
            hidden_act="quick_gelu", bos_token_id=VOCAB - 2, eos_token_id=VOCAB - 1,
            pad_token_id=0)


def _hf_state(rng):
  """Random tensors under transformers' CLIPModel names (PyTorch layouts)."""
  s = {}
  w = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731

  def ln(key, d):
    s[key + ".weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
    s[key + ".bias"] = w(d)

  def encoder(prefix, d, mlp, layers):
    for i in range(layers):
      p = f"{prefix}.encoder.layers.{i}."
      for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        s[f"{p}self_attn.{name}.weight"], s[f"{p}self_attn.{name}.bias"] = w(d, d), w(d)
      s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = w(mlp, d), w(mlp)
      s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = w(d, mlp), w(d)
      ln(p + "layer_norm1", d)
      ln(p + "layer_norm2", d)

  dv, dt, p = VISION["hidden_size"], TEXT["hidden_size"], VISION["patch_size"]
  npos = (VISION["image_size"] // p) ** 2 + 1
  s["vision_model.embeddings.class_embedding"] = w(dv)
  s["vision_model.embeddings.patch_embedding.weight"] = w(dv, 3, p, p)
  s["vision_model.embeddings.position_embedding.weight"] = w(npos, dv)
  ln("vision_model.pre_layrnorm", dv)
  encoder("vision_model", dv, VISION["intermediate_size"], VISION["num_hidden_layers"])
  ln("vision_model.post_layernorm", dv)
  s["visual_projection.weight"] = w(PROJ, dv)
  s["text_model.embeddings.token_embedding.weight"] = w(VOCAB, dt)
  s["text_model.embeddings.position_embedding.weight"] = w(MAX_POS, dt)
  encoder("text_model", dt, TEXT["intermediate_size"], TEXT["num_hidden_layers"])
  ln("text_model.final_layer_norm", dt)
  s["text_projection.weight"] = w(PROJ, dt)
  s["logit_scale"] = np.array(2.6592, np.float32)
  return s


def _write_hf(directory, state):
  from transformers import CLIPConfig
  CLIPConfig(text_config=TEXT, vision_config=VISION,
             projection_dim=PROJ).save_pretrained(directory)
  save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------ NumPy reference


def _ln(x, s, key):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + 1e-5) * s[key + ".weight"] + s[key + ".bias"]


def _lin(x, s, key):
  return x @ s[key + ".weight"].T.astype(np.float64) + s[key + ".bias"]


def _encoder(x, s, prefix, layers, heads, causal):
  n, t, d = x.shape
  hd = d // heads
  for i in range(layers):
    p = f"{prefix}.encoder.layers.{i}."
    h = _ln(x, s, p + "layer_norm1")
    q, k, v = (_lin(h, s, f"{p}self_attn.{m}").reshape(n, t, heads, hd)
               for m in ("q_proj", "k_proj", "v_proj"))
    att = np.einsum("nqhd,nkhd->nhqk", q, k) / np.sqrt(hd)
    if causal:
      att = np.where(np.triu(np.ones((t, t), bool), 1), -np.inf, att)
    att = np.exp(att - att.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    o = np.einsum("nhqk,nkhd->nqhd", att, v).reshape(n, t, d)
    x = x + _lin(o, s, p + "self_attn.out_proj")
    h = _lin(_ln(x, s, p + "layer_norm2"), s, p + "mlp.fc1")
    h = h / (1 + np.exp(-1.702 * h))
    x = x + _lin(h, s, p + "mlp.fc2")
  return x


def _np_image(s, images):
  """Images NHWC -> [n, PROJ]; the conv is an explicit sum over each patch."""
  p, g = VISION["patch_size"], VISION["image_size"] // VISION["patch_size"]
  kernel = s["vision_model.embeddings.patch_embedding.weight"]  # [o, c, y, x]
  n = images.shape[0]
  patches = np.zeros((n, g * g, kernel.shape[0]))
  for gi in range(g):
    for gj in range(g):
      patch = images[:, gi * p:(gi + 1) * p, gj * p:(gj + 1) * p, :]  # n y x c
      patches[:, gi * g + gj] = np.einsum("nyxc,ocyx->no", patch, kernel)
  emb = "vision_model.embeddings."
  cls = np.broadcast_to(s[emb + "class_embedding"], (n, 1, kernel.shape[0]))
  x = np.concatenate([cls, patches], 1) + s[emb + "position_embedding.weight"]
  x = _ln(x, s, "vision_model.pre_layrnorm")
  x = _encoder(x, s, "vision_model", VISION["num_hidden_layers"],
               VISION["num_attention_heads"], causal=False)
  x = _ln(x[:, 0], s, "vision_model.post_layernorm")
  return x @ s["visual_projection.weight"].T


def _np_text(s, tokens):
  t = tokens.shape[1]
  x = (s["text_model.embeddings.token_embedding.weight"][tokens]
       + s["text_model.embeddings.position_embedding.weight"][:t]).astype(np.float64)
  x = _encoder(x, s, "text_model", TEXT["num_hidden_layers"],
               TEXT["num_attention_heads"], causal=True)
  x = _ln(x, s, "text_model.final_layer_norm")
  eot = [int(np.flatnonzero(row == VOCAB - 1)[0]) for row in tokens]  # CLIP: EOT.
  return x[np.arange(len(tokens)), eot] @ s["text_projection.weight"].T


def _tokens(np_rng, n, length):
  tok = np.zeros((n, length), np.int32)
  for i in range(n):
    m = 1 + i % (length - 1)  # EOT at position m.
    tok[i, 0] = VOCAB - 2
    tok[i, 1:m] = np_rng.integers(1, VOCAB - 2, m - 1)
    tok[i, m] = VOCAB - 1
  return tok


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("clip_hf")
  state = _hf_state(np.random.default_rng(0))
  _write_hf(d, state)
  return d, state


def test_config_from_hf(hf_dir):
  d, _ = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  assert (vision.image_size, vision.patch_size, vision.width, vision.layers,
          vision.heads, vision.embed_dim, vision.mlp_dim) == (32, 8, 64, 2, 4, PROJ, 96)
  assert (text.vocab_size, text.context_length, text.width, text.layers, text.heads,
          text.embed_dim, text.mlp_dim, text.eos_token_id, text.pooling) == (
              VOCAB, 8, 64, 2, 2, PROJ, 160, VOCAB - 1, "argmax")
  assert clip_weights.config_from_hf(d)[1].context_length == MAX_POS
  assert clip_weights.config_from_hf(d, pooling="hf")[1].pooling == "eos"
  with pytest.raises(ValueError, match="config.json"):
    clip_weights.config_from_hf(d / "nowhere")
  # The model factory reads the sizes from the checkpoint when asked to.
  model = build_model(ml_collections.ConfigDict({"model": {
      "kind": "clip", "preset": "checkpoint", "clip_path": str(d), "bits": 8,
      "context_length": 8}}))
  assert (model.vision, model.text) == (vision, text)


def test_loaded_values_are_transposed_tensors(hf_dir):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  towers = clip_weights.load_clip_towers(d, vision=vision, text=text, round_fp16=False)
  im, tx = towers["image_tower"], towers["text_tower"]
  blk = im["transformer"]["resblocks_1"]
  p = "vision_model.encoder.layers.1."
  np.testing.assert_array_equal(
      im["conv1"]["kernel"],
      np.transpose(s["vision_model.embeddings.patch_embedding.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(blk["attn"]["key"]["kernel"],
                                s[p + "self_attn.k_proj.weight"].T)
  np.testing.assert_array_equal(blk["attn"]["out"]["bias"],
                                s[p + "self_attn.out_proj.bias"])
  np.testing.assert_array_equal(blk["c_fc"]["kernel"], s[p + "mlp.fc1.weight"].T)
  np.testing.assert_array_equal(blk["ln_2"]["scale"], s[p + "layer_norm2.weight"])
  np.testing.assert_array_equal(im["proj"], s["visual_projection.weight"].T)
  np.testing.assert_array_equal(
      tx["positional_embedding"],
      s["text_model.embeddings.position_embedding.weight"][:8])
  np.testing.assert_array_equal(tx["token_embedding"]["embedding"],
                                s["text_model.embeddings.token_embedding.weight"])
  np.testing.assert_array_equal(tx["text_projection"], s["text_projection.weight"].T)


def test_forward_matches_numpy_reference(hf_dir, np_rng):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  towers = clip_weights.load_clip_towers(d, vision=vision, text=text, round_fp16=False)
  images = np_rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
  tokens = _tokens(np_rng, 3, 8)
  model = DCGH(vision, text, bits=8)
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          jax.random.key(0), images, tokens)
  params = jax.tree.map(lambda a: np_rng.standard_normal(a.shape).astype(np.float32),
                        shapes["params"])
  params = clip_weights.replace_towers(params, towers)

  def run(module, images, tokens):  # Tower embeddings, then hash outputs (eval).
    return (module.embed_image(images), module.embed_text(tokens),
            *module(images, tokens, train=False))

  img, txt, h_img, h_txt = jax.jit(functools.partial(model.apply, method=run))(
      {"params": params}, images, tokens)
  want_img, want_txt = _np_image(s, images), _np_text(s, tokens)
  np.testing.assert_allclose(img, want_img, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(txt, want_txt, atol=1e-4, rtol=1e-4)
  head = params["image_head"]["dense"]
  np.testing.assert_allclose(
      h_img, np.tanh(want_img @ head["kernel"] + head["bias"]), atol=1e-4)
  head = params["text_head"]["dense"]
  np.testing.assert_allclose(
      h_txt, np.tanh(want_txt @ head["kernel"] + head["bias"]), atol=1e-4)


def _reference_fp16(hf_key):
  """Whether DCGH's build_model (convert_weights) holds this HF tensor in fp16.

  Written on the HF names from the torch module types: Linear (q/k/v/out_proj,
  fc1/fc2), Conv2d (patch_embedding) weights and biases and the two projections are
  converted; LayerNorm, Embedding and the bare class/positional tensors are not.
  """
  if "layer_norm" in hf_key or "layrnorm" in hf_key or "layernorm" in hf_key:
    return False
  return any(m in hf_key for m in ("self_attn.", "mlp.fc", "patch_embedding",
                                   "visual_projection", "text_projection"))


def test_fp32_checkpoint_loads_rounded_to_fp16(hf_dir):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  rounded = {k: v.astype(np.float16).astype(np.float32) if _reference_fp16(k) else v
             for k, v in s.items()}
  # 12 per block (q, k, v, out, fc1, fc2 weight + bias) x 4 blocks + conv + 2 proj.
  assert sum(map(_reference_fp16, s)) == 12 * 4 + 3
  want = clip_weights.params_from_state_dict(rounded, vision=vision, text=text,
                                             round_fp16=False)
  got = clip_weights.load_clip_towers(d, vision=vision, text=text)   # the default
  jax.tree.map(np.testing.assert_array_equal, got, want)
  exact = clip_weights.load_clip_towers(d, vision=vision, text=text, round_fp16=False)
  blk = "vision_model.encoder.layers.0."
  np.testing.assert_array_equal(exact["image_tower"]["transformer"]["resblocks_0"][
      "attn"]["query"]["kernel"], s[blk + "self_attn.q_proj.weight"].T)
  # The rounding is real (fp32 draws are not fp16 values), and it is fp16's.
  diff = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b))), got, exact)
  assert diff["image_tower"]["transformer"]["resblocks_0"]["c_fc"]["bias"] > 0
  assert diff["text_tower"]["text_projection"] > 0
  assert diff["image_tower"]["conv1"]["kernel"] > 0
  assert diff["image_tower"]["class_embedding"] == 0
  assert diff["text_tower"]["token_embedding"]["embedding"] == 0
  assert diff["text_tower"]["ln_final"]["scale"] == 0
  assert max(jax.tree.leaves(diff)) <= 2.0 ** -11   # |w| < 2: half an fp16 ulp


def _to_openai(s):
  """The same tensors under OpenAI's original CLIP names (fused q/k/v)."""
  o = {"logit_scale": s["logit_scale"], "input_resolution": np.array(32)}

  def blocks(src, dst, layers):
    for i in range(layers):
      a, b = f"{src}.encoder.layers.{i}.", f"{dst}transformer.resblocks.{i}."
      o[b + "attn.in_proj_weight"] = np.concatenate(
          [s[f"{a}self_attn.{m}_proj.weight"] for m in "qkv"], 0)
      o[b + "attn.in_proj_bias"] = np.concatenate(
          [s[f"{a}self_attn.{m}_proj.bias"] for m in "qkv"], 0)
      for x, y in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                   ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                   ("mlp.fc2", "mlp.c_proj")):
        o[f"{b}{y}.weight"], o[f"{b}{y}.bias"] = s[f"{a}{x}.weight"], s[f"{a}{x}.bias"]

  v = "vision_model."
  o["visual.conv1.weight"] = s[v + "embeddings.patch_embedding.weight"]
  o["visual.class_embedding"] = s[v + "embeddings.class_embedding"]
  o["visual.positional_embedding"] = s[v + "embeddings.position_embedding.weight"]
  for x, y in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
    o[f"visual.{y}.weight"] = s[f"{v}{x}.weight"]
    o[f"visual.{y}.bias"] = s[f"{v}{x}.bias"]
  o["visual.proj"] = s["visual_projection.weight"].T
  blocks("vision_model", "visual.", VISION["num_hidden_layers"])
  o["token_embedding.weight"] = s["text_model.embeddings.token_embedding.weight"]
  o["positional_embedding"] = s["text_model.embeddings.position_embedding.weight"]
  o["ln_final.weight"] = s["text_model.final_layer_norm.weight"]
  o["ln_final.bias"] = s["text_model.final_layer_norm.bias"]
  o["text_projection"] = s["text_projection.weight"].T
  blocks("text_model", "", TEXT["num_hidden_layers"])
  return o


def test_openai_layout_gives_the_same_params(hf_dir):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  from_hf = clip_weights.params_from_state_dict(s, vision=vision, text=text)
  openai = _to_openai(s)
  from_oa = clip_weights.params_from_state_dict(openai, vision=vision, text=text)
  jax.tree.map(np.testing.assert_array_equal, from_hf, from_oa)
  # Shapes-only config inference (heads = width // 64, as in CLIP's build_model).
  v2, t2 = clip_weights.config_from_openai(openai, context_length=8)
  assert v2 == dataclasses.replace(vision, heads=1)
  assert t2 == dataclasses.replace(text, heads=1)


def test_mismatches_are_all_listed(hf_dir):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  bad = dict(s)
  del bad["vision_model.encoder.layers.0.mlp.fc1.bias"]
  bad["text_model.extra.weight"] = np.zeros(3, np.float32)
  bad["text_projection.weight"] = np.zeros((PROJ + 1, 64), np.float32)
  with pytest.raises(ValueError) as err:
    clip_weights.params_from_state_dict(bad, vision=vision, text=text)
  msg = str(err.value)
  assert "missing keys (1): vision_model.encoder.layers.0.mlp.fc1.bias" in msg
  assert "unexpected keys (1): text_model.extra.weight" in msg
  assert "text_projection.weight -> text_tower/text_projection" in msg
  # A config with fewer layers than the checkpoint leaves blocks unused.
  with pytest.raises(ValueError, match=r"unexpected keys \(16\)"):
    clip_weights.params_from_state_dict(
        s, vision=dataclasses.replace(vision, layers=1), text=text)
  # A longer context than the checkpoint's positions cannot be filled.
  with pytest.raises(ValueError, match="shape mismatches"):
    clip_weights.params_from_state_dict(
        s, vision=vision, text=dataclasses.replace(text, context_length=MAX_POS + 1))
  with pytest.raises(ValueError, match="layout"):
    clip_weights.params_from_state_dict({"foo": np.zeros(1)}, vision=vision, text=text)


def test_replace_towers_checks_shapes(hf_dir):
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  towers = clip_weights.params_from_state_dict(s, vision=vision, text=text)
  params = {"image_tower": towers["image_tower"], "text_tower": towers["text_tower"],
            "image_head": {"dense": {"kernel": jnp.ones((PROJ, 4))}}}
  wrapped = clip_weights.replace_towers({"params": params}, towers)
  assert set(wrapped["params"]) == {"image_tower", "text_tower", "image_head"}
  wrong = dict(towers, text_tower=dict(towers["text_tower"],
                                       positional_embedding=np.zeros((7, 64))))
  with pytest.raises(ValueError, match="positional_embedding"):
    clip_weights.replace_towers(params, wrong)


def test_torch_formats_need_torch(tmp_path, monkeypatch):
  path = tmp_path / "ViT-B-32.pt"
  path.write_bytes(b"not read")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises.
  with pytest.raises(ImportError, match="needs PyTorch"):
    clip_weights.read_state_dict(path)
  (tmp_path / "hf").mkdir()
  (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(ImportError, match="needs PyTorch"):
    clip_weights.read_state_dict(tmp_path / "hf")
  with pytest.raises(ValueError, match="does not exist"):
    clip_weights.read_state_dict(tmp_path / "missing.pt")


def test_parity_with_transformers_clip(tmp_path):
  """Exact-architecture check against transformers' PyTorch CLIPModel."""
  torch = pytest.importorskip("torch", reason="PyTorch is not installed")
  from transformers import CLIPConfig, CLIPModel
  torch.manual_seed(0)
  config = CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJ)
  ref = CLIPModel(config).eval()
  ref.save_pretrained(tmp_path)
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["projection_dim"] == PROJ
  vision, text = clip_weights.config_from_hf(tmp_path, pooling="hf")
  towers = clip_weights.load_clip_towers(tmp_path, vision=vision, text=text,
                                         round_fp16=False)
  rng = np.random.default_rng(1)
  images = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
  tokens = _tokens(rng, 2, MAX_POS)
  with torch.no_grad():
    pooled = ref.vision_model(
        pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).pooler_output
    want_img = ref.visual_projection(pooled).numpy()
    pooled = ref.text_model(input_ids=torch.from_numpy(tokens).long()).pooler_output
    want_txt = ref.text_projection(pooled).numpy()
  got_img = VisionTransformer(vision).apply({"params": towers["image_tower"]}, images)
  got_txt = TextTransformer(text).apply({"params": towers["text_tower"]}, tokens)
  diff_img = float(np.max(np.abs(np.asarray(got_img) - want_img)))
  diff_txt = float(np.max(np.abs(np.asarray(got_txt) - want_txt)))
  print(f"max |flax - transformers|: image {diff_img:.3g}, text {diff_txt:.3g}")
  np.testing.assert_allclose(got_img, want_img, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(got_txt, want_txt, atol=1e-4, rtol=1e-4)


def _torch_module(torch, state):
  """A scriptable module whose state_dict has exactly the given dotted names."""
  root = torch.nn.Module()
  for key, value in state.items():
    *path, leaf = key.split(".")
    mod = root
    for name in path:
      if name not in mod._modules:  # pylint: disable=protected-access
        mod.add_module(name, torch.nn.Module())
      mod = mod._modules[name]  # pylint: disable=protected-access
    tensor = torch.from_numpy(np.array(value))
    if tensor.is_floating_point():
      mod.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    else:
      mod.register_buffer(leaf, tensor)
  return root


def test_torch_checkpoint_files(tmp_path, hf_dir):
  """pytorch_model.bin, OpenAI TorchScript (fp16) and plain ``.pt`` state dicts."""
  torch = pytest.importorskip("torch", reason="PyTorch is not installed")
  d, s = hf_dir
  vision, text = clip_weights.config_from_hf(d, context_length=8)
  want = clip_weights.params_from_state_dict(s, vision=vision, text=text)
  check = lambda got, **tol: jax.tree.map(  # noqa: E731
      lambda a, b: np.testing.assert_allclose(a, b, **tol), got, want)

  hf_bin = tmp_path / "hf_bin"
  hf_bin.mkdir()
  (hf_bin / "config.json").write_bytes((d / "config.json").read_bytes())
  torch.save({k: torch.from_numpy(v) for k, v in s.items()},
             hf_bin / "pytorch_model.bin")
  check(clip_weights.load_clip_towers(hf_bin, vision=vision, text=text), rtol=0)

  openai = _to_openai(s)
  torch.save({k: torch.from_numpy(np.array(v)) for k, v in openai.items()},
             tmp_path / "plain.pt")
  half = {k: v.astype(np.float16) if v.dtype.kind == "f" else v
          for k, v in openai.items()}
  torch.jit.script(_torch_module(torch, half)).save(str(tmp_path / "ViT-B-32.pt"))
  for name, tol in (("plain.pt", 0), ("ViT-B-32.pt", 2e-3)):
    path = tmp_path / name
    v2, t2 = clip_weights.config_from_checkpoint(path, context_length=8)
    assert (v2.width, v2.layers, t2.vocab_size, t2.context_length) == (64, 2, VOCAB, 8)
    check(clip_weights.load_clip_towers(path, vision=vision, text=text),
          rtol=tol, atol=tol)
