"""DCGH training-step benchmark: pairs/s, step time and MFU (issue 6 item 3).

The hashjax step (:func:`hashjax.dcgh.train.train_step`: CLIP ViT-B/32 + text
Transformer + hash heads, the DCGH loss, BertAdam-equivalent chain and proxy SGD) on
synthetic data, float32 and bfloat16 compute (float32 parameters), ``jit`` (batch
sharded over all devices) and ``pmap``, through the same compiled programs
:func:`hashjax.dcgh.train.train_and_evaluate` uses. FLOPs per step come from XLA's cost
analysis of the unpartitioned step (forward + backward + optimiser, global batch); MFU
= FLOPs / step time / (peak FLOP/s per device x devices), peaks from the table below by
``jax.devices()[0].device_kind`` (None where the device is not listed, e.g. CPUs).

Optional PyTorch reference (only when ``torch`` is importable): ``transformers``
``CLIPModel`` (ViT-B/32 config, random init, context 32) + tanh hash heads + the DCGH
loss written in torch + ``torch.optim.AdamW`` (lr 1e-5, weight decay 0.2), fp32 and
bf16 autocast, on the same synthetic batch size.

  python experiments/benchmarks/bench_dcgh_step.py                # GPU: ViT-B/32, batch 128
  python experiments/benchmarks/bench_dcgh_step.py --tiny         # CPU smoke: tiny, batch 8

Writes experiments/results/dcgh_bench_step[_tiny].{json,md} and prints both.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import pathlib
import platform
import time

import jax
import ml_collections
import numpy as np

from hashjax.dcgh import train
from hashjax.dcgh.factory import build_model

ROOT = pathlib.Path(__file__).resolve().parents[2]

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

NUM_CLASSES = 80   # MS-COCO


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak FLOP/s of one device of ``device_kind`` (exact name, then prefix match)."""
  if device_kind in PEAK_FLOPS:
    return PEAK_FLOPS[device_kind][dtype]
  for name, peaks in PEAK_FLOPS.items():
    if device_kind.startswith(name):
      return peaks[dtype]
  return None


def synthetic_batch(batch: int, image_size: int, context: int, vocab: int, seed: int = 0
                    ) -> dict[str, np.ndarray]:
  """Random images, tokens ending in EOT (the highest id), multi-hot labels."""
  r = np.random.default_rng(seed)
  tokens = r.integers(1, vocab - 1, size=(batch, context)).astype(np.int32)
  lengths = r.integers(4, context + 1, size=batch)
  for i, n in enumerate(lengths):
    tokens[i, n - 1] = vocab - 1
    tokens[i, n:] = 0
  labels = (r.random((batch, NUM_CLASSES)) < 0.04).astype(np.float32)
  labels[np.arange(batch), r.integers(0, NUM_CLASSES, batch)] = 1.0
  return {"image": r.standard_normal((batch, image_size, image_size, 3)).astype(np.float32),
          "text": tokens, "labels": labels, "mask": np.ones(batch, bool)}


def _config(preset: str, dtype: str, bits: int) -> ml_collections.ConfigDict:
  context = 32 if preset == "vit_b32" else 8
  return ml_collections.ConfigDict({"bits": bits, "model": {
      "kind": "clip", "preset": preset, "dtype": dtype, "context_length": context,
      "dropout": 0.2}})


_OPTIM = dict(tower_lr=1e-5, head_lr=1e-3, warmup=0.1, b1=0.9, b2=0.98, eps=1e-6,
              weight_decay=0.2, max_grad_norm=1.0, proxy_lr=0.02, proxy_momentum=0.9,
              proxy_weight_decay=5e-4)


def bench_jax(preset: str, dtype: str, parallelism: str, batch: int, steps: int,
              warmup: int, bits: int) -> dict:
  """Times ``steps`` DCGH training steps after ``warmup`` (compile included there)."""
  from jax.sharding import NamedSharding  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top

  model = build_model(_config(preset, dtype, bits))
  n_dev = jax.device_count()
  if batch % n_dev:
    raise ValueError(f"batch {batch} not divisible by {n_dev} devices.")
  mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  total_steps = 10_000
  prog = train._programs(  # pylint: disable=protected-access
      model, tuple(sorted(_OPTIM.items())), (0.8, 0.05), total_steps, NUM_CLASSES, bits,
      parallelism, mesh)
  v, t = model.vision, model.text
  host = synthetic_batch(batch, v.image_size, t.context_length, t.vocab_size)
  rng = jax.random.key(0)
  state = prog.init(rng, {k: x[:1] for k, x in host.items()})
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state["params"]))

  # FLOPs of the whole (unpartitioned) step on the global batch.
  # pylint: disable-next=protected-access
  tx, proxy_tx = train._optimizers(tuple(sorted(_OPTIM.items())), total_steps)
  plain = jax.jit(functools.partial(train.train_step, model=model, tx=tx, proxy_tx=proxy_tx,
                                    neg_weight=0.8, pos_weight=0.05))
  cost = plain.lower(jax.eval_shape(lambda s: s, state), host, rng).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")

  batch_sh = NamedSharding(mesh, P("data"))
  if parallelism == "jit":
    dev_batch = {k: jax.device_put(x, batch_sh) for k, x in host.items()}
  else:
    state = jax.device_put(jax.tree_util.tree_map(
        lambda x: np.broadcast_to(x, (n_dev, *x.shape)), jax.device_get(state)), batch_sh)
    dev_batch = jax.device_put({k: x.reshape(n_dev, -1, *x.shape[1:])
                                for k, x in host.items()}, batch_sh)
  t0 = time.perf_counter()
  for _ in range(warmup):
    state, metrics = prog.update(state, dev_batch, rng)
  jax.block_until_ready(metrics["loss"])
  warmup_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = prog.update(state, dev_batch, rng)
  loss = float(np.asarray(jax.device_get(metrics["loss"])).reshape(-1)[0])
  step_s = (time.perf_counter() - t0) / steps
  peak = peak_flops(jax.devices()[0].device_kind, dtype)
  return {"framework": "jax", "preset": preset, "dtype": dtype, "parallelism": parallelism,
          "batch": batch, "devices": n_dev, "steps": steps, "num_params": num_params,
          "first_steps_seconds (compile)": warmup_s, "step_seconds": step_s,
          "pairs_per_second": batch / step_s, "flops_per_step": flops,
          "tflops_per_second": flops / step_s / 1e12,
          "mfu": (flops / step_s / (peak * n_dev)) if peak else None,
          "final_loss": loss}


def bench_torch(preset: str, dtype: str, batch: int, steps: int, warmup: int, bits: int
                ) -> dict:
  """The PyTorch reference step (transformers CLIPModel, DCGH loss, AdamW)."""
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  from transformers import CLIPConfig, CLIPModel  # pylint: disable=g-import-not-at-top

  dev = "cuda" if torch.cuda.is_available() else "cpu"
  if preset == "vit_b32":
    cfg = CLIPConfig(text_config={"max_position_embeddings": 32},
                     vision_config={}, projection_dim=512)
  else:
    cfg = CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=8, eos_token_id=63),
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8),
        projection_dim=16)
  clip = CLIPModel(cfg).to(dev)
  heads = torch.nn.ModuleList([torch.nn.Linear(cfg.projection_dim, bits) for _ in range(2)]
                              ).to(dev)
  proxies = torch.nn.Parameter(torch.tanh(
      torch.randn(NUM_CLASSES, bits, device=dev) * (2.0 / NUM_CLASSES) ** 0.5))
  opt = torch.optim.AdamW([{"params": clip.parameters(), "lr": 1e-5},
                           {"params": heads.parameters(), "lr": 1e-3}],
                          betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
  popt = torch.optim.SGD([proxies], lr=0.02, momentum=0.9, weight_decay=5e-4)
  host = synthetic_batch(batch, cfg.vision_config.image_size,
                         cfg.text_config.max_position_embeddings, cfg.text_config.vocab_size)
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
      total = total + 0.05 * torch.where(pos, F.relu(s - c), torch.zeros_like(c)).sum() / pos.sum()
      total = total + 0.8 * torch.where(negm, F.relu(c), torch.zeros_like(c)).sum() / (
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
    torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
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
  return {"framework": f"torch {torch.__version__}", "preset": preset, "dtype": dtype,
          "parallelism": f"single {dev}", "batch": batch, "devices": 1, "steps": steps,
          "step_seconds": step_s, "pairs_per_second": batch / step_s,
          "final_loss": float(loss)}


def _fmt(x, spec):
  return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def markdown(meta: dict, rows: list[dict]) -> str:
  lines = [
      f"# DCGH training step ({meta['preset']}, batch {meta['batch']})", "",
      f"Command: `{meta['command']}`; device: {meta['device_kind']} x {meta['devices']} "
      f"({meta['platform_name']}, {meta['cpu_count']} CPU cores"
      + (f", load average {meta['load_average'][0]:.1f} at the start"
         if "load_average" in meta else "") + f"), {meta['date']}. "
      f"Mean step time over {meta['steps']} steps after {meta['warmup']} warm-up steps "
      "(compile included there); FLOPs from XLA cost analysis of the unpartitioned step "
      "(forward + backward + optimisers, global batch).", "",
      "| framework | dtype | parallelism | step (ms) | pairs/s | TFLOP/s | MFU | "
      "compile+warm-up (s) |",
      "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['framework']} | {r['dtype']} | {r['parallelism']} | "
        f"{1e3 * r['step_seconds']:.1f} | {r['pairs_per_second']:.1f} | "
        f"{_fmt(r.get('tflops_per_second'), '.3f')} | {_fmt(r.get('mfu'), '.1%')} | "
        f"{_fmt(r.get('first_steps_seconds (compile)'), '.1f')} |")
  return "\n".join(lines) + "\n"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--tiny", action="store_true", help="tiny towers, batch 8 (CPU smoke)")
  ap.add_argument("--batch", type=int, default=None, help="default 128 (tiny: 8)")
  ap.add_argument("--bits", type=int, default=64)
  ap.add_argument("--steps", type=int, default=None, help="timed steps (20; tiny: 3)")
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--dtypes", default="float32,bfloat16")
  ap.add_argument("--parallelism", default="jit,pmap")
  ap.add_argument("--torch", choices=("auto", "yes", "no"), default="auto")
  ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
  args = ap.parse_args()
  preset = "tiny" if args.tiny else "vit_b32"
  batch = args.batch or (8 if args.tiny else 128)
  steps = args.steps or (3 if args.tiny else 20)
  dev = jax.devices()[0]
  meta = {
      "command": "python experiments/benchmarks/bench_dcgh_step.py " + " ".join(
          f"--{k}={v}" if not isinstance(v, bool) else f"--{k}" for k, v in vars(args).items()
          if k != "out" and v not in (None, False)),
      "preset": preset, "batch": batch, "bits": args.bits, "steps": steps,
      "warmup": args.warmup, "device_kind": dev.device_kind, "platform_name": dev.platform,
      "devices": jax.device_count(), "cpu_count": os.cpu_count(),
      "platform": platform.platform(), "python": platform.python_version(),
      "jax": jax.__version__, "numpy": np.__version__, "seeds": [0],
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "load_average": list(os.getloadavg()),
  }
  rows = []
  for dtype in args.dtypes.split(","):
    for par in args.parallelism.split(","):
      r = bench_jax(preset, dtype, par, batch, steps, args.warmup, args.bits)
      rows.append(r)
      print(json.dumps(r), flush=True)
  torch_ok = False
  if args.torch != "no":
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      torch_ok = True
    except ImportError:
      if args.torch == "yes":
        raise
  meta["torch_reference"] = "run" if torch_ok else "skipped (torch not importable)"
  if torch_ok:
    for dtype in args.dtypes.split(","):
      r = bench_torch(preset, dtype, batch, steps, args.warmup, args.bits)
      rows.append(r)
      print(json.dumps(r), flush=True)
  name = "dcgh_bench_step" + ("_tiny" if args.tiny else "")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, name + ".json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=2)
  md = markdown(meta, rows)
  if not torch_ok:
    md += "\nPyTorch reference: skipped (torch not importable).\n"
  with open(os.path.join(args.out, name + ".md"), "w") as f:
    f.write(md)
  print(md)


if __name__ == "__main__":
  main()
