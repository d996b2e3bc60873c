"""The notebooks of experiments/notebooks: sources, committed .ipynb, set-up, execution.

* The committed .ipynb match their jupytext sources (``<name>.py``) cell for cell,
  carry the outputs of a TINY run, and need nothing under tests/.
* The set-up cell (the same in every notebook) finds a checkout, unpacks an uploaded
  repository archive, or stops with one clear message when no source is given; run
  in a real IPython shell in a fresh process where hashjax cannot be imported.
* Every notebook runs top to bottom headless (``make_notebooks.execute_all``: a fresh
  ipykernel of this interpreter each, one CPU device, ``HASHJAX_NOTEBOOK_TINY=1``);
  then its ``summary.json`` must hold finite metrics in [0, 1] and the PNG figures
  it lists, and the cells must have displayed those figures.

Skip the execution with ``HASHJAX_SKIP_NOTEBOOK_TESTS=1`` (it runs by default, in CI
too).
"""

import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import experiment_scripts
import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("jupytext")

ROOT = pathlib.Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "experiments" / "notebooks"

skip_execution = pytest.mark.skipif(
    os.environ.get("HASHJAX_SKIP_NOTEBOOK_TESTS") == "1",
    reason="HASHJAX_SKIP_NOTEBOOK_TESTS=1")


def _generator():
  return experiment_scripts.load("make_notebooks.py")


def _setup_source():
  """The set-up cell's source (the first code cell of the first notebook)."""
  gen = _generator()
  return next(c.source for c in gen.build(gen.NOTEBOOKS[0]).cells
              if c.cell_type == "code")


# ----------------------------------------------------------------------------- sources

def test_committed_notebooks_match_sources_and_hold_tiny_outputs():
  gen = _generator()
  assert sorted(p.stem for p in NB_DIR.glob("*.py")) == sorted(gen.NOTEBOOKS)
  assert gen.stale() == [], "run: python experiments/make_notebooks.py --execute " \
                            "--out experiments/notebooks"
  setups = set()
  for name in gen.NOTEBOOKS:
    path = NB_DIR / f"{name}.ipynb"
    assert path.stat().st_size < 1_000_000, path   # small: no huge images
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "accelerator" not in nb.metadata   # Colab opens a CPU runtime
    code = [c for c in nb.cells if c.cell_type == "code"]
    # Executed top to bottom (TINY), without an error output.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), name
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], name
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert "'tiny': True" in str(code[-1].outputs) or '"tiny": true' in str(
        code[-1].outputs), name
    setups.add(code[0].source)
    source = (NB_DIR / f"{name}.py").read_text()
    # Nothing a notebook needs lives under tests/, and it re-implements no metric.
    assert "tests/" not in source and '"tests"' not in source, name
    assert "np.argsort(dist" not in source and "def pr_curve" not in source, name
    assert 'TINY = os.environ.get("HASHJAX_NOTEBOOK_TINY") == "1"' in source
  assert len(setups) == 1, "the set-up cell differs between notebooks"
  assert 'REPO_URL = ""' in setups.pop()


def test_notebook_check_fails_on_an_edited_source(tmp_path):
  """--check's comparison sees a changed cell (on a copy of the notebooks folder)."""
  gen = _generator()
  copy = tmp_path / "notebooks"
  shutil.copytree(NB_DIR, copy)
  assert gen.stale(copy) == []
  src = copy / f"{gen.NOTEBOOKS[0]}.py"
  src.write_text(src.read_text().replace("BITS = 16", "BITS = 32", 1))
  assert gen.stale(copy) == [str(copy / f"{gen.NOTEBOOKS[0]}.ipynb")]


# ----------------------------------------------------------------------------- set-up

def _run_setup(cwd, env_extra):
  """Runs the set-up cell in an IPython shell in a fresh process without hashjax.

  Returns:
    (stdout, name of the exception the cell raised or "").
  """
  script = f"""
import sys
sys.modules["hashjax"] = None   # not installed: `import hashjax` raises ImportError
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
result = shell.run_cell({_setup_source()!r})
err = result.error_in_exec
print("RAISED:" + (type(err).__name__ if err is not None else ""))
"""
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "HASHJAX_NOTEBOOK_NO_INSTALL")}
  env.update(env_extra)
  run = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  raised = re.search(r"RAISED:(\w*)", run.stdout).group(1)
  return run.stdout, raised


def test_setup_without_source_stops_with_one_clear_message(tmp_path):
  out, raised = _run_setup(tmp_path, {})
  assert raised == "SetupNeeded"
  assert "SET-UP NEEDED: no hashjax source. Set REPO_URL" in out
  assert "Traceback" not in out and "---------" not in out   # no stack trace shown
  assert list(tmp_path.iterdir()) == []   # nothing written


@pytest.mark.parametrize("fmt", ["zip", "gztar"])
def test_setup_unpacks_an_uploaded_repository_archive(tmp_path, fmt):
  """A GitHub-style archive (one top folder) in the work dir becomes ./hashjax."""
  repo = tmp_path / "src" / "hashjax-main"
  for rel in ("configs/rreh_wikipedia.py", "hashjax/__init__.py", "pyproject.toml"):
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(f"# {rel}\n")
  work = tmp_path / "content"
  work.mkdir()
  shutil.make_archive(str(work / "hashjax-main"), fmt, tmp_path / "src", "hashjax-main")
  # NO_INSTALL: the cell stops after unpacking instead of running pip.
  out, raised = _run_setup(work, {"HASHJAX_NOTEBOOK_NO_INSTALL": "1"})
  assert raised == "SetupNeeded"
  assert "HASHJAX_NOTEBOOK_NO_INSTALL=1 but hashjax is not importable" in out
  assert (work / "hashjax" / "configs" / "rreh_wikipedia.py").read_text() == \
      "# configs/rreh_wikipedia.py\n"
  assert (work / "hashjax" / "hashjax" / "__init__.py").is_file()


def test_setup_with_a_bad_archive_says_so(tmp_path):
  (tmp_path / "hashjax.zip").write_text("not a zip")
  out, raised = _run_setup(tmp_path, {})
  assert raised == "SetupNeeded" and "SET-UP NEEDED: cannot unpack" in out
  assert "Traceback" not in out


# ------------------------------------------------------------------------- execution

@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  gen = _generator()
  return gen.execute_all(list(gen.NOTEBOOKS), tmp_path_factory.mktemp("notebooks"),
                         timeout=600)


def _run(executed, name):
  nb, summary, _ = executed[name]
  if isinstance(summary, Exception):
    raise summary
  return nb, summary


def _numbers(tree):
  """Every number in a nested dict / list."""
  if isinstance(tree, dict):
    return [x for v in tree.values() for x in _numbers(v)]
  if isinstance(tree, list):
    return [x for v in tree for x in _numbers(v)]
  return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def _check_common(nb, summary, name):
  assert summary["notebook"] == name and summary["tiny"] is True
  # The kernel ran this interpreter's environment.
  assert os.path.realpath(summary["python_prefix"]) == os.path.realpath(sys.prefix)
  assert summary["backend"] == "cpu"
  assert summary["figures"], "no figure saved"
  for path in summary["figures"]:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
  shown = sum("image/png" in o.get("data", {})
              for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
  assert shown == len(summary["figures"])
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors


def _assert_maps(*trees):
  """Every number in the trees is a finite mAP in [0, 1] (and there is one)."""
  values = [x for t in trees for x in _numbers(t)]
  assert values
  for v in values:
    assert math.isfinite(v) and 0.0 <= v <= 1.0, values


@pytest.mark.slow
@skip_execution
def test_rreh_semi_paired(executed):
  nb, s = _run(executed, "rreh_semi_paired")
  _check_common(nb, s, "rreh_semi_paired")
  assert set(s["detail"]) == {"RREH", "CMFH, paired only", "CMFH, all pairs"}
  assert s["rreh_objective_non_increasing"] is True
  sweep = s["paired_ratio_sweep"]
  assert len(sweep) == 4 and all(len(c["mean"]) == len(c["x"]) == 2
                                 for c in sweep.values())
  assert all(len(c["mean"]) == 2 for c in s["anchor_sweep"].values())
  assert len(s["bits_sweep"]) == 4
  assert all(c["x"] == [16] for c in s["bits_sweep"].values())
  assert s["uci"]["num_pairs"] == 30 and len(s["uci"]["map_matrix"]) == 30
  _assert_maps(s["detail"], s["uci"]["map_matrix"],
               *[c["mean"] for c in sweep.values()],
               *[c["mean"] for c in s["anchor_sweep"].values()],
               *[c["mean"] for c in s["bits_sweep"].values()],
               *[c["mean"] for c in s["uci"]["sweep"].values()])
  assert len(s["figures"]) == 10


@pytest.mark.slow
@skip_execution
def test_dcgh_frozen_and_coco_mini(executed):
  nb, s = _run(executed, "dcgh_frozen_and_coco_mini")
  _check_common(nb, s, "dcgh_frozen_and_coco_mini")
  assert "uci" not in s   # RUN_UCI is off in TINY mode
  for run in ("wikipedia", "coco_mini"):
    r = s[run]
    assert r["total_steps"] >= 2
    _assert_maps(r["query"], r["validation"], r["pr_maps"])
    # The PR-curve codes come from the selected checkpoint, like the reported mAP.
    for d in ("i2t", "t2i"):
      assert r["pr_maps"][d] == pytest.approx(r["query"][f"{d}_map"], abs=1e-4)
  assert len(s["figures"]) == 4


@pytest.mark.slow
@skip_execution
def test_bring_your_own_data(executed):
  nb, s = _run(executed, "bring_your_own_data")
  _check_common(nb, s, "bring_your_own_data")
  assert s["standard_layout"] == {"num_items": 24, "num_classes": 80}
  assert set(s["features"]) == {"RREH", "CMFH, paired only"}
  assert set(s["features"]["RREH"]) == {"image->text", "text->image"}
  _assert_maps(s["features"], s["dcgh"]["query"])
  assert len(s["figures"]) == 3
