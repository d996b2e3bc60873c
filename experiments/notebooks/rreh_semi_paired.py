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
# # RREH on semi-paired data
#
# RREH (Reconstruction Relations Embedded Hashing) learns binary codes when only a
# fraction `r` of the training items is seen in every modality; the other items are
# seen in one modality only (here: dealt out disjointly over the modalities). This
# notebook, on the data that ships with hashjax (no downloads):
#
# 1. one run in detail on Wikipedia: RREH against CMFH trained on the paired items
#    only and CMFH trained on all pairs (objective, PR curves, precision@R);
# 2. mAP against the paired ratio `r` (mean +- std over seeds), and against the
#    code length;
# 3. mAP against the number of anchors `k`;
# 4. more than two modalities: the six views of UCI multiple features at once.
#
# CPU is enough; a GPU / TPU runtime is used when present. The saved outputs are a
# TINY run (`HASHJAX_NOTEBOOK_TINY=1`): a smoke test whose numbers mean nothing.

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
                       "rreh_semi_paired")
OUT_DIR.mkdir(parents=True, exist_ok=True)
if TINY:
  BITS = 16
  BITS_SWEEP = (16,)   # other code lengths compile anew
  SEEDS = (0, 1)
  N_TRAIN, N_QUERY = 300, 80   # Wikipedia subsample (None: the full split)
  MAIN_RATIO = 0.2             # the detailed run
  PAIRED_RATIOS = (0.2, 0.5)
  # k = 150 = n_p at r = 0.5 reuses the sweep's compiled solver (k is capped at n_p).
  ANCHOR_RATIO, ANCHORS = 0.5, (32, 150)
  ITERATIONS, CMFH_ITERATIONS = 3, 5   # None: the configs' values
  TOP_RS = (10, 50, 100, 200)
  UCI_N_TRAIN, UCI_N_QUERY = 300, 60
  UCI_RATIOS, UCI_MAIN_RATIO = (0.5,), 0.5   # every new shape compiles anew
else:
  BITS = 64
  BITS_SWEEP = (16, 32, 64, 128)
  SEEDS = (0, 1, 2)
  N_TRAIN, N_QUERY = None, None
  MAIN_RATIO = 0.1
  PAIRED_RATIOS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
  ANCHOR_RATIO, ANCHORS = 0.5, (50, 100, 200, 400, 600, 1000)
  ITERATIONS, CMFH_ITERATIONS = None, None
  TOP_RS = (50, 100, 200, 500, 1000, 2000)
  UCI_N_TRAIN, UCI_N_QUERY = None, None
  UCI_RATIOS, UCI_MAIN_RATIO = (0.05, 0.1, 0.2, 0.5, 1.0), 0.1

SUMMARY = {"notebook": "rreh_semi_paired", "tiny": TINY, "python_prefix": sys.prefix,
           "backend": jax.default_backend(), "figures": []}


def show(fig, name):
  """Saves a figure as OUT_DIR/<name>.png and displays it."""
  SUMMARY["figures"].append(plotting.save_figure(fig, OUT_DIR / f"{name}.png"))
  display(fig)


print(f"TINY={TINY}; figures and summary.json go to {OUT_DIR}")

# %% [markdown]
# ## Data and the shared helpers
#
# Wikipedia: query = the 693 test pairs, database = training set = the 2173
# training pairs. `run` deals the semi-paired split of the training items, fits a
# method with `hashjax.experiment.fit_method` (baselines see the paired items only)
# and evaluates every ordered modality pair with
# `hashjax.experiment.evaluate_cross_modal` (mAP@all over Hamming ranking).

# %%
def subsample(split, n_train, n_query, seed=0):
  """A smaller split with train = database (n_train None: unchanged)."""
  if n_train is None:
    return split
  rng = np.random.default_rng(seed)
  pick = lambda d, k: d.subset(np.sort(rng.permutation(d.num_items)[:k]))  # noqa: E731
  train = pick(split.train, n_train)
  return data.RetrievalSplit(train=train, query=pick(split.query, n_query),
                             database=train)


def run(split, method, config, paired_ratio, seed):
  """Semi-paired split -> fit -> (model, encode, mAP of every ordered modality pair)."""
  sp = data.semi_paired_split(split.train.num_items, paired_ratio,
                              split.train.num_modalities, "disjoint", seed)
  paired, unpaired = data.apply_semi_paired(split.train, sp)
  model, encode = experiment.fit_method(method, paired, unpaired, config,
                                        jax.random.key(seed))
  results = experiment.evaluate_cross_modal(split.query, split.database, encode)
  return model, encode, results


def mean_std(values):
  """(mean, std) of a list of mAPs (population std over the seeds)."""
  return float(np.mean(values)), float(np.std(values))


def curves(runs, keys, direction):
  """{key: [mAP of `direction` per seed]} -> ([means], [stds]) over ``keys``."""
  stats = [mean_std([r[direction]["map"] for r in runs[k]]) for k in keys]
  return [m for m, _ in stats], [s for _, s in stats]


def wiki_configs(bits):
  """(RREH config, CMFH config) for Wikipedia at ``bits``."""
  rreh_cfg = load_config("rreh_wikipedia", f"bits={bits}")
  cmfh_cfg = load_config("baseline_wikipedia", f"method=cmfh,bits={bits}")
  if ITERATIONS is not None:
    rreh_cfg.rreh.iterations = ITERATIONS
  if CMFH_ITERATIONS is not None:
    cmfh_cfg.baseline.iterations = CMFH_ITERATIONS
  return rreh_cfg, cmfh_cfg


wiki = subsample(data.load_wikipedia(), N_TRAIN, N_QUERY)
for part in ("train", "query"):
  d = getattr(wiki, part)
  dims = {nm: v.shape[1] for nm, v in zip(d.view_names, d.views)}
  print(f"wikipedia {part}: {d.num_items} items, {dims}, {d.num_classes} classes")
rreh_config, cmfh_config = wiki_configs(BITS)
print("RREH settings:", rreh_config.rreh.to_dict())

# %% [markdown]
# ## 1. One run in detail (paired ratio `MAIN_RATIO`)
#
# RREH uses the paired and the unpaired items; "CMFH, paired only" is trained on the
# same paired items and ignores the rest (the usual semi-paired comparison); "CMFH,
# all pairs" sees every training pair (an upper reference, not a semi-paired method).

# %%
runs = {
    "RREH": ("rreh", rreh_config, MAIN_RATIO),
    "CMFH, paired only": ("cmfh", cmfh_config, MAIN_RATIO),
    "CMFH, all pairs": ("cmfh", cmfh_config, 1.0),
}
models, encoders, detail = {}, {}, {}
for label, (method, config, ratio) in runs.items():
  models[label], encoders[label], detail[label] = run(wiki, method, config, ratio,
                                                      SEEDS[0])
display(Markdown(experiment.format_table(
    {f"{label}, {d}": r for label, res in detail.items() for d, r in res.items()},
    title=f"Wikipedia, {BITS} bits, paired ratio {MAIN_RATIO}, seed {SEEDS[0]}")))
SUMMARY["detail"] = {label: {d: r["map"] for d, r in res.items()}
                     for label, res in detail.items()}

# %%
objective = np.asarray(models["RREH"].objective)
reached = objective[objective >= 0]
SUMMARY["rreh_objective_non_increasing"] = bool(
    np.all(np.diff(reached) <= 1e-5 * abs(reached[0])))
print("objective per iteration:", np.round(reached, 3))
show(plotting.objective_curve(objective, title="RREH objective (Wikipedia)"),
     "rreh_objective")

# %% [markdown]
# PR curves over Hamming radii and precision of the top R items, from one
# `hashjax.metrics.evaluate_retrieval` pass per method and direction.

# %%
rs = [r for r in TOP_RS if r <= wiki.database.num_items]
for a, b in ((0, 1), (1, 0)):
  direction = f"{wiki.query.view_names[a]}->{wiki.query.view_names[b]}"
  pr, top = {}, {}
  for label, encode in encoders.items():
    ev = metrics.evaluate_retrieval(
        encode(wiki.query.views[a], a), encode(wiki.database.views[b], b),
        wiki.query.labels, wiki.database.labels, ks=rs)
    pr[label] = (ev["pr_precision"], ev["pr_recall"])
    top[label] = (rs, [ev[f"p@{r}"] for r in rs])
  tag = direction.replace("->", "_to_")
  show(plotting.pr_curve(pr, title=f"Wikipedia {direction}, {BITS} bits"), f"pr_{tag}")
  show(plotting.precision_at_topR_curve(top, title=f"Wikipedia {direction}"),
       f"precision_at_r_{tag}")

# %% [markdown]
# ## 2. mAP against the paired ratio
#
# Every ratio and seed gets its own split, anchors and initialisation. CMFH is
# trained on the paired items only, so the gap to RREH is what the unpaired items
# bring. At `r = 1` there are no unpaired items.

# %%
sweep = {}
for ratio in PAIRED_RATIOS:
  for seed in SEEDS:
    for method, config in (("rreh", rreh_config), ("cmfh", cmfh_config)):
      sweep.setdefault((method, ratio), []).append(
          run(wiki, method, config, ratio, seed)[2])

ratio_curves = {
    f"{label} {d}": curves(sweep, [(method, r) for r in PAIRED_RATIOS], d)
    for method, label in (("rreh", "RREH"), ("cmfh", "CMFH, paired only"))
    for d in ("image->text", "text->image")}
show(plotting.map_vs(PAIRED_RATIOS, ratio_curves, "paired ratio r", logx=True,
                     title=f"Wikipedia, {BITS} bits, {len(SEEDS)} seeds"),
     "map_vs_paired_ratio")
rows = ["| curve | " + " | ".join(f"r={r:g}" for r in PAIRED_RATIOS) + " |",
        "|---" * (len(PAIRED_RATIOS) + 1) + "|"]
for label, (means, stds) in ratio_curves.items():
  rows.append(f"| {label} | " + " | ".join(
      f"{m:.3f} +- {s:.3f}" for m, s in zip(means, stds)) + " |")
display(Markdown("\n".join(rows)))
SUMMARY["paired_ratio_sweep"] = {
    label: {"x": list(PAIRED_RATIOS), "mean": m, "std": s}
    for label, (m, s) in ratio_curves.items()}

# %% [markdown]
# ## 2b. mAP against the code length
#
# Same protocol at paired ratio `MAIN_RATIO`; every code length compiles its own
# solver (bits set array shapes).

# %%
bits_runs = {}
for bits in BITS_SWEEP:
  configs = dict(zip(("rreh", "cmfh"), wiki_configs(bits)))
  for seed in SEEDS:
    for method, config in configs.items():
      bits_runs.setdefault((method, bits), []).append(
          run(wiki, method, config, MAIN_RATIO, seed)[2])
bits_curves = {
    f"{label} {d}": curves(bits_runs, [(method, b) for b in BITS_SWEEP], d)
    for method, label in (("rreh", "RREH"), ("cmfh", "CMFH, paired only"))
    for d in ("image->text", "text->image")}
show(plotting.map_vs(BITS_SWEEP, bits_curves, "bits", logx=True,
                     title=f"Wikipedia, paired ratio {MAIN_RATIO}, {len(SEEDS)} seeds"),
     "map_vs_bits")
SUMMARY["bits_sweep"] = {label: {"x": list(BITS_SWEEP), "mean": m, "std": s}
                         for label, (m, s) in bits_curves.items()}

# %% [markdown]
# ## 3. mAP against the number of anchors
#
# Anchors are drawn from the paired items, so `k` is capped at the number of paired
# items `n_p`; the sweep runs at paired ratio `ANCHOR_RATIO`.

# %%
n_p = max(1, round(ANCHOR_RATIO * wiki.train.num_items))
anchor_runs = {}
for k in ANCHORS:
  config = rreh_config.copy_and_resolve_references()
  config.rreh.num_anchors = k
  anchor_runs[k] = [run(wiki, "rreh", config, ANCHOR_RATIO, seed)[2] for seed in SEEDS]
anchor_curves = {f"RREH {d}": curves(anchor_runs, ANCHORS, d)
                 for d in ("image->text", "text->image")}
capped = [k for k in ANCHORS if k > n_p]
print(f"n_p = {n_p} paired items" + (f"; k = {capped} are capped at n_p" if capped
                                     else ""))
show(plotting.map_vs(ANCHORS, anchor_curves, "anchors k", logx=True,
                     title=f"RREH, paired ratio {ANCHOR_RATIO}, {BITS} bits"),
     "map_vs_anchors")
SUMMARY["anchor_sweep"] = {label: {"x": list(ANCHORS), "mean": m, "std": s}
                           for label, (m, s) in anchor_curves.items()}

# %% [markdown]
# ## 4. More than two modalities: UCI multiple features (M = 6)
#
# 2000 handwritten digits in six views (fac, fou, kar, mor, pix, zer); 400 seeded
# queries, database = training = the other 1600. With `M = 6`, the unpaired items
# are dealt out over six modalities and RREH learns six hash functions with one
# shared latent space. Two questions: how good is retrieval between every ordered
# pair of views, and does training on all six views help a given pair (fac -> pix)
# compared with training on that pair alone?

# %%
uci = subsample(data.get_retrieval_split(dict(name="uci_mfeat", num_query=400)),
                UCI_N_TRAIN, UCI_N_QUERY)
uci_two = data.RetrievalSplit(*(d.select_views(["fac", "pix"]) for d in uci))
uci_config = load_config("rreh_uci", f"bits={BITS}")
if ITERATIONS is not None:
  uci_config.rreh.iterations = ITERATIONS
print("views:", uci.train.view_names, "| train", uci.train.num_items,
      "| query", uci.query.num_items)

uci_runs = {}
for ratio in UCI_RATIOS:
  for seed in SEEDS:
    uci_runs.setdefault(("all", ratio), []).append(
        run(uci, "rreh", uci_config, ratio, seed)[2])
    uci_runs.setdefault(("two", ratio), []).append(
        run(uci_two, "rreh", uci_config, ratio, seed)[2])

six = uci_runs[("all", UCI_MAIN_RATIO)][0]
print(f"{len(six)} ordered pairs evaluated with M = {uci.train.num_modalities}")
names = uci.train.view_names
matrix = np.full((len(names), len(names)), np.nan)
for i, a in enumerate(names):
  for j, b in enumerate(names):
    if i != j:
      matrix[i, j] = six[f"{a}->{b}"]["map"]
show(plotting.map_matrix(matrix, names, title=(
    f"UCI, RREH on six views, r={UCI_MAIN_RATIO}, {BITS} bits")), "uci_map_matrix")

uci_curves = {
    "fac->pix, trained on fac+pix": curves(uci_runs, [("two", r) for r in UCI_RATIOS],
                                           "fac->pix"),
    "fac->pix, trained on all six": curves(uci_runs, [("all", r) for r in UCI_RATIOS],
                                           "fac->pix")}
stats = [mean_std([np.mean([v["map"] for v in r.values()])
                   for r in uci_runs[("all", ratio)]]) for ratio in UCI_RATIOS]
uci_curves["mean of the 30 pairs, six views"] = ([m for m, _ in stats],
                                                 [s for _, s in stats])
show(plotting.map_vs(UCI_RATIOS, uci_curves, "paired ratio r", logx=True,
                     title=f"UCI multiple features, {BITS} bits"),
     "uci_map_vs_paired_ratio")
SUMMARY["uci"] = {
    "num_pairs": len(six),
    "map_matrix": {f"{a}->{b}": matrix[i, j] for i, a in enumerate(names)
                   for j, b in enumerate(names) if i != j},
    "sweep": {label: {"x": list(UCI_RATIOS), "mean": m, "std": s}
              for label, (m, s) in uci_curves.items()}}


# %%
with open(OUT_DIR / "summary.json", "w") as f:
  json.dump(SUMMARY, f, indent=2)
print(json.dumps({k: v for k, v in SUMMARY.items() if k != "figures"}, indent=1))
print(f"{len(SUMMARY['figures'])} figures in {OUT_DIR}")
