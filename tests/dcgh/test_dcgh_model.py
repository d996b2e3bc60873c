"""Tests for hashjax.dcgh.model (tiny configs; NumPy references written here).

The CLIP tower forward itself is checked against a NumPy CLIP in
test_dcgh_weights.py; these tests cover the heads, pooling, causality, dropout,
remat/bf16 options, the feature variant and the factory.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hashjax.dcgh import model as dm
from hashjax.dcgh.factory import build_model


def _random_params(module, np_rng, *args, **kwargs):
  """Parameters with the module's shapes, drawn with NumPy (no init compile)."""
  init = functools.partial(module.init, **kwargs)
  shapes = jax.eval_shape(init, jax.random.key(0), *args)["params"]
  return jax.tree.map(
      lambda a: (0.5 * np_rng.standard_normal(a.shape)).astype(np.float32), shapes)


def _config(**model):
  return ml_collections.ConfigDict({"model": model})


def test_param_tree_top_level_keys_and_dtypes():
  vision, text = dm.clip_preset("tiny")
  model = build_model(_config(kind="clip", preset="tiny", bits=12, context_length=8))
  assert isinstance(model, dm.DCGH) and model.bits == 12
  images = jnp.zeros((2, 32, 32, 3))
  tokens = jnp.zeros((2, 8), jnp.int32)
  shapes = jax.eval_shape(functools.partial(model.init, train=False),
                          jax.random.key(0), images, tokens)
  params = shapes["params"]
  assert set(shapes) == {"params"}
  assert set(params) == {"image_tower", "text_tower", "image_head", "text_head"}
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))
  assert params["image_head"]["dense"]["kernel"].shape == (vision.embed_dim, 12)
  assert params["text_head"]["dense"]["kernel"].shape == (text.embed_dim, 12)
  assert params["image_tower"]["positional_embedding"].shape == (17, 32)
  assert params["image_tower"]["conv1"]["kernel"].shape == (8, 8, 3, 32)
  assert params["text_tower"]["token_embedding"]["embedding"].shape == (64, 32)
  assert len(params["image_tower"]["transformer"]) == vision.layers
  # bf16 compute keeps float32 parameters.
  bf16 = build_model(_config(preset="tiny", bits=12, context_length=8,
                                dtype="bfloat16"))
  shapes16 = jax.eval_shape(functools.partial(bf16.init, train=False),
                            jax.random.key(0), images, tokens)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(shapes16))
  out = jax.eval_shape(functools.partial(bf16.apply, train=False), shapes16,
                       images, tokens)
  assert [(o.shape, o.dtype) for o in out] == [((2, 12), jnp.float32)] * 2


def test_vit_b32_preset_sizes():
  vision, text = dm.clip_preset("vit_b32")
  assert (vision.image_size, vision.patch_size, vision.width, vision.layers,
          vision.heads, vision.embed_dim) == (224, 32, 768, 12, 12, 512)
  assert (text.vocab_size, text.context_length, text.width, text.layers, text.heads,
          text.embed_dim, text.pooling) == (49408, 32, 512, 12, 8, 512, "argmax")
  shapes = jax.eval_shape(
      functools.partial(dm.DCGH(vision, text, bits=64).init, train=False),
      jax.random.key(0), jnp.zeros((1, 224, 224, 3)), jnp.zeros((1, 32), jnp.int32))
  n = sum(a.size for a in jax.tree.leaves(shapes["params"]["image_tower"]))
  assert n == 87_849_216  # OpenAI ViT-B/32 visual tower parameter count.


def test_hash_head_matches_numpy_and_dropout(np_rng, rng):
  head = dm.HashHead(bits=6, dropout_rate=0.5)
  x = np_rng.standard_normal((40, 5)).astype(np.float32)
  params = _random_params(head, np_rng, x, train=False)
  z = x @ np.asarray(params["dense"]["kernel"]) + np.asarray(params["dense"]["bias"])
  out, train = jax.jit(lambda p, x, key: (  # noqa: E731
      head.apply(p, x, train=False),
      head.apply(p, x, train=True, rngs={"dropout": key})))({"params": params}, x, rng)
  np.testing.assert_allclose(out, np.tanh(z), atol=1e-6)
  train = np.asarray(train)
  kept = train != 0
  np.testing.assert_allclose(train[kept], np.tanh(z[kept] / 0.5), atol=1e-6)
  assert 0.3 < kept.mean() < 0.7


@pytest.mark.parametrize("fan_in", [512, 3])
def test_hash_head_init_is_torch_linear_default(rng, fan_in):
  """Kernel and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch nn.Linear."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  bits = 64
  params = dm.HashHead(bits=bits).init(rng, jnp.zeros((1, fan_in)), train=False)
  kernel = np.asarray(params["params"]["dense"]["kernel"], np.float64)
  bias = np.asarray(params["params"]["dense"]["bias"], np.float64)
  assert kernel.shape == (fan_in, bits) and bias.shape == (bits,)
  bound = 1.0 / math.sqrt(fan_in)
  for name, x in (("kernel", kernel), ("bias", bias)):
    assert np.all(np.abs(x) <= bound), name
    # Fills the interval (a narrower law, e.g. bound / 2, fails here and in the KS).
    assert x.max() > 0.8 * bound and x.min() < -0.8 * bound, name
    ks = stats.kstest(x.ravel(), stats.uniform(loc=-bound, scale=2 * bound).cdf)
    assert ks.pvalue > 1e-3, (name, ks)
  assert np.all(bias != 0)


def test_text_pooling_and_causal_mask(np_rng):
  _, text = dm.clip_preset("tiny")
  text = dataclasses.replace(text, eos_token_id=20, layers=1)
  eos_text = dataclasses.replace(text, pooling="eos")
  tokens = jnp.asarray([[1, 50, 20, 3, 8, 0, 0, 0],     # max id at 1, eos at 2
                        [1, 50, 20, 7, 2, 4, 4, 4],     # same prefix [:3]
                        [1, 50, 30, 20, 8, 0, 0, 0],    # same prefix [:2]
                        [1, 49, 20, 3, 8, 0, 0, 0]], jnp.int32)
  params = {"params": _random_params(dm.TextTransformer(text), np_rng, tokens)}

  @jax.jit
  def run(params, tokens):
    return (dm.TextTransformer(text).apply(params, tokens),
            dm.TextTransformer(eos_text).apply(params, tokens),
            dm.TextTransformer(text).apply(params, tokens[:, :3]))

  argmax, eos, short = map(np.asarray, run(params, tokens))
  # Argmax pooling reads position 1: rows 0-2 share tokens[:2], row 3 differs there.
  np.testing.assert_allclose(argmax[1], argmax[0], atol=1e-5)
  np.testing.assert_allclose(argmax[2], argmax[0], atol=1e-5)
  assert np.abs(argmax[3] - argmax[0]).max() > 1e-3
  # EOS pooling reads position 2 (first eos): rows 0 and 1 agree, row 2 does not.
  np.testing.assert_allclose(eos[1], eos[0], atol=1e-5)
  assert np.abs(eos[2] - eos[0]).max() > 1e-3
  assert np.abs(eos[0] - argmax[0]).max() > 1e-3
  # Inputs shorter than the context use the first positional rows.
  np.testing.assert_allclose(short[:2], argmax[:2], atol=1e-5)


def test_dcgh_dropout_encode_methods_bf16(np_rng, rng):
  vision, text = dm.clip_preset("tiny")
  vision = dataclasses.replace(vision, layers=1)
  text = dataclasses.replace(text, layers=1)
  model = dm.DCGH(vision, text, bits=8, dropout_rate=0.2)
  images = np_rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
  tokens = np.zeros((4, 8), np.int32)
  tokens[:, :4] = [1, 5, 9, 63]
  params = {"params": _random_params(model, np_rng, images, tokens, train=False)}

  def run(m, images, tokens):
    return (m(images, tokens, train=False), m.encode_image(images, train=True),
            m.encode_image(images), m.encode_text(tokens))

  @jax.jit
  def everything(params, key):
    return (model.apply(params, images, tokens, rngs={"dropout": key}, method=run),
            model.apply(params, images, method="encode_image"),  # as a loop would
            model.clone(dtype=jnp.bfloat16).apply(params, images, tokens, train=False))

  ((ev_i, ev_t), tr_i, enc_i, enc_t), by_name, (b_i, b_t) = everything(params, rng)
  np.testing.assert_array_equal(enc_i, ev_i)
  np.testing.assert_array_equal(enc_t, ev_t)
  np.testing.assert_allclose(by_name, ev_i, atol=1e-6)
  assert np.abs(np.asarray(tr_i) - np.asarray(ev_i)).max() > 1e-3  # dropout active
  assert ev_i.shape == (4, 8) and np.all(np.abs(np.asarray(ev_i)) < 1)
  assert b_i.dtype == jnp.float32
  np.testing.assert_allclose(b_i, ev_i, atol=0.1)
  np.testing.assert_allclose(b_t, ev_t, atol=0.1)


def test_remat_gives_the_same_gradients(np_rng):
  x = np_rng.standard_normal((2, 5, 8)).astype(np.float32)
  block = dm.Transformer(layers=1, heads=2, mlp_dim=16, causal=True)
  params = {"params": _random_params(block, np_rng, x)}

  @jax.jit
  def grads(params, x):
    loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
    return (jax.grad(loss(block), argnums=(0, 1))(params, x),
            jax.grad(loss(block.clone(remat=True)), argnums=(0, 1))(params, x))

  plain, remat = grads(params, x)
  assert jax.tree.structure(plain) == jax.tree.structure(remat)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               remat, plain)


def test_feature_dcgh_matches_numpy(np_rng):
  model = build_model(_config(kind="features", bits=4, hidden=[7, 5],
                                 activation="relu", layer_norm=True))
  assert isinstance(model, dm.FeatureDCGH)
  x_img = np_rng.standard_normal((6, 11)).astype(np.float32)
  x_txt = np_rng.standard_normal((6, 3)).astype(np.float32)
  params = _random_params(model, np_rng, x_img, x_txt, train=False)
  assert set(params) == {"image_tower", "text_tower", "image_head", "text_head"}

  def ref(p_tower, p_head, x):
    for i in range(2):
      x = x @ p_tower[f"dense_{i}"]["kernel"] + p_tower[f"dense_{i}"]["bias"]
      mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
      x = (x - mu) / np.sqrt(var + 1e-6) * p_tower[f"ln_{i}"]["scale"] + p_tower[
          f"ln_{i}"]["bias"]
      x = np.maximum(x, 0)
    return np.tanh(x @ p_head["dense"]["kernel"] + p_head["dense"]["bias"])

  (h_img, h_txt), by_name = jax.jit(lambda p, a, b: (  # noqa: E731
      model.apply(p, a, b, train=False),
      model.apply(p, b, method="encode_text")))({"params": params}, x_img, x_txt)
  np.testing.assert_allclose(
      h_img, ref(params["image_tower"], params["image_head"], x_img), atol=1e-5)
  np.testing.assert_allclose(
      h_txt, ref(params["text_tower"], params["text_head"], x_txt), atol=1e-5)
  np.testing.assert_allclose(by_name, h_txt, atol=1e-6)


def test_bad_inputs_raise(np_rng):
  with pytest.raises(ValueError, match="kind"):
    build_model(_config(kind="resnet", bits=8))
  with pytest.raises(ValueError, match="bits"):
    build_model(_config(kind="clip", preset="tiny"))
  with pytest.raises(ValueError, match="unknown CLIPTextConfig fields"):
    build_model(_config(preset="tiny", bits=8, text={"depth": 3}))
  with pytest.raises(ValueError, match="preset"):
    build_model(_config(preset="vit_h14", bits=8))
  with pytest.raises(ValueError, match="dtype"):
    build_model(_config(preset="tiny", bits=8, dtype="int8"))
  with pytest.raises(ValueError, match="multiple of"):
    dm.CLIPVisionConfig(image_size=30, patch_size=8)
  with pytest.raises(ValueError, match="divisible"):
    dm.CLIPTextConfig(width=30, heads=4)
  # The bits come from config.bits when config.model.bits is absent.
  cfg = ml_collections.ConfigDict({"bits": 16, "model": {"preset": "tiny"}})
  assert build_model(cfg).bits == 16
  overridden = build_model(_config(preset="tiny", bits=8, context_length=6,
                                      text={"layers": 1}, text_pooling="eos"))
  assert (overridden.text.context_length, overridden.text.layers,
          overridden.text.pooling) == (6, 1, "eos")
  vision, text = dm.clip_preset("tiny")
  model = dm.DCGH(vision, text, bits=8)
  init = functools.partial(model.init, train=False)
  with pytest.raises(ValueError, match=r"images must be \[n, 32, 32, 3\]"):
    jax.eval_shape(init, jax.random.key(0), jnp.zeros((2, 3, 32, 32)),
                   jnp.zeros((2, 8), jnp.int32))
  with pytest.raises(ValueError, match="tokens must be integer"):
    jax.eval_shape(init, jax.random.key(0), jnp.zeros((2, 32, 32, 3)),
                   jnp.zeros((2, 9), jnp.int32))
  with pytest.raises(ValueError, match="bits"):
    jax.eval_shape(functools.partial(dm.DCGH(vision, text, bits=0).init, train=False),
                   jax.random.key(0), jnp.zeros((2, 32, 32, 3)),
                   jnp.zeros((2, 8), jnp.int32))
