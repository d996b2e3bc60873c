"""Every user mistake on the command line: one line naming the problem, exit status 2.

The bad inputs are ONE table; each case runs the real command (``python -m
hashjax.main``, ``hashjax.encode``, ``hashjax.search`` or the ``hashjax`` console
script's ``run()``) as a subprocess. The cases are started together in a small thread
pool (most fail before JAX is imported) and each table row checks its own result:
exit status, exactly one line on stderr, no traceback, the expected words.
"""

import concurrent.futures
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from hashjax import rreh, serialization
from hashjax import search as search_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RREH = os.path.join(ROOT, "configs", "rreh_wikipedia.py")
DCGH = os.path.join(ROOT, "configs", "dcgh_wikipedia_features.py")
BASE = os.path.join(ROOT, "configs", "baseline_wikipedia.py")
MIRF = os.path.join(ROOT, "configs", "rreh_mirflickr.py")
SMALL = "num_query=50,num_train=200,bits=16,num_anchors=40,iterations=2,select=false"

MAIN = ("-m", "hashjax.main")
ENC = ("-m", "hashjax.encode")
SEARCH = ("-m", "hashjax.search")
# What the installed `hashjax` console script does (pyproject [project.scripts]).
CONSOLE = ("-c", "import sys; sys.argv[0] = 'hashjax'; from hashjax.main import run; run()")

# (id, command, arguments ({t} = the fixture folder), words expected on the line)
CASES = [
    # ---- python -m hashjax.main: config file and its argument
    ("bits_float", MAIN, [f"--config={RREH}:bits=12.5"], "bits='12.5' is not an int"),
    ("bits_zero", MAIN, [f"--config={RREH}:bits=0"], "config.bits must be >= 1"),
    ("bits_negative", MAIN, [f"--config={RREH}", "--config.bits=-8"],
     "config.bits must be >= 1, got -8"),
    ("bits_text", MAIN, [f"--config={RREH}", "--config.bits=abc"], "--config.bits=abc"),
    ("unknown_field", MAIN, [f"--config={RREH}", "--config.bitz=3"],
     "unknown config field 'bitz' (did you mean 'bits'?)"),
    ("unknown_nested_field", MAIN, [f"--config={RREH}", "--config.rreh.zzz=3"],
     "unknown config field 'zzz'"),
    ("unknown_config_argument", MAIN, [f"--config={RREH}:bitz=8"],
     "unknown config argument 'bitz'"),
    ("config_missing", MAIN, ["--config={t}/nope.py"], "nope.py does not exist"),
    ("config_is_dir", MAIN, ["--config={t}"], "is a directory"),
    ("config_syntax_error", MAIN, ["--config={t}/syntax.py"], "syntax error in"),
    ("config_without_get_config", MAIN, ["--config={t}/noget.py"],
     "defines no get_config()"),
    ("unknown_flag", MAIN, [f"--config={RREH}", "--bogus_flag=1"],
     "Unknown command line flag 'bogus_flag'"),
    ("positional_argument", MAIN, [f"--config={RREH}", "extra"],
     "unexpected arguments: ['extra']"),
    ("unknown_method", MAIN, [f"--config={RREH}", "--config.method=foo"],
     "config.method must be one of"),
    ("rreh_view_weights_zero", MAIN, [f"--config={RREH}:view_weights=1+0"],
     "config.rreh.view_weights must be > 0"),
    ("rreh_view_weights_text", MAIN, [f"--config={RREH}:view_weights=1+x"],
     "must be 'auto' or numbers joined by '+'"),
    ("rreh_ridge_cap_negative", MAIN, [f"--config={RREH}:ridge_cap=-1"],
     "config.rreh.ridge_cap must be >= 0"),
    # ---- every field validated before work (DCGH)
    ("dcgh_stop_after_negative", MAIN,
     [f"--config={DCGH}:runlocal", "--config.stop_after_steps=-3"],
     "config.stop_after_steps must be >= 0, got -3"),
    ("dcgh_tower_lr_negative", MAIN, [f"--config={DCGH}", "--config.optim.tower_lr=-1"],
     "config.optim.tower_lr must be >= 0"),
    ("dcgh_proxy_lr_negative", MAIN,
     [f"--config={DCGH}", "--config.optim.proxy_lr=-0.1"], "config.optim.proxy_lr"),
    ("dcgh_eval_every_zero", MAIN, [f"--config={DCGH}", "--config.eval_every_epochs=0"],
     "config.eval_every_epochs must be >= 1"),
    ("dcgh_batch_zero", MAIN, [f"--config={DCGH}", "--config.input.batch_size=0"],
     "config.input.batch_size must be >= 1"),
    ("dcgh_epochs_zero", MAIN, [f"--config={DCGH}", "--config.num_epochs=0"],
     "config.num_epochs must be >= 1"),
    ("dcgh_b2_one", MAIN, [f"--config={DCGH}", "--config.optim.b2=1.0"],
     "config.optim.b2 must be in [0, 1)"),
    ("dcgh_dropout", MAIN, [f"--config={DCGH}", "--config.model.dropout=1.5"],
     "config.model.dropout"),
    ("dcgh_checkpoint_every_zero", MAIN,
     [f"--config={DCGH}", "--config.checkpoint.every_steps=0"],
     "config.checkpoint.every_steps must be >= 1"),
    ("dcgh_label_fraction_zero", MAIN, [f"--config={DCGH}:label_fraction=0"],
     "config.labels.fraction must be in (0, 1], got 0"),
    ("dcgh_label_fraction_above_one", MAIN,
     [f"--config={DCGH}", "--config.labels.fraction=1.5"],
     "config.labels.fraction must be in (0, 1], got 1.5"),
    ("dcgh_on_damage", MAIN, [f"--config={DCGH}", "--config.checkpoint.on_damage=maybe"],
     "config.checkpoint.on_damage must be one of ['fallback', 'refuse']"),
    ("dcgh_parallelism", MAIN, [f"--config={DCGH}", "--config.parallelism=mpi"],
     "config.parallelism"),
    # ---- RREH / baselines
    ("rreh_paired_ratio_zero", MAIN,
     [f"--config={RREH}", "--config.semi_paired.paired_ratio=0.0"],
     "config.semi_paired.paired_ratio must be in (0, 1]"),
    ("rreh_anchors_zero", MAIN, [f"--config={RREH}", "--config.rreh.num_anchors=0"],
     "config.rreh.num_anchors must be >= 1"),
    ("rreh_iterations_zero", MAIN, [f"--config={RREH}", "--config.rreh.iterations=0"],
     "config.rreh.iterations must be >= 1"),
    ("rreh_mode", MAIN, [f"--config={RREH}", "--config.semi_paired.mode=random"],
     "config.semi_paired.mode"),
    ("baseline_top_r_zero", MAIN, [f"--config={BASE}", "--config.eval.top_r=0"],
     "config.eval.top_r must be >= 1"),
    # ---- a constant view, refused before the fit starts (no progress bar on stderr)
    ("rreh_constant_view", MAIN, [f"--config={MIRF}:path={{t}}/const.npz,{SMALL}",
                                  "--workdir={t}/const_rreh"],
     "the 'text' view of the paired training items is constant"),
    ("cmfh_constant_view", MAIN, [f"--config={MIRF}:path={{t}}/const.npz,{SMALL}",
                                  "--config.method=cmfh", "--workdir={t}/const_cmfh"],
     "the 'text' view of the paired training items is constant"),
    # ---- workdir checked before the fit
    ("workdir_is_a_file", MAIN, [f"--config={RREH}", "--workdir={t}/afile"],
     "exists and is not a directory"),
    ("workdir_not_writable", MAIN, [f"--config={RREH}", "--workdir=/proc/hashjax_nope"],
     "is not writable"),
    # ---- the console script
    ("console_bits_float", CONSOLE, [f"--config={RREH}:bits=12.5"],
     "bits='12.5' is not an int"),
    ("console_unknown_field", CONSOLE, [f"--config={RREH}", "--config.bitz=3"],
     "unknown config field 'bitz'"),
    # ---- python -m hashjax.encode
    ("encode_bits_differ_from_model", ENC,
     [f"--config={RREH}", "--config.bits=32", "--checkpoint={t}/rreh64.npz",
      "--out={t}/c.npz"], "config.bits is 32 but {t}/rreh64.npz holds a 64-bit model"),
    ("encode_method_differs_from_model", ENC,
     [f"--config={BASE}", "--checkpoint={t}/rreh64.npz", "--out={t}/c.npz"],
     "holds a 'rreh' model but the config is for 'cmfh'"),
    ("encode_model_damaged", ENC,
     [f"--config={RREH}", "--checkpoint={t}/damaged.npz", "--out={t}/c.npz"],
     "{t}/damaged.npz is damaged"),
    ("encode_model_truncated", ENC,
     [f"--config={RREH}", "--checkpoint={t}/truncated.npz", "--out={t}/c.npz"],
     "{t}/truncated.npz is damaged"),
    ("encode_model_missing", ENC,
     [f"--config={RREH}", "--checkpoint={t}/missing.npz", "--out={t}/c.npz"],
     "no saved model at: {t}/missing.npz"),
    ("encode_model_is_dir", ENC,
     [f"--config={RREH}", "--checkpoint={t}", "--out={t}/c.npz"], "got a directory"),
    ("encode_model_not_npz", ENC,
     [f"--config={RREH}", "--checkpoint={t}/afile", "--out={t}/c.npz"],
     "is not a hashjax model file"),
    ("encode_out_folder_missing", ENC,
     [f"--config={RREH}", "--checkpoint={t}/rreh64.npz", "--out={t}/no/c.npz"],
     "does not exist"),
    ("encode_out_flag_missing", ENC, [f"--config={RREH}", "--checkpoint={t}/rreh64.npz"],
     "--out"),
    ("encode_split_unknown", ENC,
     [f"--config={RREH}", "--checkpoint={t}/rreh64.npz", "--out={t}/c.npz",
      "--split=validation"], "--split"),
    ("encode_bits_float", ENC,
     [f"--config={RREH}:bits=12.5", "--checkpoint={t}/rreh64.npz", "--out={t}/c.npz"],
     "bits='12.5' is not an int"),
    # ---- python -m hashjax.search
    ("search_index_missing", SEARCH, ["--index={t}/nope.hjx", "--queries={t}/q.npz"],
     "No such file: {t}/nope.hjx"),
    ("search_index_is_dir", SEARCH, ["--index={t}", "--queries={t}/q.npz"],
     "Is a directory"),
    ("search_queries_under_a_file", SEARCH,
     ["--index={t}/db.hjx", "--queries={t}/afile/q.npz"], "{t}/afile/q.npz"),
    ("search_index_garbage", SEARCH, ["--index={t}/afile", "--queries={t}/q.npz"],
     "{t}/afile"),
    ("search_index_damaged", SEARCH, ["--index={t}/damaged.hjx", "--queries={t}/q.npz"],
     "{t}/damaged.hjx"),
    ("search_queries_garbage", SEARCH, ["--index={t}/db.hjx", "--queries={t}/afile"],
     "is not a codes .npz file"),
    ("search_queries_bits_differ", SEARCH, ["--index={t}/db.hjx", "--queries={t}/q32.npz"],
     "32-bit codes but the index has 40 bits"),
    ("search_k_zero", SEARCH, ["--index={t}/db.hjx", "--queries={t}/q.npz", "--k=0"],
     "--k must be >= 1"),
    ("search_k_too_large", SEARCH,
     ["--index={t}/db.hjx", "--queries={t}/q.npz", "--k=500"],
     "k must be at most the index size 200"),
    ("search_radius_negative", SEARCH,
     ["--index={t}/db.hjx", "--queries={t}/q.npz", "--radius=-1"], "--radius must be >= 0"),
    ("search_k_not_int", SEARCH, ["--index={t}/db.hjx", "--queries={t}/q.npz", "--k=ten"],
     "argument --k: invalid int value"),
    ("search_unknown_argument", SEARCH,
     ["--index={t}/db.hjx", "--queries={t}/q.npz", "--fast"], "unrecognized arguments"),
    ("search_build_codes_missing", SEARCH, ["build", "--codes={t}/nope.npz",
                                            "--out={t}/x.hjx"], "No such file"),
    ("search_build_out_folder_missing", SEARCH,
     ["build", "--codes={t}/db.npz", "--out={t}/no/x.hjx"], "does not exist"),
    ("search_build_out_missing", SEARCH, ["build", "--codes={t}/db.npz"],
     "the following arguments are required: --out"),
]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop("HASHJAX_TRACEBACK", None)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _run(cmd, args, cwd, env=None):
  return subprocess.run([sys.executable, *cmd, *args], capture_output=True, text=True,
                        env=env or _env(), cwd=cwd, timeout=300)


def _make_files(t):
  """Config files with mistakes, a real 64-bit RREH model.npz (and damaged copies),
  a codes file, an index and a damaged index."""
  (t / "syntax.py").write_text("def get_config(:\n  pass\n")
  (t / "noget.py").write_text("X = 1\n")
  (t / "afile").write_text("not a model, not a folder\n")
  rs = np.random.RandomState(0)
  labels = np.eye(24, dtype=np.uint8)[rs.randint(0, 24, 300)]   # MIRFlickr .npz layout
  np.savez(t / "const.npz", FAll=rs.randn(300, 20).astype(np.float32),
           YAll=np.ones((300, 12), np.float32), LAll=labels)   # text: the same everywhere
  paired = [rs.randn(80, 12).astype(np.float32), rs.randn(80, 6).astype(np.float32)]
  unpaired = [np.zeros((0, 12), np.float32), np.zeros((0, 6), np.float32)]
  model = rreh.fit(paired, unpaired, dict(bits=64, num_anchors=20, iterations=2),
                   jax.random.key(0))
  serialization.save_pytree(t / "rreh64.npz", jax.tree_util.tree_map(np.asarray, model),
                            meta={"method": "rreh", "bits": 64,
                                  "view_names": ["image", "text"]})
  raw = bytearray((t / "rreh64.npz").read_bytes())
  (t / "truncated.npz").write_bytes(bytes(raw[:len(raw) // 2]))
  with np.load(t / "rreh64.npz") as z:   # flip one bit inside the largest array
    name = max((k for k in z.files if k != "__header__"), key=lambda k: z[k].nbytes)
    needle = np.ascontiguousarray(z[name]).tobytes()[:64]
  pos = bytes(raw).find(needle) + 40
  raw[pos] ^= 0x10
  (t / "damaged.npz").write_bytes(bytes(raw))
  db = rs.choice(np.array([-1, 1], np.int8), size=(200, 40))
  np.savez(t / "db.npz", codes=db)
  np.savez(t / "q.npz", codes=db[:5])
  np.savez(t / "q32.npz", codes=db[:5, :32])
  assert search_cli.main(["build", f"--codes={t / 'db.npz'}",
                          f"--out={t / 'db.hjx'}"]) == 0
  hjx = bytearray((t / "db.hjx").read_bytes())
  hjx[len(hjx) - 5] ^= 0x01
  (t / "damaged.hjx").write_bytes(bytes(hjx))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """Runs every case once (4 at a time); ``{case id: (CompletedProcess, folder)}``."""
  t = tmp_path_factory.mktemp("cli_errors")
  _make_files(t)
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    futures = {cid: pool.submit(_run, cmd, [a.format(t=t) for a in args], str(t))
               for cid, cmd, args, _ in CASES}
    return {cid: (f.result(), str(t)) for cid, f in futures.items()}


@pytest.mark.parametrize("cid, cmd, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_status_2(results, cid, cmd, args, expected):
  del cmd, args
  proc, t = results[cid]
  lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert len(lines) == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
  assert "error:" in lines[0]
  assert expected.format(t=t) in lines[0], lines[0]


def test_traceback_on_request(tmp_path):
  args = [f"--config={RREH}:bits=12.5"]
  assert "Traceback" in _run(MAIN, [*args, "--traceback"], str(tmp_path)).stderr
  env = dict(_env(), HASHJAX_TRACEBACK="1")
  proc = _run(MAIN, args, str(tmp_path), env=env)
  assert proc.returncode != 0 and "Traceback" in proc.stderr
  (tmp_path / "q.npz").write_bytes(b"x")
  proc = _run(SEARCH, ["--index=nope", f"--queries={tmp_path / 'q.npz'}", "--traceback"],
              str(tmp_path))
  assert "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_help_lists_flags_and_build(tmp_path):
  for cmd in (CONSOLE, MAIN):
    proc = _run(cmd, ["--help"], str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for flag in ("--config", "--workdir", "--[no]traceback"):
      assert flag in proc.stdout, (cmd, proc.stdout)
  proc = _run(SEARCH, ["--help"], str(tmp_path))
  assert proc.returncode == 0 and "build" in proc.stdout and "--index" in proc.stdout


def test_no_workdir_says_nothing_is_saved(tmp_path):
  # The warning comes first (before any work); the missing data file then ends the run.
  mirflickr = os.path.join(ROOT, "configs", "rreh_mirflickr.py")
  proc = _run(MAIN, [f"--config={mirflickr}:path={tmp_path}/nope.mat"], str(tmp_path))
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 2, proc.stderr
  assert lines[0] == ("hashjax: warning: no --workdir given: nothing (results, model, "
                      "checkpoints) will be saved.")
  assert lines[1].startswith("hashjax: error: data file not found") and "nope.mat" in lines[1]


@pytest.mark.parametrize("cid, workdir", [("rreh_constant_view", "const_rreh"),
                                         ("cmfh_constant_view", "const_cmfh")])
def test_constant_view_writes_no_results(results, cid, workdir):
  proc, t = results[cid]
  assert proc.returncode == 2
  assert not os.path.exists(os.path.join(t, workdir, "results.json"))
