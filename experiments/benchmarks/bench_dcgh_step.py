"""DCGH training step: compile time, step time, memory, FLOPs and MFU, from a config.

The step is hashjax's own (:func:`hashjax.dcgh.train.train_step` through the jitted /
pmapped programs :func:`hashjax.dcgh.train.train_and_evaluate` uses), with the model,
optimiser, loss weights and batch size of a DCGH config (default
``configs/dcgh_mirflickr.py``: CLIP ViT-B/32 + text Transformer, random init, 224 px,
32 tokens, batch 128, 24 classes) on synthetic images, captions and labels.

For each dtype (float32 parameters; ``bfloat16`` = bf16 compute) it reports separately:

* **compile**: ``jit(step).lower(...)`` and ``.compile()`` seconds on the analysis mesh
  (``--analyze-devices``, e.g. an 8-device fake CPU mesh); XLA's ``cost_analysis()``
  FLOPs of the global step (unpartitioned) and per device (partitioned), next to the
  analytic count of both towers' matmuls, forward + backward (:func:`analytic_flops`);
  ``memory_analysis()`` per device (arguments, outputs, temporaries, aliased);
* **steps**: ``--warmup`` untimed then ``--steps`` timed calls of the AOT-compiled step
  on the run mesh (``--run-devices``, default all), compile excluded; the loss must be
  finite and the parameters must change (checked; exit 1 otherwise);
* **memory**: peak resident set size of the process (``ru_maxrss``);
* **MFU** where the device's peak is known, and a projection: the step time and pairs/s
  that 40% MFU would give on one chip of each peak in :data:`PROJECTION_PEAKS`.

  # the paper-scale CPU rehearsal (compile on 8 fake devices, 2 steps on 1 device):
  python experiments/benchmarks/bench_dcgh_step.py --cpu-devices 8 --analyze-devices 8 \\
      --run-devices 1 --steps 2 --warmup 0 --parallelism jit --torch no --name rehearsal
  # a GPU / TPU host (all devices, jit and pmap, fp32 and bf16, torch when importable):
  python experiments/benchmarks/bench_dcgh_step.py
  # smaller: 2 layers per tower, 64 px images, batch 16
  python experiments/benchmarks/bench_dcgh_step.py --layers 2 --image-size 64 --batch 16

Writes ``<out>/<name>.json`` and ``<name>.md`` (default
experiments/benchmarks/results/dcgh_bench_step.*). Bad arguments: one line, exit 2.
This module imports only NumPy at import time (JAX after ``--cpu-devices`` is applied;
``ml_collections`` only to read the config file).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import pathlib
import platform
import resource
import sys
import time
from typing import Any, NamedTuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "configs" / "dcgh_mirflickr.py")

# Dense peak FLOP/s per device (vendor data sheets). float32 on NVIDIA = TF32 tensor
# cores (XLA's default precision for float32 matmuls on these GPUs); bf16 without
# sparsity.
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 494e12},     # SXM
    "NVIDIA H100 PCIe": {"bfloat16": 756e12, "float32": 378e12},
    "NVIDIA H100 NVL": {"bfloat16": 835e12, "float32": 418e12},
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 494e12},
    "NVIDIA A100-SXM4-80GB": {"bfloat16": 312e12, "float32": 156e12},
    "NVIDIA A100-SXM4-40GB": {"bfloat16": 312e12, "float32": 156e12},
    "NVIDIA A100 80GB PCIe": {"bfloat16": 312e12, "float32": 156e12},
    "NVIDIA L4": {"bfloat16": 121e12, "float32": 60e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12},
}

# One chip's dense bf16 peak used by the projection (vendor data sheets).
PROJECTION_PEAKS = {"H100 SXM": 989e12, "H200": 989e12, "TPU v5e": 197e12}
PROJECTION_MFU = 0.40

# Classes per data set (the label files: docs/rreh.md); the labels are synthetic here.
DATASET_CLASSES = {"mirflickr": 24, "nuswide": 21, "coco": 80, "coco_json": 80}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak FLOP/s of one device of ``device_kind`` (exact name, then prefix match)."""
  if device_kind in PEAK_FLOPS:
    return PEAK_FLOPS[device_kind][dtype]
  for name, peaks in PEAK_FLOPS.items():
    if device_kind.startswith(name):
      return peaks[dtype]
  return None


# ----------------------------------------------------------------------------- settings


def load_settings(config_path: str, config_arg: str | None = None) -> dict[str, Any]:
  """The step's settings from a DCGH config file, as plain dicts.

  Returns:
    ``{"model": dict, "bits", "optim": dict, "loss": (neg, pos), "batch",
    "num_classes", "config": "path:arg"}``.
  """
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  c = load_config_file(config_path, config_arg)
  name = c.data.get("name", "")
  if name not in DATASET_CLASSES:
    raise ValueError(f"no class count known for data set {name!r}; expected one of "
                     f"{sorted(DATASET_CLASSES)}.")
  return {"model": c.model.to_dict(), "bits": int(c.bits), "optim": c.optim.to_dict(),
          "loss": (float(c.loss.neg_weight), float(c.loss.pos_weight)),
          "batch": int(c.input.batch_size), "num_classes": DATASET_CLASSES[name],
          "config": config_path + (f":{config_arg}" if config_arg else "")}


def resize(settings: dict[str, Any], *, layers: int | None = None,
           image_size: int | None = None, batch: int | None = None,
           dtype: str | None = None) -> dict[str, Any]:
  """A copy of ``settings`` with fewer layers per tower, smaller images, another batch."""
  s = json.loads(json.dumps(settings))
  m = s["model"]
  if layers:
    m["vision"] = {**(m.get("vision") or {}), "layers": int(layers)}
    m["text"] = {**(m.get("text") or {}), "layers": int(layers)}
  if image_size:
    m["vision"] = {**(m.get("vision") or {}), "image_size": int(image_size)}
  if batch:
    s["batch"] = int(batch)
  if dtype:
    m["dtype"] = dtype
  return s


def model_of(settings: dict[str, Any]):
  from hashjax.dcgh.factory import build_model  # pylint: disable=g-import-not-at-top
  return build_model({"model": settings["model"], "bits": settings["bits"]})


def analytic_flops(vision: Any, text: Any, batch: int, bits: int) -> float:
  """Matmul FLOPs of one training step of both towers: 3 x forward (fwd + 2x bwd).

  Counts ``2 m n k`` per matmul: the patch embedding, per layer the q/k/v/out
  projections, the two attention products (full ``T x T``, as XLA computes them even
  when causal) and the MLP; the final projections and hash heads on the pooled token.
  The conv's input gradient is not needed (images are not parameters), so it counts
  2x forward, not 3x. Layer norms, softmax, loss and optimiser are left out (< 1%).
  """
  def tower(t: int, w: int, mlp: int, layers: int) -> float:
    per_layer = 4 * 2 * t * w * w + 2 * 2 * t * t * w + 2 * 2 * t * w * mlp
    return layers * per_layer

  n_patch = (vision.image_size // vision.patch_size) ** 2
  patch = 2 * n_patch * vision.patch_size ** 2 * 3 * vision.width
  v = tower(n_patch + 1, vision.width, vision.mlp_dim or 4 * vision.width, vision.layers)
  t = tower(text.context_length, text.width, text.mlp_dim or 4 * text.width, text.layers)
  heads = 2 * (vision.width * vision.embed_dim + text.width * text.embed_dim) + 2 * 2 * (
      vision.embed_dim * bits)
  return float(batch * (3 * (v + t + heads) + 2 * patch))


def synthetic_batch(batch: int, image_size: int, context: int, vocab: int,
                    num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Random images, tokens ending in EOT (the highest id), multi-hot labels."""
  r = np.random.default_rng(seed)
  tokens = r.integers(1, vocab - 1, size=(batch, context)).astype(np.int32)
  lengths = r.integers(4, context + 1, size=batch)
  for i, n in enumerate(lengths):
    tokens[i, n - 1] = vocab - 1
    tokens[i, n:] = 0
  labels = (r.random((batch, num_classes)) < 0.04).astype(np.float32)
  labels[np.arange(batch), r.integers(0, num_classes, batch)] = 1.0
  return {"image": r.standard_normal((batch, image_size, image_size, 3)).astype(np.float32),
          "text": tokens, "labels": labels, "mask": np.ones(batch, bool)}


# ----------------------------------------------------------------------------- jax parts


def _mesh(n: int):
  import jax  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  if not 1 <= n <= len(devices):
    raise ValueError(f"asked for {n} devices, {len(devices)} available.")
  return jax.sharding.Mesh(np.asarray(devices[:n]), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))


def _programs(settings: dict[str, Any], model: Any, parallelism: str, mesh: Any):
  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top
  return train._programs(  # pylint: disable=protected-access
      model, tuple(sorted(settings["optim"].items())), tuple(settings["loss"]), 10_000,
      settings["num_classes"], settings["bits"], parallelism, mesh)


def _host_batch(settings: dict[str, Any], model: Any) -> dict[str, np.ndarray]:
  v, t = model.vision, model.text
  return synthetic_batch(settings["batch"], v.image_size, t.context_length, t.vocab_size,
                         settings["num_classes"])


def _abstract_inputs(prog: Any, host: dict[str, np.ndarray], parallelism: str, n_dev: int):
  """Shapes of ``(state, batch, rng)`` as the compiled step takes them."""
  import jax  # pylint: disable=g-import-not-at-top
  rng = jax.random.key(0)
  state = jax.eval_shape(prog.init_raw, rng, {k: x[:1] for k, x in host.items()})
  batch = {k: jax.ShapeDtypeStruct(x.shape, x.dtype) for k, x in host.items()}
  if parallelism == "pmap":
    state = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((n_dev, *a.shape), a.dtype), state)
    batch = {k: jax.ShapeDtypeStruct((n_dev, x.shape[0] // n_dev, *x.shape[1:]), x.dtype)
             for k, x in host.items()}
  return state, batch, rng


def _cost_flops(cost: Any) -> float:
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan"))) if cost else float("nan")


def xla_global_flops(settings: dict[str, Any], model: Any = None,
                     host: dict[str, np.ndarray] | None = None) -> tuple[float, int]:
  """XLA's FLOPs of the whole step on the global batch, and the parameter count.

  The step is lowered unpartitioned (one program, global batch) and not compiled, so
  this is cheap even at full size.
  """
  import jax  # pylint: disable=g-import-not-at-top

  from hashjax.dcgh import train  # pylint: disable=g-import-not-at-top

  model = model if model is not None else model_of(settings)
  host = host if host is not None else _host_batch(settings, model)
  tx, proxy_tx = train._optimizers(  # pylint: disable=protected-access
      tuple(sorted(settings["optim"].items())), 10_000)
  init = functools.partial(train.create_state, model=model, tx=tx, proxy_tx=proxy_tx,
                           num_classes=settings["num_classes"], bits=settings["bits"])
  plain = jax.jit(functools.partial(
      train.train_step, model=model, tx=tx, proxy_tx=proxy_tx,
      neg_weight=settings["loss"][0], pos_weight=settings["loss"][1]))
  rng = jax.random.key(0)
  state = jax.eval_shape(init, rng, {k: x[:1] for k, x in host.items()})
  flops = _cost_flops(plain.lower(
      state, {k: jax.ShapeDtypeStruct(x.shape, x.dtype) for k, x in host.items()},
      rng).cost_analysis())
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(
      state["params"]))
  return flops, num_params


class _Compiled(NamedTuple):
  prog: Any        # train._Programs of the mesh
  host: dict       # the synthetic global batch (NumPy)
  compiled: Any    # the AOT-compiled update
  devices: int
  parallelism: str


def compile_step(settings: dict[str, Any], *, parallelism: str, devices: int
                 ) -> tuple[dict[str, Any], _Compiled]:
  """Lowers and compiles the step on ``devices`` devices: times, FLOPs, memory.

  Returns:
    ``(report, compiled)``; ``report`` has ``lower_seconds``, ``compile_seconds``,
    ``xla_flops_global`` (the step unpartitioned, global batch), ``xla_flops_per_device``
    (the partitioned program), ``analytic_flops`` and ``memory_per_device``.
  """
  model = model_of(settings)
  prog = _programs(settings, model, parallelism, _mesh(devices))
  host = _host_batch(settings, model)
  state, batch, rng = _abstract_inputs(prog, host, parallelism, devices)
  t0 = time.perf_counter()
  lowered = prog.update.lower(state, batch, rng)
  lower_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  global_flops, num_params = xla_global_flops(settings, model, host)
  mem = compiled.memory_analysis()
  mem_d = {k: int(getattr(mem, k)) for k in (
      "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
      "alias_size_in_bytes", "generated_code_size_in_bytes") if hasattr(mem, k)}
  report = {"parallelism": parallelism, "devices": devices, "lower_seconds": lower_s,
            "compile_seconds": compile_s, "num_params": num_params,
            "xla_flops_global": global_flops,
            "xla_flops_per_device": _cost_flops(compiled.cost_analysis()),
            "analytic_flops": analytic_flops(model.vision, model.text, settings["batch"],
                                             settings["bits"]),
            "memory_per_device": mem_d}
  return report, _Compiled(prog, host, compiled, devices, parallelism)


def run_steps(c: _Compiled, *, steps: int, warmup: int) -> dict[str, Any]:
  """``warmup`` untimed then ``steps`` timed real steps of a compiled step."""
  import jax  # pylint: disable=g-import-not-at-top

  devices = c.devices
  rng = jax.random.key(0)
  host = c.host
  state = c.prog.init(rng, {k: x[:1] for k, x in host.items()})
  mesh = _mesh(devices)
  batch_sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  if c.parallelism == "jit":
    dev_batch = {k: jax.device_put(x, batch_sh) for k, x in host.items()}
  else:
    state = jax.device_put(jax.tree_util.tree_map(
        lambda x: np.broadcast_to(x, (devices, *x.shape)), jax.device_get(state)), batch_sh)
    dev_batch = jax.device_put({k: x.reshape(devices, -1, *x.shape[1:])
                                for k, x in host.items()}, batch_sh)
  # Host copies (the step donates its state). Step 0 has learning rate 0 (warm-up
  # from 0, as the reference's schedule), so parameters change from the second step.
  probe = lambda st: [np.array(x, np.float32) for x in  # noqa: E731
                      jax.tree_util.tree_leaves(jax.device_get(st["params"]))]
  before = probe(state)
  for _ in range(warmup):
    state, metrics = c.compiled(state, dev_batch, rng)
    jax.block_until_ready(metrics["loss"])
  times, losses = [], []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = c.compiled(state, dev_batch, rng)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - t0)
    losses.append(float(np.asarray(jax.device_get(metrics["loss"])).reshape(-1)[0]))
  after = probe(state)
  batch = next(iter(host.values())).shape[0]
  return {"parallelism": c.parallelism, "devices": devices, "warmup": warmup,
          "steps": steps, "step_seconds_each": times, "step_seconds": float(np.mean(times)),
          "pairs_per_second": batch / float(np.mean(times)), "losses": losses,
          "finite_loss": bool(np.all(np.isfinite(losses))),
          "params_changed": any(bool(np.any(a != b)) for a, b in zip(before, after)),
          "max_param_change": max(float(np.max(np.abs(a - b))) for a, b in
                                  zip(before, after)),
          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def projection(flops: float, batch: int) -> list[dict[str, Any]]:
  """Step time and pairs/s at :data:`PROJECTION_MFU` of each projection peak (1 chip)."""
  out = []
  for name, peak in PROJECTION_PEAKS.items():
    step_s = flops / (PROJECTION_MFU * peak)
    out.append({"chip": name, "peak_bf16_flops": peak, "mfu": PROJECTION_MFU,
                "step_seconds": step_s, "pairs_per_second": batch / step_s})
  return out


# ----------------------------------------------------------------------------- torch


def bench_torch(settings: dict[str, Any], dtype: str, steps: int, warmup: int) -> dict:
  """The PyTorch reference step: transformers ``CLIPModel`` of the same sizes (random
  init), tanh hash heads, the DCGH loss written in torch, AdamW at the config's lrs."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  from transformers import CLIPConfig, CLIPModel  # pylint: disable=g-import-not-at-top

  dev = "cuda" if torch.cuda.is_available() else "cpu"
  # float32 matmuls on TF32 tensor cores, as XLA does by default on these GPUs, so that
  # both frameworks run the same arithmetic (torch's default is full float32).
  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  model = model_of(settings)
  v, t = model.vision, model.text
  bits, num_classes, batch = settings["bits"], settings["num_classes"], settings["batch"]
  o = settings["optim"]
  neg_w, pos_w = settings["loss"]
  cfg = CLIPConfig(
      text_config=dict(vocab_size=t.vocab_size, hidden_size=t.width,
                       intermediate_size=t.mlp_dim or 4 * t.width,
                       num_hidden_layers=t.layers, num_attention_heads=t.heads,
                       max_position_embeddings=t.context_length,
                       eos_token_id=t.vocab_size - 1, hidden_act="quick_gelu"),
      vision_config=dict(hidden_size=v.width, intermediate_size=v.mlp_dim or 4 * v.width,
                         num_hidden_layers=v.layers, num_attention_heads=v.heads,
                         image_size=v.image_size, patch_size=v.patch_size,
                         hidden_act="quick_gelu"),
      projection_dim=v.embed_dim)
  clip = CLIPModel(cfg).to(dev)
  heads = torch.nn.ModuleList([torch.nn.Linear(cfg.projection_dim, bits) for _ in range(2)]
                              ).to(dev)
  proxies = torch.nn.Parameter(torch.tanh(
      torch.randn(num_classes, bits, device=dev) * (2.0 / num_classes) ** 0.5))
  opt = torch.optim.AdamW([{"params": clip.parameters(), "lr": o["tower_lr"]},
                           {"params": heads.parameters(), "lr": o["head_lr"]}],
                          betas=(o["b1"], o["b2"]), eps=o["eps"],
                          weight_decay=o["weight_decay"])
  popt = torch.optim.SGD([proxies], lr=o["proxy_lr"], momentum=o["proxy_momentum"],
                         weight_decay=o["proxy_weight_decay"])
  host = synthetic_batch(batch, v.image_size, t.context_length, t.vocab_size, num_classes)
  images = torch.from_numpy(host["image"]).permute(0, 3, 1, 2).contiguous().to(dev)
  tokens = torch.from_numpy(host["text"]).long().to(dev)
  y = torch.from_numpy(host["labels"]).to(dev)

  def cos(a, b):
    return F.normalize(a, dim=1, eps=1e-12) @ F.normalize(b, dim=1, eps=1e-12).T

  def proxy_var(h):
    c = cos(h, proxies)
    pos, neg = y > 0, y == 0
    pd = torch.where(pos, 1 - c, torch.zeros_like(c))
    proxy = pd.sum() / pos.sum() + torch.where(neg, F.relu(c), torch.zeros_like(c)).sum() / (
        neg.sum().clamp(min=1))
    return proxy + pd.var(dim=1, unbiased=True).mean()

  def loss_fn(hi, ht):
    s = cos(y, y)
    pos = s > 0
    multi = y.sum(1) >= 2
    negm = (y @ y.T == 0) & multi[:, None] & multi[None, :]
    total = proxy_var(hi) + proxy_var(ht)
    for a, b in ((hi, hi), (ht, ht), (hi, ht)):
      c = cos(a, b)
      total = total + pos_w * torch.where(pos, F.relu(s - c), torch.zeros_like(c)
                                          ).sum() / pos.sum()
      total = total + neg_w * torch.where(negm, F.relu(c), torch.zeros_like(c)).sum() / (
          negm.sum().clamp(min=1))
    return total

  def step():
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      fi = clip.get_image_features(pixel_values=images)
      ft = clip.get_text_features(input_ids=tokens)
      fi = getattr(fi, "pooler_output", fi)
      ft = getattr(ft, "pooler_output", ft)
      hi = torch.tanh(F.dropout(heads[0](fi), 0.2))
      ht = torch.tanh(F.dropout(heads[1](ft), 0.2))
    loss = loss_fn(hi.float(), ht.float())
    opt.zero_grad(set_to_none=True)
    popt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(clip.parameters(), o["max_grad_norm"])
    opt.step()
    popt.step()
    return loss

  sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
  for _ in range(warmup):
    step()
  sync()
  t0 = time.perf_counter()
  for _ in range(steps):
    loss = step()
  sync()
  step_s = (time.perf_counter() - t0) / steps
  return {"framework": f"torch {torch.__version__}", "dtype": dtype,
          "parallelism": f"single {dev}", "batch": batch, "devices": 1, "steps": steps,
          "step_seconds": step_s, "pairs_per_second": batch / step_s,
          "final_loss": float(loss)}


# ----------------------------------------------------------------------------- report


def _fmt(x, spec):
  return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def markdown(meta: dict, rows: list[dict]) -> str:
  gb = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
  lines = [f"# DCGH training step ({meta['config']}, batch {meta['batch']})", "",
           f"Command: `{meta['command']}`", "",
           f"Device: {meta['device_kind']} x {meta['devices']} ({meta['platform_name']}, "
           f"{meta['cpu_count']} CPU cores), {meta['date']}; load average "
           f"{meta['load_average_before'][0]:.1f} before, "
           f"{meta['load_average_after'][0]:.1f} after (1 min).", ""]
  comp = [r for r in rows if r.get("kind") == "compile"]
  if comp:
    lines += ["## Compile, FLOPs, memory per device", "",
              "| dtype | par. | devices | lower (s) | compile (s) | XLA FLOPs global | "
              "analytic FLOPs | XLA / analytic | XLA FLOPs per device | args (GB) | "
              "temp (GB) | out (GB) | alias (GB) |", "|---" * 13 + "|"]
    for r in comp:
      m = r["memory_per_device"]
      lines.append(
          f"| {r['dtype']} | {r['parallelism']} | {r['devices']} | {r['lower_seconds']:.1f} "
          f"| {r['compile_seconds']:.1f} | {r['xla_flops_global']:.3e} | "
          f"{r['analytic_flops']:.3e} | {r['xla_flops_global'] / r['analytic_flops']:.4f} | "
          f"{r['xla_flops_per_device']:.3e} | {gb(m.get('argument_size_in_bytes', 0))} | "
          f"{gb(m.get('temp_size_in_bytes', 0))} | {gb(m.get('output_size_in_bytes', 0))} | "
          f"{gb(m.get('alias_size_in_bytes', 0))} |")
    lines.append("")
  runs = [r for r in rows if r.get("kind") == "steps"]
  if runs:
    lines += ["## Steps (compile excluded)", "",
              "| framework | dtype | par. | devices | compile (s) | steps | step (s) | "
              "pairs/s | MFU | losses | params changed | peak RSS (GB) |",
              "|---" * 12 + "|"]
    for r in runs:
      lines.append(
          f"| {r.get('framework', 'jax')} | {r['dtype']} | {r['parallelism']} | "
          f"{r['devices']} | {_fmt(r.get('compile_seconds'), '.1f')} | {r['steps']} | "
          f"{r['step_seconds']:.3f} | {r['pairs_per_second']:.2f} | "
          f"{_fmt(r.get('mfu'), '.1%')} | "
          f"{', '.join(f'{x:.4f}' for x in r.get('losses', [r.get('final_loss', 0)]))} | "
          f"{r.get('params_changed', 'n/a')} | "
          f"{_fmt(r.get('peak_rss_bytes', 0) / 2**30, '.2f')} |")
    lines.append("")
  proj = [r for r in rows if r.get("kind") == "projection"]
  if proj:
    lines += [f"## What {PROJECTION_MFU:.0%} MFU would give (one chip, XLA's global "
              "FLOPs per step; peaks: " + ", ".join(
                  f"{k} {v / 1e12:.0f} TFLOP/s bf16 dense" for k, v in
                  PROJECTION_PEAKS.items()) + ")", "",
              "| dtype | FLOPs / step | measured CPU step (s) | chip | step (ms) | "
              "pairs/s |", "|---" * 6 + "|"]
    for r in proj:
      lines.append(f"| {r['dtype']} | {r['flops']:.3e} | {_fmt(r['cpu_step_seconds'], '.1f')} "
                   f"| {r['chip']} | {1e3 * r['step_seconds']:.2f} | "
                   f"{r['pairs_per_second']:.0f} |")
    lines.append("")
  return "\n".join(lines)


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
  if value is not None and value < minimum:
    print(f"bench_dcgh_step: --{name} must be >= {minimum}, got {value}.", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--config", default=DEFAULT_CONFIG, help="DCGH config file")
  ap.add_argument("--config-arg", default=None, help="its argument, e.g. bits=32")
  ap.add_argument("--tiny", action="store_true",
                  help="CPU smoke: the config's runlocal size (tiny CLIP towers, batch 16)")
  ap.add_argument("--batch", type=int, default=None, help="default: the config's")
  ap.add_argument("--layers", type=int, default=None, help="layers per tower (smaller)")
  ap.add_argument("--image-size", type=int, default=None, help="smaller images")
  ap.add_argument("--steps", type=int, default=10,
                  help="timed steps (>= 1; parameters change from the 2nd step)")
  ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 0)")
  ap.add_argument("--dtypes", default="float32,bfloat16")
  ap.add_argument("--parallelism", default="jit,pmap")
  ap.add_argument("--cpu-devices", type=int, default=None,
                  help="fake CPU devices (sets XLA_FLAGS before JAX starts)")
  ap.add_argument("--analyze-devices", type=int, default=None,
                  help="devices of the compile-only analysis (default: run devices)")
  ap.add_argument("--run-devices", type=int, default=None, help="default: all")
  ap.add_argument("--no-run", action="store_true", help="compile and analyse only")
  ap.add_argument("--torch", choices=("auto", "yes", "no"), default="auto")
  ap.add_argument("--out", default=str(ROOT / "experiments" / "benchmarks" / "results"))
  ap.add_argument("--name", default="dcgh_bench_step")
  a = ap.parse_args(argv)
  if a.tiny:
    a.config_arg = ",".join(x for x in (a.config_arg, "runlocal=True") if x)
  _positive("steps", a.steps)
  _positive("warmup", a.warmup, 0)
  for k in ("batch", "layers", "image_size", "cpu_devices", "analyze_devices",
            "run_devices"):
    _positive(k.replace("_", "-"), getattr(a, k))
  for d in a.dtypes.split(","):
    if d not in ("float32", "bfloat16"):
      ap.error(f"--dtypes: float32 and/or bfloat16, got {d!r}")
  for p in a.parallelism.split(","):
    if p not in ("jit", "pmap"):
      ap.error(f"--parallelism: jit and/or pmap, got {p!r}")
  if not os.path.isfile(a.config):
    ap.error(f"--config: no such file {a.config!r}")
  return a


def bench(args: argparse.Namespace, on_row=None) -> tuple[dict, list[dict]]:
  """Runs what ``args`` asks; returns ``(meta, rows)``; ``on_row(meta, rows)`` after each row."""
  if args.cpu_devices:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.cpu_devices}")
  import jax  # pylint: disable=g-import-not-at-top

  base = resize(load_settings(args.config, args.config_arg), layers=args.layers,
                image_size=args.image_size, batch=args.batch)
  n_run = args.run_devices or jax.device_count()
  n_an = args.analyze_devices or n_run
  dev = jax.devices()[0]
  meta = {"command": "python " + " ".join(sys.argv), "config": base["config"],
          "batch": base["batch"], "model": base["model"], "bits": base["bits"],
          "num_classes": base["num_classes"], "device_kind": dev.device_kind,
          "platform_name": dev.platform, "devices": jax.device_count(),
          "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version(), "jax": jax.__version__,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "load_average_before": list(os.getloadavg())}
  rows: list[dict] = []

  def add(row: dict) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)
    if on_row is not None:
      on_row(meta, rows)

  torch_ok = False
  if args.torch != "no" and not args.no_run:
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      torch_ok = True
    except ImportError:
      if args.torch == "yes":
        raise
  # Order: the first parallelism (jit) in every dtype, then the torch reference, then
  # the other parallelisms, so that a run cut short by a time limit keeps the rows
  # that matter most (every row is saved as it comes through ``on_row``).
  pars = args.parallelism.split(",")
  jobs = [("jax", pars[0], d) for d in args.dtypes.split(",")]
  jobs += [("torch", None, d) for d in args.dtypes.split(",") if torch_ok]
  jobs += [("jax", p, d) for p in pars[1:] for d in args.dtypes.split(",")]
  for framework, par, dtype in jobs:
    if framework == "torch":
      r = {"kind": "steps", **bench_torch(base, dtype, args.steps, args.warmup)}
      m = model_of(base)
      peak = (peak_flops(dev.device_kind, dtype) if "cuda" in r["parallelism"]
              else None)
      r["mfu"] = (analytic_flops(m.vision, m.text, base["batch"], base["bits"])
                  / r["step_seconds"] / peak if peak else None)
      r["mfu_flops"] = "analytic"
      add(r)
      continue
    s = resize(base, dtype=dtype)
    report, comp = compile_step(s, parallelism=par, devices=n_an)
    c = {"kind": "compile", "dtype": dtype, **report}
    add(c)
    # XLA's count of the unpartitioned step where it has one (CPU, TPU); GPU backends
    # give none before compiling and leave cuBLAS/cuDNN custom calls out of the
    # compiled count, so MFU falls back to the analytic count there (named per row).
    xla = c["xla_flops_global"]
    use_xla = bool(np.isfinite(xla)) and xla >= 0.5 * c["analytic_flops"]
    flops = xla if use_xla else c["analytic_flops"]
    r = None
    if not args.no_run:
      run_compile_s = c["compile_seconds"]
      if n_run != n_an:
        run_report, comp = compile_step(s, parallelism=par, devices=n_run)
        run_compile_s = run_report["compile_seconds"]
      del report
      r = {"kind": "steps", "framework": "jax", "dtype": dtype,
           "compile_seconds": run_compile_s,
           **run_steps(comp, steps=args.steps, warmup=args.warmup)}
      peak = peak_flops(dev.device_kind, dtype)
      r["mfu"] = flops / r["step_seconds"] / (peak * n_run) if peak else None
      r["mfu_flops"] = "xla" if use_xla else "analytic"
      add(r)
      if not r["finite_loss"] or (args.steps + args.warmup >= 2
                                  and not r["params_changed"]):
        raise RuntimeError(f"the step did not train: {r}")
    del comp
    if par == pars[0]:
      for p in projection(flops, s["batch"]):
        rows.append({"kind": "projection", "dtype": dtype, "flops": flops,
                     "flops_source": "xla" if use_xla else "analytic",
                     "cpu_step_seconds": r["step_seconds"] if r and dev.platform == "cpu"
                     else None, **p})
  meta["torch_reference"] = "run" if torch_ok else "skipped"
  meta["load_average_after"] = list(os.getloadavg())
  return meta, rows


def _save_json(args: argparse.Namespace, meta: dict, rows: list[dict]) -> None:
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, args.name + ".json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  # Saved after every row (``complete: false``) so that a run stopped by a time limit
  # keeps what it measured; rewritten complete at the end.
  meta, rows = bench(args, on_row=lambda m, r: _save_json(args, {**m, "complete": False}, r))
  meta["complete"] = True
  _save_json(args, meta, rows)
  md = markdown(meta, rows)
  with open(os.path.join(args.out, args.name + ".md"), "w") as f:
    f.write(md)
  print(md)


if __name__ == "__main__":
  main()
