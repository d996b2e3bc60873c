"""Generates the Colab-ready notebooks of experiments/notebooks/ (without outputs).

  python experiments/make_notebooks.py            # (re)writes the .ipynb files
  python experiments/make_notebooks.py --check    # exit 1 if a file is out of date

The notebooks are kept as code here so that changes are reviewable; edit this file,
not the .ipynb. Every notebook starts with the same three cells: Colab set-up
(installs hashjax from ``REPO_URL`` when run in Colab), environment (imports,
device report, ``load_config``), parameters (``TINY`` shrinks every setting; the
tests run with ``HASHJAX_NOTEBOOK_TINY=1``). Each ends by writing ``summary.json``
(key numbers, figure paths) to ``OUT_DIR``. Colab opens them on a CPU runtime (no
``accelerator`` in the metadata); JAX uses a GPU / TPU runtime when one is picked.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import textwrap

import nbformat

__all__ = ["NOTEBOOKS", "build", "main", "write_all"]

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent / "notebooks"


def _md(text: str) -> nbformat.NotebookNode:
  return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def _code(text: str) -> nbformat.NotebookNode:
  return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


# ----------------------------------------------------------------------------- shared cells

_SETUP = '''
# Set-up: installs hashjax. In Colab: set REPO_URL to your hashjax repository, pick
# a runtime (CPU works; a GPU / TPU runtime is used automatically), Runtime -> Run all.
# In a clone: `pip install -e .` once, or let this cell do it. The headless tests set
# HASHJAX_NOTEBOOK_NO_INSTALL=1 and install nothing.
import os
import pathlib
import sys

REPO_URL = "https://github.com/OWNER/hashjax"  # <- your fork / the project's URL
COLAB_DIR = "/content/hashjax"
SKIP_INSTALL = os.environ.get("HASHJAX_NOTEBOOK_NO_INSTALL") == "1"
print("Install hashjax anywhere with:")
print(f'  %pip install -q "hashjax @ git+{REPO_URL}"')
print("The notebooks also read configs/ and tests/fixtures/ from a clone, so in Colab")
print(f"this cell clones {REPO_URL} to {COLAB_DIR} and installs it from there.")


def _clone_root():
  # The hashjax checkout holding this notebook (cwd or a parent), or None.
  here = pathlib.Path.cwd().resolve()
  for d in (here, *here.parents):
    if (d / "pyproject.toml").is_file() and (d / "hashjax").is_dir():
      return d
  return None


if SKIP_INSTALL:
  print("HASHJAX_NOTEBOOK_NO_INSTALL=1: nothing installed.")
elif "google.colab" in sys.modules:
  import subprocess
  if not os.path.isdir(COLAB_DIR):
    subprocess.run(["git", "clone", "--depth=1", REPO_URL, COLAB_DIR], check=True)
  %pip install -q -e {COLAB_DIR}
  if COLAB_DIR not in sys.path:  # an editable install is seen after a restart only
    sys.path.insert(0, COLAB_DIR)
  os.chdir(COLAB_DIR)
else:
  ROOT = _clone_root()
  try:
    import hashjax  # noqa: F401
    print("hashjax already installed:", hashjax.__file__)
  except ImportError:
    if ROOT is None:
      raise
    %pip install -q -e {ROOT}
    sys.path.insert(0, str(ROOT))
'''

_ENV = '''
%matplotlib inline
import importlib.util
import json
import pathlib
import tempfile

import jax
import numpy as np
from IPython.display import Markdown, display

import hashjax
from hashjax import metrics, plotting


def find_repo_root() -> pathlib.Path:
  """The hashjax checkout (the folder holding configs/): the cwd or a parent."""
  cwd = pathlib.Path.cwd().resolve()
  for d in (cwd, *cwd.parents):
    if (d / "configs").is_dir() and (d / "hashjax").is_dir():
      return d
  raise FileNotFoundError(
      "Run this notebook from inside a hashjax checkout (the folder with configs/).")


def load_config(name, arg=None):
  """configs/<name>.py -> get_config(arg), as `python -m hashjax.main` does."""
  spec = importlib.util.spec_from_file_location(
      f"config_{name}", REPO_ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def load_rreh_config(name, bits):
  """configs/<name>.py when this checkout has it, else RREH's defaults at ``bits``."""
  if (REPO_ROOT / "configs" / f"{name}.py").is_file():
    return load_config(name, f"bits={bits}")
  import ml_collections
  from hashjax import rreh
  print(f"configs/{name}.py not found: RREH defaults (hashjax.rreh.DEFAULTS).")
  return ml_collections.ConfigDict(dict(
      method="rreh", bits=bits, rreh={**rreh.DEFAULTS, "bits": bits}))


def _hamming_and_relevance(query_codes, db_codes, query_labels, db_labels):
  """Hamming distances int [nq, ndb] and relevance bool [nq, ndb] (a shared label)."""
  q = np.asarray(query_codes, np.float32)
  db = np.asarray(db_codes, np.float32)
  ql, dl = np.asarray(query_labels), np.asarray(db_labels)
  if ql.ndim == 1:   # class ids -> one-hot
    classes = int(max(ql.max(), dl.max())) + 1
    ql, dl = np.eye(classes)[ql], np.eye(classes)[dl]
  dist = np.rint(0.5 * (q.shape[1] - q @ db.T)).astype(np.int64)
  relevant = (ql.astype(np.float32) @ dl.T.astype(np.float32)) > 0
  return dist, relevant


def pr_curve_data(query_codes, db_codes, query_labels, db_labels):
  """(precision [b+1], recall [b+1]) over Hamming radii 0..b (SPEC §3).

  Uses hashjax.metrics.precision_recall_curve when this hashjax has it; otherwise
  the same definition in NumPy: at radius r a query retrieves the items within
  distance r; precision and recall are means over all queries (precision 0 for a
  query that retrieves nothing, recall 0 for one without relevant items).
  """
  if hasattr(metrics, "precision_recall_curve"):
    out = metrics.precision_recall_curve(query_codes, db_codes, query_labels, db_labels)
    if hasattr(out, "precision"):
      return np.asarray(out.precision), np.asarray(out.recall)
    if isinstance(out, dict):
      return np.asarray(out["precision"]), np.asarray(out["recall"])
    return np.asarray(out[0]), np.asarray(out[1])
  dist, relevant = _hamming_and_relevance(query_codes, db_codes, query_labels, db_labels)
  bits = np.asarray(query_codes).shape[1]
  n_rel = relevant.sum(1)
  precision, recall = np.zeros(bits + 1), np.zeros(bits + 1)
  for r in range(bits + 1):
    hit = dist <= r
    n_ret, n_ok = hit.sum(1), (hit & relevant).sum(1)
    precision[r] = np.mean(np.where(n_ret > 0, n_ok / np.maximum(n_ret, 1), 0.0))
    recall[r] = np.mean(np.where(n_rel > 0, n_ok / np.maximum(n_rel, 1), 0.0))
  return precision, recall


def precision_at_rs(query_codes, db_codes, query_labels, db_labels, rs):
  """Precision of the top R items for every R in ``rs`` (one ranking, no recompiles).

  Ranking by Hamming distance, ties by database index, as
  hashjax.metrics.precision_at_k (which compiles once per R).
  """
  dist, relevant = _hamming_and_relevance(query_codes, db_codes, query_labels, db_labels)
  order = np.argsort(dist, axis=1, kind="stable")
  hits = np.cumsum(np.take_along_axis(relevant, order, axis=1), axis=1)
  return [float((hits[:, r - 1] / r).mean()) for r in rs]


REPO_ROOT = find_repo_root()
print(f"hashjax {hashjax.__file__}\\npython {sys.executable}")
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
'''


def _params(name: str, tiny: str, full: str, extra: str = "") -> str:
  """The parameter cell: TINY / full settings, then ``extra`` lines, then helpers."""
  return f'''
# Parameters. HASHJAX_NOTEBOOK_TINY=1 (the test suite) shrinks every setting to a
# smoke test whose numbers mean nothing; the full settings are the experiment.
TINY = os.environ.get("HASHJAX_NOTEBOOK_TINY") == "1"
OUT_DIR = pathlib.Path(os.environ.get("HASHJAX_NOTEBOOK_OUT") or
                       pathlib.Path(tempfile.gettempdir()) / "hashjax_notebooks" /
                       "{name}")
OUT_DIR.mkdir(parents=True, exist_ok=True)

if TINY:
{textwrap.indent(textwrap.dedent(tiny).strip(), "  ")}
else:
{textwrap.indent(textwrap.dedent(full).strip(), "  ")}
{textwrap.dedent(extra).strip()}

SUMMARY = {{"notebook": "{name}", "tiny": TINY, "python_prefix": sys.prefix,
           "backend": jax.default_backend(), "figures": []}}


def show(fig, name):
  """Saves a figure as OUT_DIR/<name>.png and displays it."""
  SUMMARY["figures"].append(plotting.save_figure(fig, OUT_DIR / f"{{name}}.png"))
  display(fig)


print(f"TINY={{TINY}}; figures and summary.json go to {{OUT_DIR}}")
'''


_SUMMARY = '''
with open(OUT_DIR / "summary.json", "w") as f:
  json.dump(SUMMARY, f, indent=2)
print(json.dumps({k: v for k, v in SUMMARY.items() if k != "figures"}, indent=1))
print(f"{len(SUMMARY['figures'])} figures in {OUT_DIR}")
'''


def _notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": [], "toc_visible": True},
  }
  nb.cells = cells
  # Stable ids, so regenerating gives the same file.
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"cell-{i:02d}"
  return nb


# ----------------------------------------------------------------------------- RREH

def rreh_semi_paired() -> nbformat.NotebookNode:
  """RREH on semi-paired data: paired-ratio sweep, anchor sweep, M = 6 on UCI."""
  name = "rreh_semi_paired"
  return _notebook([
      _md('''
      # RREH on semi-paired data

      RREH (Reconstruction Relations Embedded Hashing, SPEC §1) learns binary codes
      when only a fraction `r` of the training items is seen in every modality; the
      other items are seen in one modality only (here: dealt out disjointly over the
      modalities). This notebook, on the data that ships with hashjax (no downloads):

      1. one run in detail on Wikipedia: RREH against CMFH trained on the paired items
         only and CMFH trained on all pairs (objective, PR curves, precision@R);
      2. mAP against the paired ratio `r` (mean +- std over seeds), and against the
         code length;
      3. mAP against the number of anchors `k`;
      4. more than two modalities: the six views of UCI multiple features at once.

      CPU is enough; a GPU / TPU runtime is used when present. Set
      `HASHJAX_NOTEBOOK_TINY=1` for a smoke run (the tests do): its numbers mean nothing.
      '''),
      _code(_SETUP),
      _code(_ENV),
      _code(_params(name, tiny='''
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
          ''', full='''
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
          ''')),
      _md('''
      ## Data and the shared helpers

      Wikipedia: query = the 693 test pairs, database = training set = the 2173
      training pairs. `run` deals the semi-paired split of the training items, fits a
      method with `hashjax.experiment.fit_method` (baselines see the paired items only)
      and evaluates every ordered modality pair with
      `hashjax.experiment.evaluate_cross_modal` (mAP@all over Hamming ranking).
      '''),
      _code('''
      from hashjax import data, experiment, metrics


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
        """Semi-paired split -> fit -> mAP of every ordered modality pair."""
        sp = data.semi_paired_split(split.train.num_items, paired_ratio,
                                    split.train.num_modalities, "disjoint", seed)
        paired, unpaired = data.apply_semi_paired(split.train, sp)
        model, encode = experiment.fit_method(method, paired, unpaired, config,
                                              jax.random.key(seed))
        results = experiment.evaluate_cross_modal(split.query, split.database, encode)
        return model, encode, results


      def mean_std(values):
        v = np.asarray(values, np.float64)
        return float(v.mean()), float(v.std())


      wiki = subsample(data.load_wikipedia(), N_TRAIN, N_QUERY)
      for part in ("train", "query"):
        d = getattr(wiki, part)
        dims = {nm: v.shape[1] for nm, v in zip(d.view_names, d.views)}
        print(f"wikipedia {part}: {d.num_items} items, {dims}, {d.num_classes} classes")

      def wiki_configs(bits):
        """(RREH config, CMFH config) for Wikipedia at ``bits``."""
        rreh_cfg = load_rreh_config("rreh_wikipedia", bits)
        cmfh_cfg = load_config("baseline_wikipedia", f"method=cmfh,bits={bits}")
        if ITERATIONS is not None:
          rreh_cfg.rreh.iterations = ITERATIONS
        if CMFH_ITERATIONS is not None:
          cmfh_cfg.baseline.iterations = CMFH_ITERATIONS
        return rreh_cfg, cmfh_cfg


      rreh_config, cmfh_config = wiki_configs(BITS)
      print("RREH settings:", rreh_config.rreh.to_dict())
      '''),
      _md('''
      ## 1. One run in detail (paired ratio `MAIN_RATIO`)

      RREH uses the paired and the unpaired items; "CMFH, paired only" is trained on the
      same paired items and ignores the rest (the usual semi-paired comparison); "CMFH,
      all pairs" sees every training pair (an upper reference, not a semi-paired method).
      '''),
      _code('''
      runs = {
          "RREH": ("rreh", rreh_config, MAIN_RATIO),
          "CMFH, paired only": ("cmfh", cmfh_config, MAIN_RATIO),
          "CMFH, all pairs": ("cmfh", cmfh_config, 1.0),
      }
      models, codes, detail = {}, {}, {}
      for label, (method, config, ratio) in runs.items():
        model, encode, detail[label] = run(wiki, method, config, ratio, SEEDS[0])
        models[label] = model
        codes[label] = ([np.asarray(encode(wiki.query.views[m], m)) for m in range(2)],
                        [np.asarray(encode(wiki.database.views[m], m)) for m in range(2)])
      display(Markdown(experiment.format_table(
          {f"{label}, {d}": r for label, res in detail.items() for d, r in res.items()},
          title=f"Wikipedia, {BITS} bits, paired ratio {MAIN_RATIO}, seed {SEEDS[0]}")))
      SUMMARY["detail"] = {label: {d: r["map"] for d, r in res.items()}
                           for label, res in detail.items()}
      '''),
      _code('''
      objective = np.asarray(models["RREH"].objective)
      reached = objective[objective >= 0]
      SUMMARY["rreh_objective_non_increasing"] = bool(
          np.all(np.diff(reached) <= 1e-5 * abs(reached[0])))
      print("objective per iteration:", np.round(reached, 3))
      show(plotting.objective_curve(objective, title="RREH objective (Wikipedia)"),
           "rreh_objective")
      '''),
      _code('''
      rs = [r for r in TOP_RS if r <= wiki.database.num_items]
      for a, b in ((0, 1), (1, 0)):
        direction = f"{wiki.query.view_names[a]}->{wiki.query.view_names[b]}"
        pr, top = {}, {}
        for label, (q, db) in codes.items():
          args = (q[a], db[b], wiki.query.labels, wiki.database.labels)
          pr[label] = pr_curve_data(*args)
          top[label] = (rs, precision_at_rs(*args, rs))
        tag = direction.replace("->", "_to_")
        show(plotting.pr_curve(pr, title=f"Wikipedia {direction}, {BITS} bits"),
             f"pr_{tag}")
        show(plotting.precision_at_topR_curve(top, title=f"Wikipedia {direction}"),
             f"precision_at_r_{tag}")
      '''),
      _md('''
      ## 2. mAP against the paired ratio

      Every ratio and seed gets its own split, anchors and initialisation. CMFH is
      trained on the paired items only, so the gap to RREH is what the unpaired items
      bring. At `r = 1` there are no unpaired items.
      '''),
      _code('''
      sweep = {}
      for ratio in PAIRED_RATIOS:
        for seed in SEEDS:
          for method, config in (("rreh", rreh_config), ("cmfh", cmfh_config)):
            sweep.setdefault((method, ratio), []).append(
                run(wiki, method, config, ratio, seed)[2])

      ratio_curves = {}
      for method, label in (("rreh", "RREH"), ("cmfh", "CMFH, paired only")):
        for d in ("image->text", "text->image"):
          stats = [mean_std([r[d]["map"] for r in sweep[(method, ratio)]])
                   for ratio in PAIRED_RATIOS]
          ratio_curves[f"{label} {d}"] = ([m for m, _ in stats], [s for _, s in stats])
      show(plotting.map_vs(PAIRED_RATIOS, ratio_curves, "paired ratio r", logx=True,
                           title=f"Wikipedia, {BITS} bits, {len(SEEDS)} seeds"),
           "map_vs_paired_ratio")
      rows = ["| curve | " + " | ".join(f"r={r:g}" for r in PAIRED_RATIOS) + " |",
              "|---" * (len(PAIRED_RATIOS) + 1) + "|"]
      for label, (means, stds) in ratio_curves.items():
        rows.append(f"| {label} | " + " | ".join(
            f"{m:.3f} +- {s:.3f}" for m, s in zip(means, stds)) + " |")
      display(Markdown("\\n".join(rows)))
      SUMMARY["paired_ratio_sweep"] = {
          label: {"x": list(PAIRED_RATIOS), "mean": m, "std": s}
          for label, (m, s) in ratio_curves.items()}
      '''),
      _md('''
      ## 2b. mAP against the code length

      Same protocol at paired ratio `MAIN_RATIO`; every code length compiles its own
      solver (bits set array shapes).
      '''),
      _code('''
      bits_runs = {}
      for bits in BITS_SWEEP:
        configs = dict(zip(("rreh", "cmfh"), wiki_configs(bits)))
        for seed in SEEDS:
          for method, config in configs.items():
            bits_runs.setdefault((method, bits), []).append(
                run(wiki, method, config, MAIN_RATIO, seed)[2])
      bits_curves = {}
      for method, label in (("rreh", "RREH"), ("cmfh", "CMFH, paired only")):
        for d in ("image->text", "text->image"):
          stats = [mean_std([r[d]["map"] for r in bits_runs[(method, b)]])
                   for b in BITS_SWEEP]
          bits_curves[f"{label} {d}"] = ([m for m, _ in stats], [s for _, s in stats])
      show(plotting.map_vs(BITS_SWEEP, bits_curves, "bits", logx=True,
                           title=f"Wikipedia, paired ratio {MAIN_RATIO}, "
                                 f"{len(SEEDS)} seeds"), "map_vs_bits")
      SUMMARY["bits_sweep"] = {label: {"x": list(BITS_SWEEP), "mean": m, "std": s}
                               for label, (m, s) in bits_curves.items()}
      '''),
      _md('''
      ## 3. mAP against the number of anchors

      Anchors are drawn from the paired items, so `k` is capped at the number of paired
      items `n_p`; the sweep runs at paired ratio `ANCHOR_RATIO`.
      '''),
      _code('''
      n_p = max(1, round(ANCHOR_RATIO * wiki.train.num_items))
      anchor_runs = {}
      for k in ANCHORS:
        config = rreh_config.copy_and_resolve_references()
        config.rreh.num_anchors = k
        anchor_runs[k] = [run(wiki, "rreh", config, ANCHOR_RATIO, seed)[2]
                          for seed in SEEDS]
      anchor_curves = {}
      for d in ("image->text", "text->image"):
        stats = [mean_std([r[d]["map"] for r in anchor_runs[k]]) for k in ANCHORS]
        anchor_curves[f"RREH {d}"] = ([m for m, _ in stats], [s for _, s in stats])
      capped = [k for k in ANCHORS if k > n_p]
      print(f"n_p = {n_p} paired items" + (f"; k = {capped} are capped at n_p" if capped
                                           else ""))
      show(plotting.map_vs(ANCHORS, anchor_curves, "anchors k", logx=True,
                           title=f"RREH, paired ratio {ANCHOR_RATIO}, {BITS} bits"),
           "map_vs_anchors")
      SUMMARY["anchor_sweep"] = {label: {"x": list(ANCHORS), "mean": m, "std": s}
                                 for label, (m, s) in anchor_curves.items()}
      '''),
      _md('''
      ## 4. More than two modalities: UCI multiple features (M = 6)

      2000 handwritten digits in six views (fac, fou, kar, mor, pix, zer); 400 seeded
      queries, database = training = the other 1600. With `M = 6`, the unpaired items
      are dealt out over six modalities and RREH learns six hash functions with one
      shared latent space. Two questions: how good is retrieval between every ordered
      pair of views, and does training on all six views help a given pair (fac -> pix)
      compared with training on that pair alone?
      '''),
      _code('''
      uci = subsample(data.get_retrieval_split(dict(name="uci_mfeat", num_query=400)),
                      UCI_N_TRAIN, UCI_N_QUERY)
      uci_two = data.RetrievalSplit(*(d.select_views(["fac", "pix"]) for d in uci))
      uci_config = load_rreh_config("rreh_uci", BITS)
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

      uci_curves = {}
      for key, label in (("two", "fac->pix, trained on fac+pix"),
                         ("all", "fac->pix, trained on all six")):
        stats = [mean_std([r["fac->pix"]["map"] for r in uci_runs[(key, ratio)]])
                 for ratio in UCI_RATIOS]
        uci_curves[label] = ([m for m, _ in stats], [s for _, s in stats])
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
      '''),
      _code(_SUMMARY),
  ])


# ----------------------------------------------------------------------------- DCGH

_DCGH_HELPERS = '''
import shutil

from hashjax import data, metrics
from hashjax.dcgh import input_pipeline as pp
from hashjax.dcgh import train as dcgh_train


def shrink(config):
  """TINY: a few steps of a tiny model; batches a multiple of the device count."""
  n_dev = jax.device_count()
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
  for key in ("batch_size", "eval_batch_size"):
    b = int(config.input[key])
    config.input[key] = -(-b // n_dev) * n_dev
  config.progress_bar = not TINY
  return config


def read_curves(workdir):
  """metrics.jsonl -> {name: (steps, values)} for plotting.training_curves."""
  with open(pathlib.Path(workdir) / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f if line.strip()]
  train = [r for r in rows if r["kind"] == "train"]
  evals = [r for r in rows if r["kind"] == "eval"]
  curves = {"training loss": ([r["step"] for r in train], [r["loss"] for r in train])}
  for key, label in (("val/mean_map", "validation mAP (mean of both directions)"),
                     ("query/i2t_map", "query mAP image->text"),
                     ("query/t2i_map", "query mAP text->image")):
    points = [(r["step"], r[key]) for r in evals if key in r]
    if points:
      curves[label] = ([s for s, _ in points], [v for _, v in points])
  return curves


def train_dcgh(config, name):
  """Trains (fresh workdir unless RESUME), shows the training curves."""
  workdir = OUT_DIR / name
  if workdir.exists() and not RESUME:
    shutil.rmtree(workdir)
  result = dcgh_train.train_and_evaluate(config, str(workdir))
  show(plotting.training_curves(read_curves(workdir), title=f"DCGH, {name}"),
       f"{name}_training")
  return result, workdir


def encode_parts(config, workdir):
  """Codes of the query and database items (best validation checkpoint).

  Goes through the run's own input pipeline, so it works for feature data and for
  image files + captions (the tokenizer trained for the run is reloaded).
  """
  encode = dcgh_train.load_encoder(config, str(workdir))
  sources = pp.build_sources(config, str(workdir))
  out = {}
  for part in ("query", "database"):
    src = getattr(sources, part)
    image, text = [], []
    for batch in pp.eval_batches(src, batch_size=int(config.input.eval_batch_size),
                                 num_threads=0):
      keep = batch["mask"]
      image.append(np.asarray(encode(batch["image"], 0))[keep])
      text.append(np.asarray(encode(batch["text"], 1))[keep])
    out[part] = (np.concatenate(image), np.concatenate(text), np.asarray(src.labels))
  return out


def show_pr(config, workdir, name):
  """PR curves of image->text and text->image on the query set."""
  parts = encode_parts(config, workdir)
  (qi, qt, ql), (di, dt, dl) = parts["query"], parts["database"]
  curves = {"image->text": pr_curve_data(qi, dt, ql, dl),
            "text->image": pr_curve_data(qt, di, ql, dl)}
  show(plotting.pr_curve(curves, title=f"DCGH, {name}, {int(config.bits)} bits"),
       f"{name}_pr")
  return {d: float(metrics.mean_average_precision(q, db, ql, dl))
          for d, q, db in (("i2t", qi, dt), ("t2i", qt, di))}


def report(result, name, pr_maps):
  sel = result["selected"]
  print(f"{name}: selected step {sel['step']} (epoch {sel['epoch']}) on validation "
        f"mAP {sel['validation']['mean_map']:.4f}")
  print("query mAP@all: i2t {i2t_map:.4f}, t2i {t2i_map:.4f}".format(**sel["query"]))
  SUMMARY[name] = {"selected_step": sel["step"], "query": sel["query"],
                   "validation": sel["validation"], "pr_maps": pr_maps,
                   "total_steps": result["total_steps"],
                   "train_seconds": result["train_seconds"]}
'''


def dcgh_frozen_and_coco_mini() -> nbformat.NotebookNode:
  """DCGH: frozen features (Wikipedia, UCI) and the image + caption path (COCO-MINI)."""
  name = "dcgh_frozen_and_coco_mini"
  return _notebook([
      _md('''
      # DCGH: frozen features and the image + text pipeline

      DCGH (Deep Class-Guided Hashing, SPEC §2) trains two towers with tanh hash heads
      under proxy, pairwise and variance losses. This notebook:

      1. the frozen-feature variant (MLP towers on fixed features) on Wikipedia and on
         two views of UCI multiple features, both shipped with hashjax;
      2. the full image + caption path (JPEG decoding, CLIP preprocessing, a BPE
         tokenizer trained on the captions, CLIP-architecture towers) on COCO-MINI: the
         24-image fixture in `tests/fixtures/coco_mini`, or the full COCO-MINI folder
         (`COCO_ROOT`). Nothing is downloaded.

      Each run selects its model on a validation split held out of training and
      reports query mAP@all; training curves come from the run's `metrics.jsonl`, PR
      curves from the codes of the selected checkpoint. COCO-MINI is far too small for
      meaningful mAP: it checks the pipeline end to end.
      '''),
      _code(_SETUP),
      _code(_ENV),
      _code(_params(name, tiny='''
          TINY_EPOCHS, TINY_BATCH = 2, 256
          WIKI_ARG, UCI_ARG = "runlocal,bits=16", "runlocal,bits=16"
          RUN_UCI = False   # the same code path as Wikipedia; saves its compilations
          COCO_ARG = "runlocal"
          ''', full='''
          WIKI_ARG, UCI_ARG = "bits=64", "bits=64"
          RUN_UCI = True
          COCO_ARG = ""   # e.g. "num_query=30,num_val=20" for the full COCO-MINI
          ''', extra='''
          RESUME = False  # True: continue runs found in OUT_DIR instead of starting afresh
          # A COCO-MINI folder (annotations/, train2017/, val2017/); None: the fixture.
          COCO_ROOT = None
          ''')),
      _code(_DCGH_HELPERS),
      _md('''
      ## 1. Frozen features: Wikipedia

      128-d SIFT bag-of-words images and 10-d LDA texts; query = 693 test pairs,
      database = 2173 training pairs, 217 of which are held out as validation queries.
      '''),
      _code('''
      wiki_config = shrink(load_config("dcgh_wikipedia_features", WIKI_ARG))
      wiki_result, wiki_dir = train_dcgh(wiki_config, "wikipedia")
      report(wiki_result, "wikipedia", show_pr(wiki_config, wiki_dir, "wikipedia"))
      '''),
      _md('''
      ## 2. Frozen features: UCI multiple features (fac as "image", pix as "text")
      '''),
      _code('''
      if RUN_UCI:
        uci_config = shrink(load_config("dcgh_uci_features", UCI_ARG))
        uci_result, uci_dir = train_dcgh(uci_config, "uci")
        report(uci_result, "uci", show_pr(uci_config, uci_dir, "uci"))
      else:
        print("RUN_UCI = False: skipped (TINY runs only Wikipedia and COCO-MINI).")
      '''),
      _md('''
      ## 3. Images + captions: COCO-MINI

      `configs/dcgh_coco_mini.py`: the official COCO json layout, train2017 and
      val2017 pooled and split as DCGH does (seed 1818: query, validation, train);
      tiny CLIP-architecture towers from scratch and a BPE tokenizer trained on the
      training captions. The default data is the committed fixture (16 + 8 images, 5
      captions each, 80 category labels); for the full COCO-MINI (159 images) set
      `COCO_ROOT` and `COCO_ARG = "num_query=30,num_val=20"`. For the real MS-COCO /
      MIRFlickr / NUS-WIDE files and CLIP weights see `bring_your_own_data.ipynb`.
      '''),
      _code('''
      coco_root = pathlib.Path(COCO_ROOT or REPO_ROOT / "tests" / "fixtures" / "coco_mini")
      coco = data.load_coco(coco_root, ["train2017", "val2017"])
      print(f"{coco.num_items} images, {coco.num_classes} classes; first captions:")
      for caps in coco.captions[:3]:
        print("  ", caps[0])

      coco_config = load_config("dcgh_coco_mini", COCO_ARG)
      coco_config.data.root = str(coco_root)
      coco_config = shrink(coco_config)
      coco_result, coco_dir = train_dcgh(coco_config, "coco_mini")
      report(coco_result, "coco_mini", show_pr(coco_config, coco_dir, "coco_mini"))
      '''),
      _code(_SUMMARY),
  ])


# ----------------------------------------------------------------------------- BYOD

_BYOD_PATHS = '''
# ============================ YOUR DATA: edit this cell ============================
# (a) Images + captions in the DCGH / DCHMT layout, in DATA_ROOT:
#     index.mat  key "index"    image paths (char array, one row per item)
#     caption.mat key "caption" MIRFlickr: N x 1 tag rows; COCO: cell array of captions
#     caption.txt               NUS-WIDE only: one line of tags per image
#     label.mat  key "category" N x C multi-hot labels
DATASET = "mirflickr"              # "mirflickr" | "nuswide" | "coco"
DATA_ROOT = "/path/to/mirflickr"   # the folder holding the files above
IMAGE_ROOT = None                  # folder the index paths are relative to (None: DATA_ROOT)
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
'''

_BYOD_FIXTURE = '''
# TINY: replace the paths above by a small fixture written in exactly these formats
# from real data in the repository: the 24 COCO-MINI images with their captions and
# labels (standard layout, "coco" flavour, with absolute paths of another machine
# to exercise STRIP_PREFIX), and 400 Wikipedia training items as a wikiData.mat-style
# feature file (I_tr / T_tr / L_tr, classes 1..10).
import shutil

import scipy.io

from hashjax import data


def write_fixture(root):
  root = pathlib.Path(root)
  coco = data.load_coco(REPO_ROOT / "tests" / "fixtures" / "coco_mini",
                        ["train2017", "val2017"])
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


if TINY:
  fixture_root = OUT_DIR / "fixture"
  if fixture_root.exists():
    shutil.rmtree(fixture_root)
  DATA_ROOT, IMAGE_ROOT, STRIP_PREFIX, FEATURE_FILE = write_fixture(fixture_root)
  DATASET = "coco"
  NUM_QUERY, NUM_TRAIN, NUM_VAL = 4, 14, 4
  FEATURE_NUM_QUERY, PAIRED_RATIO = 80, 0.3
  print("fixture written to", fixture_root)
'''

_DCGH_BYOD = '''
# DCGH on the image + caption items with configs/dcgh_<DATASET>.py, the paper's
# setting (ViT-B/32, split seed 1818); TINY adds "runlocal" (tiny towers from scratch,
# a BPE tokenizer trained on the captions) and the fixture's split sizes.
settings = dict(root=DATA_ROOT, image_root=IMAGE_ROOT, strip_prefix=STRIP_PREFIX,
                clip=CLIP_PATH, vocab=CLIP_VOCAB, bits=BITS)
bad = {k: v for k, v in settings.items() if v is not None and ("," in str(v) or "=" in str(v))}
if bad:
  raise ValueError(f"config arguments cannot hold ',' or '=': {bad}; rename the folders.")
arg = ",".join(f"{k}={v}" for k, v in settings.items() if v not in (None, ""))
byod_config = load_config(f"dcgh_{DATASET}", arg + (",runlocal" if TINY else ""))
if NUM_QUERY is not None:
  byod_config.data.num_query, byod_config.data.num_train = NUM_QUERY, NUM_TRAIN
  byod_config.validation.num_items = NUM_VAL
print("data:", byod_config.data.to_dict())
byod_config = shrink(byod_config)
byod_result, byod_dir = train_dcgh(byod_config, "dcgh")
report(byod_result, "dcgh", show_pr(byod_config, byod_dir, "dcgh"))
'''

_RREH_BYOD = '''
from hashjax import experiment

features = data.get_retrieval_split(dict(
    name="features", path=str(FEATURE_FILE), view_keys=list(FEATURE_VIEW_KEYS),
    view_names=list(FEATURE_VIEW_NAMES), label_key=FEATURE_LABEL_KEY,
    label_offset=FEATURE_LABEL_OFFSET, num_query=FEATURE_NUM_QUERY))
train = features.train
print(f"{train.num_items} training = database items, {features.query.num_items} "
      f"queries; views { {n: v.shape[1] for n, v in zip(train.view_names, train.views)} }")
sp = data.semi_paired_split(train.num_items, PAIRED_RATIO, train.num_modalities,
                            "disjoint", 0)
paired, unpaired = data.apply_semi_paired(train, sp)
print(f"paired {len(sp.paired)}, unpaired per modality {[len(u) for u in sp.unpaired]}")

# RREH / CMFH settings from the Wikipedia configs (validated there); tune on your data.
rreh_config = load_rreh_config("rreh_wikipedia", BITS)
if RREH_ITERATIONS is not None:
  rreh_config.rreh.iterations = RREH_ITERATIONS
cmfh_config = load_config("baseline_wikipedia", f"method=cmfh,bits={BITS}")
feature_results, pr = {}, {}
q, db = features.query, features.database
for label, method, config in (("RREH", "rreh", rreh_config),
                              ("CMFH, paired only", "cmfh", cmfh_config)):
  _, encode = experiment.fit_method(method, paired, unpaired, config, jax.random.key(0))
  feature_results[label] = experiment.evaluate_cross_modal(q, db, encode, top_r=100)
  pr[label] = pr_curve_data(
      encode(q.views[0], 0), encode(db.views[1], 1), q.labels, db.labels)
display(Markdown(experiment.format_table(
    {f"{label}, {d}": r for label, res in feature_results.items() for d, r in res.items()},
    title=f"{pathlib.Path(FEATURE_FILE).name}, {BITS} bits, paired ratio {PAIRED_RATIO}")))
direction = f"{train.view_names[0]}->{train.view_names[1]}"
show(plotting.pr_curve(pr, title=f"{direction}, {BITS} bits"), "features_pr")
SUMMARY["features"] = {label: {d: r["map"] for d, r in res.items()}
                       for label, res in feature_results.items()}
'''


def bring_your_own_data() -> nbformat.NotebookNode:
  """Standard MIRFlickr / NUS-WIDE / COCO files and feature files, end to end."""
  name = "bring_your_own_data"
  return _notebook([
      _md('''
      # Bring your own data

      Point hashjax at the files the cross-modal hashing literature uses and run the
      same pipeline as on the shipped data:

      * **(a) images + captions** in the DCGH / DCHMT layout (MIRFlickr-25K, NUS-WIDE,
        MS-COCO: `index.mat`, `caption.mat` or `caption.txt`, `label.mat`), read by
        `hashjax.data.load_standard_layout`, trained with DCGH (CLIP-architecture
        towers; from local CLIP weights if you have them, nothing is downloaded);
      * **(b) precomputed features**: one `.mat` / `.npz` with a matrix per modality and
        the labels, read by `hashjax.data.load_feature_file`, hashed with RREH on a
        semi-paired split and compared with CMFH.

      Edit the **YOUR DATA** cell below. With `HASHJAX_NOTEBOOK_TINY=1` the notebook
      writes a small fixture in the same formats (from real data in the repository) and
      runs on that instead, which is how the tests execute it.
      '''),
      _code(_SETUP),
      _code(_ENV),
      _code(_params(name, tiny='''
          BITS, RREH_ITERATIONS = 16, 3
          TINY_EPOCHS, TINY_BATCH = 2, 256
          ''', full='''
          BITS, RREH_ITERATIONS = 64, None
          ''', extra="RESUME = False  # True: continue a run found in OUT_DIR")),
      _code(_BYOD_PATHS),
      _code(_BYOD_FIXTURE),
      _code(_DCGH_HELPERS),
      _md('''
      ## (a) Images + captions in the standard layout

      Rows keep the file order (the DCGH split, a seeded permutation, depends on it).
      Missing image files raise; fix `IMAGE_ROOT` / `STRIP_PREFIX` or pass
      `missing_images="drop"`.
      '''),
      _code('''
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
      '''),
      _code(_DCGH_BYOD),
      _md('''
      ## (b) A feature file: RREH on a semi-paired split

      `get_retrieval_split` with `name="features"` reads the file with
      `load_feature_file` and deals `FEATURE_NUM_QUERY` seeded queries; the other items
      are the database and the training set. RREH then sees `PAIRED_RATIO` of the
      training items in every modality and the rest in one modality only; CMFH is
      trained on the paired items.
      '''),
      _code(_RREH_BYOD),
      _code(_SUMMARY),
  ])


# ----------------------------------------------------------------------------- main

NOTEBOOKS = {
    "rreh_semi_paired": rreh_semi_paired,
    "dcgh_frozen_and_coco_mini": dcgh_frozen_and_coco_mini,
    "bring_your_own_data": bring_your_own_data,
}


def build(name: str) -> nbformat.NotebookNode:
  """The notebook ``name`` (a key of :data:`NOTEBOOKS`), validated, without outputs."""
  if name not in NOTEBOOKS:
    raise ValueError(f"unknown notebook {name!r}; known: {sorted(NOTEBOOKS)}.")
  nb = NOTEBOOKS[name]()
  nbformat.validate(nb)
  return nb


def write_all(out_dir: pathlib.Path = NOTEBOOK_DIR, *, check: bool = False) -> list[str]:
  """Writes every notebook to ``out_dir``; with ``check``, only lists stale ones."""
  stale = []
  out_dir.mkdir(parents=True, exist_ok=True)
  for name in NOTEBOOKS:
    path = out_dir / f"{name}.ipynb"
    text = nbformat.writes(build(name)) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
      continue
    stale.append(str(path))
    if not check:
      path.write_text(text, encoding="utf-8")
  return stale


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="exit 1 if a notebook differs from what this script writes")
  args = parser.parse_args(argv)
  stale = write_all(check=args.check)
  for path in stale:
    print(("out of date: " if args.check else "wrote ") + path)
  return 1 if (args.check and stale) else 0


if __name__ == "__main__":
  sys.exit(main())
