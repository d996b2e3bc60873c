"""COCO-MINI end to end, exactly as the README runs it: train, rerun (resume), encode.

Runs ``python -m hashjax.main --config=configs/dcgh_coco_mini.py --workdir=WORKDIR`` in
a fresh workdir (real JPEGs + captions of the packaged fixture
``hashjax/data/files/coco_mini``, a byte-level BPE tokenizer trained on the training
captions, tiny CLIP-shaped towers from random init, CPU), then the same command again
(it must find the finished checkpoint and only re-report), then a run stopped after 8
steps and restarted (it must resume and reach the same final state as the
uninterrupted run), then encodes the database images with
:func:`hashjax.dcgh.export.encode_split` (what ``python -m hashjax.encode`` calls for
DCGH) and plots the logged curves.

  nice -n 10 python experiments/dcgh_coco_mini.py
  python experiments/dcgh_coco_mini.py --config_arg=root=/data/coco_mini,num_query=30,num_val=20

Writes <out>/dcgh_coco_mini.{json,md} and <out>/plots/dcgh_coco_mini_curves.png
(default /tmp/hashjax-experiments/dcgh_coco_mini; ``--out experiments/results`` for
the committed ones).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import _common

ROOT = pathlib.Path(_common.ROOT)


def _main_cmd(config: str, workdir: str, *extra: str) -> list[str]:
  return [sys.executable, "-m", "hashjax.main", f"--config={config}", f"--workdir={workdir}",
          "--config.progress_bar=False", *extra]


def _run(cmd: list[str]) -> float:
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
  return time.perf_counter() - t0


def _same_checkpoint(a: str, b: str) -> bool:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  trees = []
  for d in (a, b):
    with ocp.CheckpointManager(os.path.join(d, "checkpoints")) as mgr:
      trees.append(mgr.restore(mgr.latest_step(), args=ocp.args.StandardRestore()))
  return all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), *trees)))


def _selected(res: dict) -> dict:
  """The selected model of a results.json (hashjax.results/1): step, epoch, validation
  mAPs and its query mAP@all per direction (this script's JSON keeps them together)."""
  i2t, t2i = (res["results"][d]["map"] for d in ("image->text", "text->image"))
  return dict(res["details"]["selected"],
              query={"i2t_map": i2t, "t2i_map": t2i, "mean_map": (i2t + t2i) / 2})


def main(argv: list[str] | None = None):
  ap = _common.parser("dcgh_coco_mini", __doc__)
  ap.add_argument("--config_arg", default=None, help="arguments after the config's colon")
  args = ap.parse_args(argv)

  from hashjax import plotting  # pylint: disable=g-import-not-at-top
  from hashjax.dcgh import export  # pylint: disable=g-import-not-at-top
  from hashjax.configs_io import load_config_file  # pylint: disable=g-import-not-at-top

  config = "configs/dcgh_coco_mini.py" + (f":{args.config_arg}" if args.config_arg else "")
  tmp = tempfile.mkdtemp(prefix="dcgh_coco_mini_")
  full, part = os.path.join(tmp, "full"), os.path.join(tmp, "part")
  try:
    t_train = _run(_main_cmd(config, full))
    with open(os.path.join(full, "results.json")) as f:
      res = json.load(f)
    t_rerun = _run(_main_cmd(config, full))
    with open(os.path.join(full, "results.json")) as f:
      res_rerun = json.load(f)
    t_stop = _run(_main_cmd(config, part, "--config.stop_after_steps=8"))
    t_resume = _run(_main_cmd(config, part))
    with open(os.path.join(part, "results.json")) as f:
      res_part = json.load(f)
    resumed_equal = _same_checkpoint(full, part)
    cfg = load_config_file(str(ROOT / "configs" / "dcgh_coco_mini.py"), args.config_arg)
    t0 = time.perf_counter()
    codes = export.encode_split(cfg, full, "database", "image")
    t_encode = time.perf_counter() - t0
    with open(os.path.join(full, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  finally:
    shutil.rmtree(tmp, ignore_errors=True)

  train_rows = [r for r in rows if r["kind"] == "train"]
  eval_rows = [r for r in rows if r["kind"] == "eval"]
  curves = {
      "loss": ([r["step"] for r in train_rows], [r["loss"] for r in train_rows]),
      "lr (towers, heads)": ([r["step"] for r in train_rows],
                             [r["lr_head"] for r in train_rows]),
      "validation mean mAP": ([r["step"] for r in eval_rows],
                              [r["val/mean_map"] for r in eval_rows]),
      "query I->T mAP": ([r["step"] for r in eval_rows],
                         [r["query/i2t_map"] for r in eval_rows]),
      "query T->I mAP": ([r["step"] for r in eval_rows],
                         [r["query/t2i_map"] for r in eval_rows]),
  }
  plot = os.path.join(args.out, "plots", "dcgh_coco_mini_curves.png")
  plotting.training_curves(curves, title="DCGH on COCO-MINI (tiny towers, random init)",
                           path=plot)
  sel = _selected(res)
  det = res["details"]
  meta = _common.environment(
      readme_command=f"python -m hashjax.main --config={config} --workdir=WORKDIR",
      config=cfg.to_dict(), seeds=[int(cfg.seed)],
      sizes={"num_train": res["num_train"], "num_validation": det["num_validation"],
             "num_query": res["num_query"], "num_database": res["num_database"],
             "total_steps": det["total_steps"]},
      load_average_at_end=os.getloadavg())
  out = {
      "meta": meta,
      "seconds": {"train_command": t_train, "train_loop": res["train_seconds"],
                  "rerun_finished": t_rerun, "stop_after_8": t_stop, "resume": t_resume,
                  "encode_database_images": t_encode},
      "rerun_same_selected": _selected(res_rerun) == sel,
      "resumed_equals_uninterrupted": {"final_state": resumed_equal,
                                       "selected": _selected(res_part) == sel},
      "encoded": {"split": "database", "modality": "image",
                  "shape": list(codes["codes"].shape)},
      "selected": sel, "best_on_query": det.get("best_on_query"),
      "history": eval_rows, "plot": os.path.relpath(plot, args.out),
  }
  q = sel["query"]
  boq = det.get("best_on_query") or {}
  md = "\n".join([
      "# DCGH on COCO-MINI (end-to-end smoke run)", "",
      f"Command: `{meta['command']}` (wraps `{meta['readme_command']}`); "
      f"{meta['devices']}, {meta['cpu_count']} cores (shared machine, load average "
      f"{meta['load_average_at_end'][0]:.1f} at the end), {meta['date']}.", "",
      "Real JPEGs + captions of the shipped fixture, BPE tokenizer trained on the "
      "training captions, tiny CLIP-shaped towers from **random init** (no CLIP "
      f"weights), {det['total_steps']} steps. Items: {meta['sizes']}. The numbers show "
      "that the pipeline runs; at this size they say nothing about DCGH's accuracy.", "",
      "| quantity | value |", "|---|---|",
      f"| train command wall time (s, incl. start-up and compiles) | {t_train:.1f} |",
      f"| train loop (s) | {res['train_seconds']:.1f} |",
      f"| rerun of the finished run (s) | {t_rerun:.1f} |",
      f"| stop after 8 steps + resume (s) | {t_stop:.1f} + {t_resume:.1f} |",
      f"| resumed final state == uninterrupted | {resumed_equal} |",
      f"| selected (best validation mAP) epoch | {sel['epoch']} |",
      f"| query I->T / T->I mAP@all at the selected epoch | {q['i2t_map']:.4f} / "
      f"{q['t2i_map']:.4f} |",
      f"| best-on-query I->T / T->I (optimistic, over all evaluations) | "
      f"{boq.get('i2t', {}).get('map', float('nan')):.4f} / "
      f"{boq.get('t2i', {}).get('map', float('nan')):.4f} |",
      f"| encode database images (s) | {t_encode:.1f} |", "",
      f"Training curves (from the run's metrics.jsonl): `{out['plot']}`.", ""])
  _common.write_results("dcgh_coco_mini", out, md, args.out)
  print(md)


if __name__ == "__main__":
  main()
