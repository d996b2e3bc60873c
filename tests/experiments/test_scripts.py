"""Every script of experiments/: `--help` starts nothing, `--out` defaults outside the repo.

Each script runs as a subprocess (as a user types it) with TMPDIR pointing at an empty
folder: ``--help`` must exit 0 within a minute, print the usage with ``--out``, and
write nothing, neither in the repository's experiments/ folder nor under TMPDIR
(scripts that write no results file, listed in NO_OUT, have no ``--out``); a
wrong flag must exit 2 with argparse's one-line error before any work (checked on
the script whose bare ``--help`` used to start the full experiment).
"""

import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
# Every top-level script (benchmarks/ have their own tests); _common is a module.
SCRIPTS = sorted(p.name for p in EXPERIMENTS.glob("*.py") if not p.name.startswith("_"))
# Scripts that write no results file (so have no --out), and why.
NO_OUT = {"clip_vit_b32_parity.py": "prints its comparison; its checkpoints go to "
                                    "--workdir, a temporary folder removed at the end",
          "rreh_vmap_hang.py": "a minimal reproducer for upstream (no hashjax): prints "
                               "its timing, writes nothing",
          "rreh_views_weighted_summary.py": "prints a summary of a committed results "
                                            "file, writes nothing"}


def _snapshot(folder):
  """{relative path: (size, mtime)} of every file under ``folder``."""
  return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _run(script, args, tmp_path):
  env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"),
             PYTHONPATH=os.pathsep.join(
                 [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(
                     os.pathsep) if p]))
  (tmp_path / "tmp").mkdir(exist_ok=True)
  start = time.perf_counter()
  run = subprocess.run([sys.executable, str(EXPERIMENTS / script), *args], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
  return run, time.perf_counter() - start


def test_the_expected_scripts_are_covered():
  assert {"rreh_headline.py", "rreh_study.py", "rreh_tune.py", "rreh_select_init.py",
          "baseline_table.py", "dcgh_frozen.py", "dcgh_coco_mini.py",
          "make_notebooks.py", "supervision_study.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_starts_nothing_and_writes_nothing(script, tmp_path):
  before = _snapshot(EXPERIMENTS)
  run, seconds = _run(script, ["--help"], tmp_path)
  assert run.returncode == 0, run.stderr[-2000:]
  assert seconds < 60, f"{script} --help took {seconds:.0f} s"
  assert run.stdout.startswith("usage: "), run.stdout[:200]
  if script in NO_OUT:
    assert "--out" not in run.stdout   # else it belongs with the others
  else:
    assert "--out" in run.stdout
    name = script[:-3]
    # The default --out is outside the repository.
    assert f"hashjax-experiments/{name}" in run.stdout.replace("-\n", "-").replace(
        "\n", "").replace(" ", ""), run.stdout
  assert _snapshot(EXPERIMENTS) == before
  assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("script", ["rreh_headline.py"])   # all share _common.parser
def test_a_wrong_flag_exits_2_with_one_line(script, tmp_path):
  run, _ = _run(script, ["--no-such-flag"], tmp_path)
  assert run.returncode == 2
  assert run.stderr.strip().splitlines()[-1].startswith(f"{script}: error: ")
  assert list((tmp_path / "tmp").iterdir()) == []


def test_default_out_is_outside_the_repository():
  sys.path.insert(0, str(EXPERIMENTS))
  try:
    import _common
  finally:
    sys.path.remove(str(EXPERIMENTS))
  out = pathlib.Path(_common.default_out("rreh_headline")).resolve()
  assert ROOT not in out.parents and out.name == "rreh_headline"
