"""Builds the .ipynb notebooks from their jupytext sources in experiments/notebooks/.

Each notebook is kept as a percent-format Python file
(``experiments/notebooks/<name>.py``, edit that one) that imports hashjax; the
.ipynb next to it is generated from it and committed with the outputs of a TINY
run (``HASHJAX_NOTEBOOK_TINY=1``: one CPU device, a smoke test whose numbers mean
nothing), so that it opens in Colab with something to look at.

  python experiments/make_notebooks.py --check        # exit 1 if an .ipynb is stale
  python experiments/make_notebooks.py                # .ipynb without outputs -> --out
  python experiments/make_notebooks.py --execute --out experiments/notebooks
  python experiments/make_notebooks.py --execute --full --only dcgh_frozen_and_coco_mini

``--out`` defaults to /tmp/hashjax-experiments/make_notebooks, outside the
repository; ``--execute`` also writes ``make_notebooks_<tiny|full>.{json,md}``
(metadata, seconds per notebook) to ``--results`` (the same default folder).
``--full`` executes the full settings instead of TINY (to measure them; not what is
committed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT / "experiments") not in sys.path:   # also when imported by the tests
  sys.path.insert(0, str(ROOT / "experiments"))
import _common  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

NB_DIR = ROOT / "experiments" / "notebooks"
NOTEBOOKS = ("rreh_semi_paired", "dcgh_frozen_and_coco_mini", "bring_your_own_data")
DEFAULT_OUT = pathlib.Path(_common.default_out("make_notebooks"))
KERNEL = "hashjax-notebook"
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
    "colab": {"provenance": [], "toc_visible": True},
}

__all__ = ["NOTEBOOKS", "build", "execute_all", "main", "stale"]


def build(name: str, nb_dir: pathlib.Path = NB_DIR) -> Any:
  """The notebook ``<nb_dir>/<name>.py`` as an nbformat v4 notebook, without outputs."""
  import jupytext  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top

  nb = jupytext.read(nb_dir / f"{name}.py", fmt="py:percent")
  nb.metadata = json.loads(json.dumps(METADATA))   # no jupytext header; Colab opens CPU
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"cell-{i:02d}"   # stable ids: rebuilding gives the same file
    cell["metadata"] = {}
  nbformat.validate(nb)
  return nb


def _cells(nb: Any) -> list[tuple[str, str]]:
  return [(c.cell_type, c.source) for c in nb.cells]


def stale(nb_dir: pathlib.Path = NB_DIR) -> list[str]:
  """The .ipynb of ``nb_dir`` whose cells differ from their .py (outputs aside)."""
  import nbformat  # pylint: disable=g-import-not-at-top

  out = []
  for name in NOTEBOOKS:
    path = nb_dir / f"{name}.ipynb"
    if not path.exists() or _cells(nbformat.read(path, as_version=4)) != _cells(
        build(name, nb_dir)):
      out.append(str(path))
  return out


def _kernelspec(root: pathlib.Path) -> pathlib.Path:
  """A kernelspec that starts this interpreter; returns the JUPYTER_PATH entry."""
  spec_dir = root / "jupyter" / "kernels" / KERNEL
  spec_dir.mkdir(parents=True, exist_ok=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "hashjax", "language": "python"}))
  return root / "jupyter"


def _kernel_env(out_dir: pathlib.Path, tiny: bool = True) -> dict[str, str]:
  """The kernel's environment: one CPU device, TINY, no install, output to out_dir."""
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  env.update(JAX_PLATFORMS="cpu", HASHJAX_NOTEBOOK_TINY="1" if tiny else "0",
             HASHJAX_NOTEBOOK_NO_INSTALL="1", HASHJAX_NOTEBOOK_OUT=str(out_dir),
             MPLBACKEND="agg", PYDEVD_DISABLE_FILE_VALIDATION="1")
  env["PYTHONPATH"] = os.pathsep.join(
      [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  return env


def execute_all(names: list[str], work: pathlib.Path, *, timeout: int = 900,
                tiny: bool = True) -> dict[str, tuple[Any, Any, float]]:
  """Executes notebooks concurrently, TINY, each in a fresh kernel of this interpreter.

  Each runs in ``NB_DIR`` and writes its figures and ``summary.json`` to
  ``work/<name>``; ``tiny=False`` runs the full settings; ``timeout`` is per cell.

  Returns:
    ``{name: (executed notebook, summary dict or the exception raised, seconds)}``.
  """
  import nbclient  # pylint: disable=g-import-not-at-top

  jupyter_path = _kernelspec(work)

  async def one(name):
    nb = build(name)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=timeout, startup_timeout=120,
        record_timing=False, resources={"metadata": {"path": str(NB_DIR)}})
    start = time.perf_counter()
    try:   # raises CellExecutionError on a failing cell
      await client.async_execute(env=_kernel_env(work / name, tiny))
      with open(work / name / "summary.json") as f:
        result = json.load(f)
    except Exception as e:  # noqa: BLE001  (the caller reports it)
      result = e
    return name, (nb, result, time.perf_counter() - start)

  async def run_all():
    return dict(await asyncio.gather(*(one(n) for n in names)))

  old = os.environ.get("JUPYTER_PATH")
  os.environ["JUPYTER_PATH"] = os.pathsep.join(
      [str(jupyter_path)] + ([old] if old else []))
  try:
    return asyncio.run(run_all())
  finally:
    if old is None:
      os.environ.pop("JUPYTER_PATH")
    else:
      os.environ["JUPYTER_PATH"] = old


def _parser() -> argparse.ArgumentParser:
  p = _common.parser("make_notebooks", __doc__)
  p.set_defaults(out=str(DEFAULT_OUT))
  p.add_argument("--results", type=pathlib.Path, default=DEFAULT_OUT,
                 help="with --execute: folder for make_notebooks_<mode>.{json,md} ("
                      f"metadata, seconds per notebook; default {DEFAULT_OUT})")
  p.add_argument("--check", action="store_true",
                 help="only check that the committed .ipynb match their .py sources "
                      "(exit 1 if not); writes nothing")
  p.add_argument("--execute", action="store_true",
                 help="execute each notebook in TINY mode and save it with its outputs")
  p.add_argument("--full", action="store_true",
                 help="with --execute: the full settings instead of TINY")
  p.add_argument("--only", choices=NOTEBOOKS, action="append",
                 help="build only this notebook (repeatable)")
  return p


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  if args.check:
    bad = stale()
    for path in bad:
      print(f"out of date: {path} (python experiments/make_notebooks.py --execute "
            f"--out {NB_DIR.relative_to(ROOT)})")
    return 1 if bad else 0

  import nbformat  # pylint: disable=g-import-not-at-top

  args.out = pathlib.Path(args.out)
  names = list(args.only or NOTEBOOKS)
  args.out.mkdir(parents=True, exist_ok=True)
  if not args.execute:
    for name in names:
      nbformat.write(build(name), args.out / f"{name}.ipynb")
      print("wrote", args.out / f"{name}.ipynb")
    return 0
  mode = "full" if args.full else "tiny"
  load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
  with tempfile.TemporaryDirectory(prefix="hashjax_notebooks_") as work:
    done = execute_all(names, pathlib.Path(work), tiny=not args.full,
                       timeout=4 * 3600 if args.full else 900)
  failed = [n for n, (_, r, _) in done.items() if isinstance(r, Exception)]
  for name, (nb, result, seconds) in done.items():
    if isinstance(result, Exception):
      print(f"{name}: FAILED after {seconds:.0f} s: {result}", file=sys.stderr)
      continue
    nbformat.write(nb, args.out / f"{name}.ipynb")
    print(f"wrote {args.out / name}.ipynb ({seconds:.0f} s)")
  seconds = {n: round(s, 1) for n, (_, _, s) in done.items()}
  load = " ".join(f"{x:.2f}" for x in os.getloadavg())
  _common.write_results(
      f"make_notebooks_{mode}",
      _common.environment(mode=mode, seconds=seconds, failed=failed,
                          load_average_before=load_before, load_average_after=load),
      "\n".join([f"| notebook | {mode} seconds (run concurrently) |", "|---|---|"]
                + [f"| {n} | {s:.0f} |" for n, s in seconds.items()]
                + ["", f"load average before: {load_before}; after: {load}"]),
      str(args.results))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
