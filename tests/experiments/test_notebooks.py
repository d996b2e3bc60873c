"""Executes every notebook of experiments/notebooks headless, with TINY settings.

The three notebooks run concurrently (a module-scoped fixture), each top to
bottom in a fresh ipykernel of *this* interpreter
(``sys.executable``; checked through the ``sys.prefix`` the notebook records) on
CPU with one device, with ``HASHJAX_NOTEBOOK_TINY=1``. A cell error fails the test;
then the notebook's ``summary.json`` must hold finite metrics in [0, 1] and the
PNG figures it lists, and the cells must have displayed those figures.

Skip with ``HASHJAX_SKIP_NOTEBOOK_TESTS=1`` (they run by default, in CI too).
"""

import importlib.util
import json
import math
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[2]
NB_DIR = ROOT / "experiments" / "notebooks"
KERNEL = "hashjax-notebook-test"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("HASHJAX_SKIP_NOTEBOOK_TESTS") == "1",
                       reason="HASHJAX_SKIP_NOTEBOOK_TESTS=1"),
]


def _generator():
  spec = importlib.util.spec_from_file_location(
      "make_notebooks", ROOT / "experiments" / "make_notebooks.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _write_kernelspec(root):
  """A kernelspec that starts this interpreter; returns the JUPYTER_PATH entry."""
  spec_dir = root / "jupyter" / "kernels" / KERNEL
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "hashjax test", "language": "python"}))
  return root / "jupyter"


def _kernel_env(out_dir):
  """The kernel's environment: CPU, TINY, no installation, outputs to ``out_dir``."""
  env = dict(os.environ)
  # One CPU device, as a user's CPU runtime has (conftest forces 8 for this process).
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  env.update(JAX_PLATFORMS="cpu", HASHJAX_NOTEBOOK_TINY="1",
             HASHJAX_NOTEBOOK_NO_INSTALL="1",
             HASHJAX_NOTEBOOK_OUT=str(out_dir), MPLBACKEND="agg",
             PYDEVD_DISABLE_FILE_VALIDATION="1")
  env.pop("HASHJAX_SKIP_NOTEBOOK_TESTS", None)
  return env


async def _execute_all(names, root):
  """Runs the notebooks concurrently (one kernel each; compiling is single-threaded,
  so two cores finish them in about half the serial time).

  Returns:
    ``{name: (executed notebook, summary dict or the exception it raised)}``.
  """
  import asyncio

  async def one(name):
    out_dir = root / name
    env = _kernel_env(out_dir)
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=600, startup_timeout=120,
        resources={"metadata": {"path": str(NB_DIR)}})
    try:
      await client.async_execute(env=env)  # raises CellExecutionError on a failing cell
      with open(out_dir / "summary.json") as f:
        return name, (nb, json.load(f))
    except Exception as e:  # noqa: BLE001  (re-raised by the test of this notebook)
      return name, (nb, e)

  return dict(await asyncio.gather(*(one(n) for n in names)))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  import asyncio

  root = tmp_path_factory.mktemp("notebooks")
  jupyter_path = _write_kernelspec(root)
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("JUPYTER_PATH", str(jupyter_path))
    return asyncio.run(_execute_all(list(_generator().NOTEBOOKS), root))


def _run(executed, name):
  nb, summary = executed[name]
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


def test_generated_notebooks_are_current_and_have_no_outputs():
  gen = _generator()
  assert gen.write_all(NB_DIR, check=True) == []
  for name in gen.NOTEBOOKS:
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), name
    assert "accelerator" not in nb.metadata   # Colab opens a CPU runtime
    src = [c.source for c in code]
    # Colab: clone + editable install; a clone: `%pip install -e` unless installed;
    # the headless run installs nothing.
    assert 'elif "google.colab" in sys.modules:' in src[0] and "REPO_URL" in src[0]
    assert "%pip install -q -e {ROOT}" in src[0]
    assert 'os.environ.get("HASHJAX_NOTEBOOK_NO_INSTALL") == "1"' in src[0]
    assert 'TINY = os.environ.get("HASHJAX_NOTEBOOK_TINY") == "1"' in src[2]


def test_rreh_semi_paired(executed):
  nb, s = _run(executed, "rreh_semi_paired")
  _check_common(nb, s, "rreh_semi_paired")
  assert set(s["detail"]) == {"RREH", "CMFH, paired only", "CMFH, all pairs"}
  assert s["rreh_objective_non_increasing"] is True
  sweep = s["paired_ratio_sweep"]
  assert len(sweep) == 4 and all(len(c["mean"]) == len(c["x"]) == 2
                                 for c in sweep.values())
  assert all(len(c["mean"]) == 2 for c in s["anchor_sweep"].values())
  assert len(s["bits_sweep"]) == 4 and all(c["x"] == [16] for c in s["bits_sweep"].values())
  assert s["uci"]["num_pairs"] == 30 and len(s["uci"]["map_matrix"]) == 30
  _assert_maps(s["detail"], s["uci"]["map_matrix"],
               *[c["mean"] for c in sweep.values()],
               *[c["mean"] for c in s["anchor_sweep"].values()],
               *[c["mean"] for c in s["bits_sweep"].values()],
               *[c["mean"] for c in s["uci"]["sweep"].values()])
  assert len(s["figures"]) == 10


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


def test_bring_your_own_data(executed):
  nb, s = _run(executed, "bring_your_own_data")
  _check_common(nb, s, "bring_your_own_data")
  assert s["standard_layout"] == {"num_items": 24, "num_classes": 80}
  assert set(s["features"]) == {"RREH", "CMFH, paired only"}
  assert set(s["features"]["RREH"]) == {"image->text", "text->image"}
  _assert_maps(s["features"], s["dcgh"]["query"])
  assert len(s["figures"]) == 3


def _notebook_functions(source, names, namespace):
  """Defines the functions ``names`` of a notebook cell's source in ``namespace``."""
  import ast
  import textwrap
  tree = ast.parse(textwrap.dedent(source).replace("%matplotlib inline", ""))
  nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
  assert sorted(n.name for n in nodes) == sorted(names)
  exec(compile(ast.Module(nodes, []), "notebook", "exec"), namespace)  # noqa: S102
  return [namespace[n] for n in names]


def test_notebook_curve_helpers_match_loops():
  """The notebooks' NumPy PR curve (used when hashjax.metrics has none) and
  precision@R against plain loops."""
  import types

  import numpy as np
  fallback, at_rs = _notebook_functions(
      _generator()._ENV, ["pr_curve_data", "precision_at_rs", "_hamming_and_relevance"],
      {"np": np, "metrics": types.SimpleNamespace()})[:2]   # no precision_recall_curve
  rng = np.random.default_rng(3)
  bits, nq, ndb = 6, 7, 15
  q = np.where(rng.standard_normal((nq, bits)) >= 0, 1, -1).astype(np.int8)
  db = np.where(rng.standard_normal((ndb, bits)) >= 0, 1, -1).astype(np.int8)
  ql = (rng.random((nq, 4)) < 0.4).astype(np.float32)
  ql[0] = 0                                         # a query with no relevant item
  dl = (rng.random((ndb, 4)) < 0.4).astype(np.float32)
  precision, recall = fallback(q, db, ql, dl)
  for r in range(bits + 1):
    ps, rs = [], []
    for i in range(nq):
      dist = [sum(q[i, t] != db[j, t] for t in range(bits)) for j in range(ndb)]
      rel = [bool((ql[i] * dl[j]).sum() > 0) for j in range(ndb)]
      got = [j for j in range(ndb) if dist[j] <= r]
      ok = sum(rel[j] for j in got)
      ps.append(ok / len(got) if got else 0.0)      # means over all queries
      rs.append(ok / sum(rel) if any(rel) else 0.0)
    assert precision[r] == pytest.approx(np.mean(ps))
    assert recall[r] == pytest.approx(np.mean(rs))
  # Radius b retrieves everything: full recall except the query without relevant items.
  assert recall[bits] == pytest.approx((nq - 1) / nq)
  from hashjax import metrics
  if hasattr(metrics, "precision_recall_curve"):   # the library's own curve agrees
    lib = metrics.precision_recall_curve(q, db, ql, dl)
    np.testing.assert_allclose(np.asarray(lib[0]), precision, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lib[1]), recall, atol=1e-6)
  # Integer class ids give the same curve as their one-hot rows.
  ids_q, ids_db = rng.integers(0, 3, nq), rng.integers(0, 3, ndb)
  np.testing.assert_allclose(fallback(q, db, ids_q, ids_db),
                             fallback(q, db, np.eye(3)[ids_q], np.eye(3)[ids_db]))
  # precision@R: stable ranking (ties by database index), then hits in the top R.
  rs = [1, 4, ndb]
  want = []
  for r in rs:
    per_query = []
    for i in range(nq):
      dist = [int((q[i] != db[j]).sum()) for j in range(ndb)]
      top = sorted(range(ndb), key=lambda j: (dist[j], j))[:r]
      per_query.append(sum((ql[i] * dl[j]).sum() > 0 for j in top) / r)
    want.append(np.mean(per_query))
  np.testing.assert_allclose(at_rs(q, db, ql, dl, rs), want)
