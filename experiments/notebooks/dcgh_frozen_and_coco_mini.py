# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DCGH: frozen features and the image + text pipeline
#
# DCGH (Deep Class-Guided Hashing) trains two towers with tanh hash heads under
# proxy, pairwise and variance losses. This notebook:
#
# 1. the frozen-feature variant (MLP towers on fixed features) on Wikipedia and on
#    two views of UCI multiple features, both shipped with hashjax;
# 2. the full image + caption path (JPEG decoding, CLIP preprocessing, a BPE
#    tokenizer trained on the captions, CLIP-architecture towers) on COCO-MINI: the
#    24-image fixture shipped in the package (`hashjax.data.coco_mini_root()`), or
#    the full COCO-MINI folder (`COCO_ROOT`). Nothing is downloaded.
#
# Each run selects its model on a validation split held out of training and
# reports query mAP@all; training curves come from the run's `metrics.jsonl`, PR
# curves from the codes of the selected checkpoint. COCO-MINI is far too small for
# meaningful mAP: it checks the pipeline end to end. The saved outputs are a TINY
# run (`HASHJAX_NOTEBOOK_TINY=1`): a smoke test whose numbers mean nothing.

# %% [markdown]
# **Set-up.** In a clone with hashjax installed there is nothing to do. In Colab
# (CPU works; a GPU / TPU runtime is used automatically) give the source first, then
# Runtime -> Run all: either set `REPO_URL` below to a git URL of hashjax, or upload a
# zip / tar.gz of the repository (e.g. GitHub's "Download ZIP") to `/content` in the
# Files pane. The cell unpacks or clones it to `/content/hashjax` and installs it
# with pip (its dependencies come from PyPI).

# %%
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO_URL = ""  # e.g. "https://github.com/<you>/hashjax.git"; "" to use an archive
ARCHIVE = ""   # a repository .zip / .tar.gz; "": the newest hashjax*.zip in WORK_DIR
WORK_DIR = pathlib.Path("/content" if "google.colab" in sys.modules else ".").resolve()
NO_INSTALL = os.environ.get("HASHJAX_NOTEBOOK_NO_INSTALL") == "1"   # the headless tests


class SetupNeeded(Exception):
  """What to do before the notebook can run; shown as its message (no traceback)."""

  def _render_traceback_(self):
    return ["SET-UP NEEDED: " + str(self)]


def repo_root(start):
  """The hashjax checkout (configs/ and hashjax/) at or above ``start``, or None."""
  start = pathlib.Path(start).resolve()
  for d in (start, *start.parents):
    if (d / "configs").is_dir() and (d / "hashjax" / "__init__.py").is_file():
      return d
  return None


def find_archive(work_dir):
  """The newest hashjax*.zip / .tar.gz / .tgz in ``work_dir``, or None."""
  found = [p for pattern in ("hashjax*.zip", "hashjax*.tar.gz", "hashjax*.tgz")
           for p in pathlib.Path(work_dir).glob(pattern)]
  return max(found, key=lambda p: p.stat().st_mtime) if found else None


def unpack(archive, dest):
  """Unpacks a repository archive to ``dest`` (its top folder, if any, dropped)."""
  archive, dest = pathlib.Path(archive), pathlib.Path(dest)
  if not archive.is_file():
    raise SetupNeeded(f"ARCHIVE = {str(archive)!r} is not a file.")
  with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
    try:
      shutil.unpack_archive(archive, tmp)
    except (shutil.ReadError, ValueError) as e:
      raise SetupNeeded(f"cannot unpack {archive}: {e}") from None
    root = next((r for r in (repo_root(p) for p in pathlib.Path(tmp).glob("*/"))
                 if r is not None), repo_root(tmp))
    if root is None:
      raise SetupNeeded(f"{archive} holds no hashjax repository (configs/ + hashjax/).")
    shutil.move(str(root), dest)
  return dest


def get_source(work_dir):
  """A hashjax checkout: found, cloned from REPO_URL or unpacked from an archive."""
  dest = pathlib.Path(work_dir) / "hashjax"
  root = repo_root(pathlib.Path.cwd()) or repo_root(dest)
  if root is not None:
    return root
  if REPO_URL:
    run = subprocess.run(["git", "clone", "--depth=1", REPO_URL, str(dest)],
                         capture_output=True, text=True)
    if run.returncode != 0:
      raise SetupNeeded(f"git clone {REPO_URL} failed:\n{run.stderr.strip()}")
    return dest
  archive = ARCHIVE or find_archive(work_dir)
  if archive:
    return unpack(archive, dest)
  raise SetupNeeded(
      "no hashjax source. Set REPO_URL in this cell to a git URL of hashjax, or upload "
      f"a zip / tar.gz of the repository to {work_dir} (name it hashjax*.zip or set "
      "ARCHIVE), then run the notebook again.")


try:
  import hashjax
  REPO_ROOT = (repo_root(pathlib.Path.cwd())
               or repo_root(pathlib.Path(hashjax.__file__).parent))
except ImportError:
  hashjax, REPO_ROOT = None, None
if hashjax is not None and REPO_ROOT is not None:
  print(f"hashjax is importable ({hashjax.__file__}): nothing to install.")
else:
  REPO_ROOT = REPO_ROOT or get_source(WORK_DIR)   # configs/ live in the repository
  if hashjax is None:
    if NO_INSTALL:
      raise SetupNeeded("HASHJAX_NOTEBOOK_NO_INSTALL=1 but hashjax is not importable.")
    print(f"installing hashjax from {REPO_ROOT} (a few minutes in a fresh runtime)")
    loaded = {m: getattr(sys.modules[m], "__version__", None)
              for m in ("numpy", "jax", "jaxlib") if m in sys.modules}
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                          str(REPO_ROOT)], capture_output=True, text=True)
    if pip.returncode != 0:
      raise SetupNeeded(f"pip install -e {REPO_ROOT} failed:\n{pip.stderr[-2000:]}")
    import importlib.metadata
    changed = {m: (v, importlib.metadata.version(m)) for m, v in loaded.items()
               if importlib.metadata.version(m) != v}
    if changed:   # this session still holds the old modules
      raise SetupNeeded(f"pip replaced {changed} (old, new), which this session had "
                        "already imported: Runtime -> Restart session, then Run all "
                        "again (the installation is kept).")
    sys.path.insert(0, str(REPO_ROOT))   # an editable install is seen after a restart
  import hashjax
print("repository:", REPO_ROOT)

# %%
# %matplotlib inline
import json

import jax
from IPython.display import display

from hashjax import data, metrics, plotting
from hashjax.configs_io import load_config_file


def load_config(name, arg=None):
  """configs/<name>.py of the repository -> get_config(arg), as --config=file:arg."""
  return load_config_file(str(REPO_ROOT / "configs" / f"{name}.py"), arg)


print(f"hashjax {hashjax.__file__}\npython {sys.executable}")
print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
      f"devices {jax.devices()}")

# %%
# Parameters. TINY (HASHJAX_NOTEBOOK_TINY=1, as the tests and the committed outputs run)
# shrinks every setting to a smoke run whose numbers mean nothing; the full settings
# are the experiment. Set TINY = True here for a quick look in Colab.
TINY = os.environ.get("HASHJAX_NOTEBOOK_TINY") == "1"
OUT_DIR = pathlib.Path(os.environ.get("HASHJAX_NOTEBOOK_OUT") or
                       pathlib.Path(tempfile.gettempdir()) / "hashjax_notebooks" /
                       "dcgh_frozen_and_coco_mini")
OUT_DIR.mkdir(parents=True, exist_ok=True)
if TINY:
  TINY_EPOCHS, TINY_BATCH = 2, 256
  WIKI_ARG, UCI_ARG = "runlocal,bits=16", "runlocal,bits=16"
  RUN_UCI = False   # the same code path as Wikipedia; saves its compilations
  COCO_ARG = "runlocal"
else:
  WIKI_ARG, UCI_ARG = "bits=64", "bits=64"
  RUN_UCI = True
  COCO_ARG = ""   # e.g. "num_query=30,num_val=20" for the full COCO-MINI
RESUME = False  # True: continue runs found in OUT_DIR instead of starting afresh
# A COCO-MINI folder (annotations/, train2017/, val2017/); None: the packaged fixture.
COCO_ROOT = None

SUMMARY = {"notebook": "dcgh_frozen_and_coco_mini", "tiny": TINY,
           "python_prefix": sys.prefix, "backend": jax.default_backend(), "figures": []}


def show(fig, name):
  """Saves a figure as OUT_DIR/<name>.png and displays it."""
  SUMMARY["figures"].append(plotting.save_figure(fig, OUT_DIR / f"{name}.png"))
  display(fig)


print(f"TINY={TINY}; figures and summary.json go to {OUT_DIR}")


# %% [markdown]
# DCGH helpers: `shrink` (TINY: a few steps of a tiny model), `train_dcgh` (trains
# with `hashjax.dcgh.train.train_and_evaluate`, plots the run's `metrics.jsonl`),
# `show_pr` (codes of the selected checkpoint through `hashjax.dcgh.export`, then
# `hashjax.metrics.evaluate_retrieval`) and `report`.

# %%
from hashjax.dcgh import export as dcgh_export
from hashjax.dcgh import train as dcgh_train


def shrink(config):
  """TINY: a few steps of a tiny model; batches a multiple of the device count."""
  if TINY:
    config.num_epochs = TINY_EPOCHS
    config.eval_every_epochs = 1
    config.log_every_steps = 1
    config.checkpoint.every_steps = 10**6   # only the best-by-validation saves
    if config.model.kind == "features":
      config.input.batch_size = TINY_BATCH
      config.model.hidden = (32,)
    else:   # one transformer layer per tower: compiling dominates a tiny run
      config.model.vision = {**config.model.get("vision", {}), "layers": 1}
      config.model.text = {**config.model.get("text", {}), "layers": 1}
  n_dev = jax.device_count()
  for key in ("batch_size", "eval_batch_size"):
    config.input[key] = -(-int(config.input[key]) // n_dev) * n_dev
  config.progress_bar = not TINY
  return config


def read_curves(workdir):
  """metrics.jsonl -> {name: (steps, values)} for plotting.training_curves."""
  with open(pathlib.Path(workdir) / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f if line.strip()]
  train = [r for r in rows if r["kind"] == "train"]
  evals = [r for r in rows if r["kind"] == "eval"]
  out = {"training loss": ([r["step"] for r in train], [r["loss"] for r in train])}
  for key, label in (("val/mean_map", "validation mAP (mean of both directions)"),
                     ("query/i2t_map", "query mAP image->text"),
                     ("query/t2i_map", "query mAP text->image")):
    points = [(r["step"], r[key]) for r in evals if key in r]
    if points:
      out[label] = ([s for s, _ in points], [v for _, v in points])
  return out


def train_dcgh(config, name):
  """Trains in OUT_DIR/<name> (afresh unless RESUME), shows the training curves."""
  workdir = OUT_DIR / name
  if workdir.exists() and not RESUME:
    shutil.rmtree(workdir)
  result = dcgh_train.train_and_evaluate(config, str(workdir))
  show(plotting.training_curves(read_curves(workdir), title=f"DCGH, {name}"),
       f"{name}_training")
  return result, workdir


def show_pr(config, workdir, name):
  """PR curves of image->text and text->image on the query set; their mAP@all."""
  codes = {(part, m): dcgh_export.encode_split(config, str(workdir), part, m)
           for part in ("query", "database") for m in ("image", "text")}
  pr, maps = {}, {}
  for d, q, db in (("i2t", "image", "text"), ("t2i", "text", "image")):
    query, database = codes[("query", q)], codes[("database", db)]
    ev = metrics.evaluate_retrieval(query["codes"], database["codes"], query["labels"],
                                    database["labels"])
    pr[f"{q}->{db}"] = (ev["pr_precision"], ev["pr_recall"])
    maps[d] = ev["map"]
  show(plotting.pr_curve(pr, title=f"DCGH, {name}, {int(config.bits)} bits"),
       f"{name}_pr")
  return maps


def report(result, name, pr_maps):
  """Prints the selected checkpoint's numbers and records them in SUMMARY[name]."""
  details, res = result["details"], result["results"]   # results.json's layout
  sel = details["selected"]
  query = {"i2t_map": res["image->text"]["map"], "t2i_map": res["text->image"]["map"]}
  print(f"{name}: selected step {sel['step']} (epoch {sel['epoch']}) on validation "
        f"mAP {sel['validation']['mean_map']:.4f}")
  print("query mAP@all: i2t {i2t_map:.4f}, t2i {t2i_map:.4f}".format(**query))
  SUMMARY[name] = {"selected_step": sel["step"], "query": query,
                   "validation": sel["validation"], "pr_maps": pr_maps,
                   "total_steps": details["total_steps"],
                   "train_seconds": result["train_seconds"]}

# %% [markdown]
# ## 1. Frozen features: Wikipedia
#
# 128-d SIFT bag-of-words images and 10-d LDA texts; query = 693 test pairs,
# database = 2173 training pairs, 217 of which are held out as validation queries.

# %%
wiki_config = shrink(load_config("dcgh_wikipedia_features", WIKI_ARG))
wiki_result, wiki_dir = train_dcgh(wiki_config, "wikipedia")
report(wiki_result, "wikipedia", show_pr(wiki_config, wiki_dir, "wikipedia"))

# %% [markdown]
# ## 2. Frozen features: UCI multiple features (fac as "image", pix as "text")

# %%
if RUN_UCI:
  uci_config = shrink(load_config("dcgh_uci_features", UCI_ARG))
  uci_result, uci_dir = train_dcgh(uci_config, "uci")
  report(uci_result, "uci", show_pr(uci_config, uci_dir, "uci"))
else:
  print("RUN_UCI = False: skipped (TINY runs only Wikipedia and COCO-MINI).")

# %% [markdown]
# ## 3. Images + captions: COCO-MINI
#
# `configs/dcgh_coco_mini.py`: the official COCO json layout, train2017 and
# val2017 pooled and split as DCGH does (seed 1818: query, validation, train);
# tiny CLIP-architecture towers from scratch and a BPE tokenizer trained on the
# training captions. The default data is the packaged fixture (16 + 8 images, 5
# captions each, 80 category labels); for the full COCO-MINI (159 images) set
# `COCO_ROOT` and `COCO_ARG = "num_query=30,num_val=20"`. For the real MS-COCO /
# MIRFlickr / NUS-WIDE files and CLIP weights see `bring_your_own_data.ipynb`.

# %%
coco_root = pathlib.Path(COCO_ROOT or data.coco_mini_root())
coco = data.load_coco(coco_root, ["train2017", "val2017"])
print(f"{coco.num_items} images, {coco.num_classes} classes; first captions:")
for caps in coco.captions[:3]:
  print("  ", caps[0])

coco_config = load_config("dcgh_coco_mini", COCO_ARG)
coco_config.data.root = str(coco_root)
coco_config = shrink(coco_config)
coco_result, coco_dir = train_dcgh(coco_config, "coco_mini")
report(coco_result, "coco_mini", show_pr(coco_config, coco_dir, "coco_mini"))

# %%
with open(OUT_DIR / "summary.json", "w") as f:
  json.dump(SUMMARY, f, indent=2)
print(json.dumps({k: v for k, v in SUMMARY.items() if k != "figures"}, indent=1))
print(f"{len(SUMMARY['figures'])} figures in {OUT_DIR}")
