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
# # Bring your own data
#
# Point hashjax at the files the cross-modal hashing literature uses and run the
# same pipeline as on the shipped data:
#
# * **(a) images + captions** in the DCGH / DCHMT layout (MIRFlickr-25K, NUS-WIDE,
#   MS-COCO: `index.mat`, `caption.mat` or `caption.txt`, `label.mat`), read by
#   `hashjax.data.load_standard_layout`, trained with DCGH (CLIP-architecture
#   towers; from local CLIP weights if you have them, nothing is downloaded);
# * **(b) precomputed features**: one `.mat` / `.npz` with a matrix per modality and
#   the labels, read by `hashjax.data.load_feature_file`, hashed with RREH on a
#   semi-paired split and compared with CMFH.
#
# Edit the **YOUR DATA** cell below. Where its files do not exist (as before you edit
# it), and always with `HASHJAX_NOTEBOOK_TINY=1` (the tests, the saved outputs), the
# notebook writes a small fixture in the same formats from real data shipped with
# hashjax and runs on that instead.

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
import numpy as np
from IPython.display import Markdown, display

from hashjax import data, experiment, metrics, plotting
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
                       "bring_your_own_data")
OUT_DIR.mkdir(parents=True, exist_ok=True)
if TINY:
  BITS, RREH_ITERATIONS = 16, 3
  TINY_EPOCHS, TINY_BATCH = 2, 256
else:
  BITS, RREH_ITERATIONS = 64, None
RESUME = False  # True: continue a run found in OUT_DIR

SUMMARY = {"notebook": "bring_your_own_data", "tiny": TINY, "python_prefix": sys.prefix,
           "backend": jax.default_backend(), "figures": []}


def show(fig, name):
  """Saves a figure as OUT_DIR/<name>.png and displays it."""
  SUMMARY["figures"].append(plotting.save_figure(fig, OUT_DIR / f"{name}.png"))
  display(fig)


print(f"TINY={TINY}; figures and summary.json go to {OUT_DIR}")

# %%
# ============================ YOUR DATA: edit this cell ============================
# (a) Images + captions in the DCGH / DCHMT layout, in DATA_ROOT:
#     index.mat  key "index"    image paths (char array, one row per item)
#     caption.mat key "caption" MIRFlickr: N x 1 tag rows; COCO: cell array of captions
#     caption.txt               NUS-WIDE only: one line of tags per image
#     label.mat  key "category" N x C multi-hot labels
DATASET = "mirflickr"              # "mirflickr" | "nuswide" | "coco"
DATA_ROOT = "/path/to/mirflickr"   # the folder holding the files above
IMAGE_ROOT = None                  # index paths are relative to it (None: DATA_ROOT)
STRIP_PREFIX = None                # cut from stored absolute paths, e.g. "/home/x/data"
CLIP_PATH = None   # local CLIP ViT-B/32: an HF folder, or an OpenAI ViT-B-32.pt ...
CLIP_VOCAB = None  # ... with a folder holding vocab.json + merges.txt
NUM_QUERY = NUM_TRAIN = NUM_VAL = None  # None: the paper's split (5000 / 10000)

# (b) Precomputed features: one .mat / .npz with a matrix per modality + labels.
FEATURE_FILE = "/path/to/features.mat"
FEATURE_VIEW_KEYS = ("I_tr", "T_tr")     # one key per modality (M >= 2)
FEATURE_VIEW_NAMES = ("image", "text")
FEATURE_LABEL_KEY = "L_tr"               # class ids [n] / [n, 1] or multi-hot [n, C]
FEATURE_LABEL_OFFSET = 1                 # 1 for MATLAB class ids 1..C, else 0
FEATURE_NUM_QUERY = 500
PAIRED_RATIO = 0.1                       # semi-paired protocol for RREH
# ====================================================================================

# %%
# Where the files above do not exist (the placeholders, or in TINY mode), a small
# fixture written in exactly these formats from real data shipped with hashjax takes
# their place: the 24 COCO-MINI images with their captions and labels (standard
# layout, "coco" flavour, with absolute paths of another machine to exercise
# STRIP_PREFIX; tiny towers), and 400 Wikipedia training items as a wikiData.mat-style
# feature file (I_tr / T_tr / L_tr, classes 1..10). So "Run all" works unedited.
import scipy.io


def write_fixture(root):
  """Writes the fixture under ``root``: (layout dir, image root, prefix, .mat file)."""
  root = pathlib.Path(root)
  coco = data.load_coco(data.coco_mini_root(), ["train2017", "val2017"])
  old = "/data/another_machine/coco"
  index = []
  for path in coco.image_paths:
    rel = pathlib.Path(path).parent.name + "/" + pathlib.Path(path).name
    (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, root / "images" / rel)
    index.append(f"{old}/{rel}")
  captions = np.empty(len(coco.captions), object)
  for i, caps in enumerate(coco.captions):
    captions[i] = list(caps)
  layout = root / "coco_layout"
  layout.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(layout / "index.mat", {"index": index})
  scipy.io.savemat(layout / "caption.mat", {"caption": captions})
  scipy.io.savemat(layout / "label.mat", {"category": coco.labels})

  wiki = data.load_wikipedia().train
  keep = np.random.default_rng(0).permutation(wiki.num_items)[:400]
  class_ids = wiki.labels[keep].argmax(1)[:, None] + 1
  scipy.io.savemat(root / "features.mat", {"I_tr": wiki.views[0][keep],
                                           "T_tr": wiki.views[1][keep],
                                           "L_tr": class_ids.astype(np.float64)})
  return layout, root / "images", old, root / "features.mat"


DEMO_IMAGES = TINY or not pathlib.Path(DATA_ROOT).is_dir()
DEMO_FEATURES = TINY or not pathlib.Path(FEATURE_FILE).is_file()
if DEMO_IMAGES or DEMO_FEATURES:
  fixture_root = OUT_DIR / "fixture"
  if fixture_root.exists():
    shutil.rmtree(fixture_root)
  fixture = write_fixture(fixture_root)
  print("fixture written to", fixture_root)
if DEMO_IMAGES:
  print(f"(a) runs on the fixture (DATA_ROOT {DATA_ROOT} not found or TINY).")
  (DATA_ROOT, IMAGE_ROOT, STRIP_PREFIX), DATASET = fixture[:3], "coco"
  CLIP_PATH = CLIP_VOCAB = None
  NUM_QUERY, NUM_TRAIN, NUM_VAL = 4, 14, 4
if DEMO_FEATURES:
  print(f"(b) runs on the fixture (FEATURE_FILE {FEATURE_FILE} not found or TINY).")
  FEATURE_FILE, FEATURE_LABEL_KEY, FEATURE_LABEL_OFFSET = fixture[3], "L_tr", 1
  FEATURE_VIEW_KEYS, FEATURE_VIEW_NAMES = ("I_tr", "T_tr"), ("image", "text")
  FEATURE_NUM_QUERY, PAIRED_RATIO = 80, 0.3


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
# ## (a) Images + captions in the standard layout
#
# Rows keep the file order (the DCGH split, a seeded permutation, depends on it).
# Missing image files raise; fix `IMAGE_ROOT` / `STRIP_PREFIX` or pass
# `missing_images="drop"`.

# %%
items = data.load_standard_layout(DATA_ROOT, dataset=DATASET, image_root=IMAGE_ROOT,
                                  strip_prefix=STRIP_PREFIX)
freq = items.labels.mean(0)
print(f"{items.num_items} items, {items.num_classes} classes, "
      f"{items.labels.sum(1).mean():.2f} labels per item")
print("first image:", items.image_paths[0])
print("first captions:", items.captions[0][:2])
print("most frequent classes (column: share of items):",
      {int(c): round(float(freq[c]), 3) for c in np.argsort(-freq)[:5]})
SUMMARY["standard_layout"] = {"num_items": items.num_items,
                              "num_classes": items.num_classes}

# %%
# DCGH on the image + caption items with configs/dcgh_<DATASET>.py, the paper's
# setting (ViT-B/32, split seed 1818); on the fixture "runlocal" (tiny towers from
# scratch, a BPE tokenizer trained on the captions, 2 epochs) and its split sizes.
settings = dict(root=DATA_ROOT, image_root=IMAGE_ROOT, strip_prefix=STRIP_PREFIX,
                clip=CLIP_PATH, vocab=CLIP_VOCAB, bits=BITS)
bad = {k: v for k, v in settings.items()
       if v is not None and ("," in str(v) or "=" in str(v))}
if bad:
  raise ValueError(f"config arguments cannot hold ',' or '=': {bad}; rename them.")
arg = ",".join(f"{k}={v}" for k, v in settings.items() if v not in (None, ""))
byod_config = load_config(f"dcgh_{DATASET}", arg + (",runlocal" if DEMO_IMAGES else ""))
if NUM_QUERY is not None:
  byod_config.data.num_query, byod_config.data.num_train = NUM_QUERY, NUM_TRAIN
  byod_config.validation.num_items = NUM_VAL
print("data:", byod_config.data.to_dict())
byod_config = shrink(byod_config)
byod_result, byod_dir = train_dcgh(byod_config, "dcgh")
report(byod_result, "dcgh", show_pr(byod_config, byod_dir, "dcgh"))

# %% [markdown]
# ## (b) A feature file: RREH on a semi-paired split
#
# `get_retrieval_split` with `name="features"` reads the file with
# `load_feature_file` and deals `FEATURE_NUM_QUERY` seeded queries; the other items
# are the database and the training set. RREH then sees `PAIRED_RATIO` of the
# training items in every modality and the rest in one modality only; CMFH is
# trained on the paired items.

# %%
features = data.get_retrieval_split(dict(
    name="features", path=str(FEATURE_FILE), view_keys=list(FEATURE_VIEW_KEYS),
    view_names=list(FEATURE_VIEW_NAMES), label_key=FEATURE_LABEL_KEY,
    label_offset=FEATURE_LABEL_OFFSET, num_query=FEATURE_NUM_QUERY))
train = features.train
dims = {n: v.shape[1] for n, v in zip(train.view_names, train.views)}
print(f"{train.num_items} training = database items, {features.query.num_items} "
      f"queries; views {dims}")
sp = data.semi_paired_split(train.num_items, PAIRED_RATIO, train.num_modalities,
                            "disjoint", 0)
paired, unpaired = data.apply_semi_paired(train, sp)
print(f"paired {len(sp.paired)}, unpaired per modality {[len(u) for u in sp.unpaired]}")

# RREH / CMFH settings from the Wikipedia configs (validated there); tune on your data.
rreh_config = load_config("rreh_wikipedia", f"bits={BITS}")
if RREH_ITERATIONS is not None:
  rreh_config.rreh.iterations = RREH_ITERATIONS
cmfh_config = load_config("baseline_wikipedia", f"method=cmfh,bits={BITS}")
feature_results, pr = {}, {}
q, db = features.query, features.database
for label, method, config in (("RREH", "rreh", rreh_config),
                              ("CMFH, paired only", "cmfh", cmfh_config)):
  _, encode = experiment.fit_method(method, paired, unpaired, config, jax.random.key(0))
  feature_results[label] = experiment.evaluate_cross_modal(q, db, encode, top_r=100)
  ev = metrics.evaluate_retrieval(encode(q.views[0], 0), encode(db.views[1], 1),
                                  q.labels, db.labels)
  pr[label] = (ev["pr_precision"], ev["pr_recall"])
display(Markdown(experiment.format_table(
    {f"{label}, {d}": r for label, res in feature_results.items()
     for d, r in res.items()},
    title=f"{pathlib.Path(FEATURE_FILE).name}, {BITS} bits, "
          f"paired ratio {PAIRED_RATIO}")))
direction = f"{train.view_names[0]}->{train.view_names[1]}"
show(plotting.pr_curve(pr, title=f"{direction}, {BITS} bits"), "features_pr")
SUMMARY["features"] = {label: {d: r["map"] for d, r in res.items()}
                       for label, res in feature_results.items()}

# %%
with open(OUT_DIR / "summary.json", "w") as f:
  json.dump(SUMMARY, f, indent=2)
print(json.dumps({k: v for k, v in SUMMARY.items() if k != "figures"}, indent=1))
print(f"{len(SUMMARY['figures'])} figures in {OUT_DIR}")
