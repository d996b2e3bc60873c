"""End to end: ``python -m hashjax.search build`` then queries, in tmp_path."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hashjax import search as search_cli


def brute_force(db, q, k):
  dist = np.count_nonzero(q[:, None, :] != db[None, :, :], axis=-1)
  pos = np.broadcast_to(np.arange(db.shape[0]), dist.shape)
  order = np.lexsort((pos, dist), axis=-1)[:, :k]
  return np.take_along_axis(dist, order, axis=1), order


@pytest.fixture
def files(tmp_path, np_rng):
  bits = 40
  db = np_rng.choice(np.array([-1, 1], np.int8), size=(200, bits))
  db[50:80] = db[0]
  q = np_rng.choice(np.array([-1, 1], np.int8), size=(11, bits))
  q[0] = db[0]
  ids = np.arange(200, dtype=np.int64) + 5000
  np.savez(tmp_path / "db.npz", codes=db, ids=ids, bits=np.int64(bits),
           labels=np.zeros((200, 3), np.uint8), modality=np.array("image"))
  np.savez(tmp_path / "q.npz", codes=q, bits=np.int64(bits))
  return tmp_path, db, q, ids


def test_build_and_query(files, capsys):
  tmp, db, q, ids = files
  assert search_cli.main(["build", f"--codes={tmp / 'db.npz'}",
                          f"--out={tmp / 'db.hjx'}"]) == 0
  assert "200 items x 40 bits" in capsys.readouterr().out
  assert search_cli.main([f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'q.npz'}",
                          "--k=25", f"--out={tmp / 'knn.npz'}", "--query_chunk_size=4",
                          "--chunk_size=32"]) == 0
  ref_d, ref_i = brute_force(db, q, 25)
  with np.load(tmp / "knn.npz") as out:
    np.testing.assert_array_equal(out["ids"], ids[ref_i])
    np.testing.assert_array_equal(out["distances"], ref_d)
    assert int(out["k"]) == 25
  assert "11 queries against 200 items" in capsys.readouterr().out

  # Radius mode, packed queries file.
  from hashjax import index as hindex  # pylint: disable=g-import-not-at-top
  np.savez(tmp / "qp.npz", packed=hindex.pack_host(q), bits=np.int64(40))
  assert search_cli.main([f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'qp.npz'}",
                          "--radius=12", f"--out={tmp / 'rad.npz'}"]) == 0
  dist = np.count_nonzero(q[:, None, :] != db[None, :, :], axis=-1)
  with np.load(tmp / "rad.npz") as out:
    np.testing.assert_array_equal(out["counts"], np.sum(dist <= 12, axis=1))
    for j in range(11):
      hits = np.nonzero(dist[j] <= 12)[0]
      hits = hits[np.argsort(dist[j, hits], kind="stable")]
      np.testing.assert_array_equal(out["ids"][j, :len(hits)], ids[hits])
      np.testing.assert_array_equal(out["distances"][j, :len(hits)], dist[j, hits])


def test_cli_errors(files):
  tmp, _, q, _ = files
  search_cli.main(["build", f"--codes={tmp / 'db.npz'}", f"--out={tmp / 'db.hjx'}"])
  np.savez(tmp / "q32.npz", codes=q[:, :32])
  with pytest.raises(ValueError, match="32-bit codes but the index has 40 bits"):
    search_cli.main([f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'q32.npz'}"])
  with pytest.raises(ValueError, match="expected 64"):
    search_cli.main([f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'q.npz'}",
                     "--bits=64"])
  np.savez(tmp / "bad.npz", packed=np.zeros((2, 2), np.uint32))
  with pytest.raises(ValueError, match="need a 'bits' entry"):
    search_cli.main([f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'bad.npz'}"])


def test_subprocess_module_entry(files):
  tmp, db, q, ids = files
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  run = lambda *a: subprocess.run([sys.executable, "-m", "hashjax.search", *a],
                                  capture_output=True, text=True, env=env, timeout=120)
  search_cli.main(["build", f"--codes={tmp / 'db.npz'}", f"--out={tmp / 'db.hjx'}"])
  r = run(f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'q.npz'}", "--k=3")
  assert r.returncode == 0, r.stderr
  assert "batch" in r.stderr  # the tqdm progress bar
  ref_d, ref_i = brute_force(db, q, 3)
  assert f"query 0: ids {ids[ref_i[0]].tolist()} distances {ref_d[0].tolist()}" in r.stdout
  r = run(f"--index={tmp / 'db.hjx'}", f"--queries={tmp / 'q.npz'}", "--k=500")
  assert r.returncode == 2 and "error: k must be at most the index size 200" in r.stderr
