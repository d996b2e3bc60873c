"""Single-host behaviour of the multi-host helpers (jax.distributed is never started).

The environment parsing is tested here against a recording stand-in for
``jax.distributed.initialize``. Starting the runtime for real is tested in
tests/multihost/test_multihost_launch.py (explicit ``HASHJAX_*`` settings and a SLURM
environment: 2 processes on 127.0.0.1); Open MPI and TPU-VM detection cannot start
here, so only their dispatch is checked below.
"""

import socket

import jax
import numpy as np
import pytest

from hashjax import distributed

_LAUNCH_VARS = ("HASHJAX_COORDINATOR", "HASHJAX_NUM_PROCESSES", "HASHJAX_PROCESS_ID",
                "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


@pytest.fixture
def calls(monkeypatch):
  """Clean launch environment; records jax.distributed.initialize calls instead."""
  for k in _LAUNCH_VARS:
    monkeypatch.delenv(k, raising=False)
  monkeypatch.setattr(distributed, "_initialized", False)
  seen = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: seen.append(kw))
  return seen


def test_initialize_is_noop_on_one_host(calls):
  assert distributed.initialize() is False
  assert calls == []
  assert not distributed.is_multi_host()
  assert jax.process_count() == 1 and jax.process_index() == 0


@pytest.mark.parametrize("env", [
    {"SLURM_NTASKS": "1"}, {"OMPI_COMM_WORLD_SIZE": "1"},
    {"TPU_WORKER_HOSTNAMES": "localhost"},
    {"HASHJAX_COORDINATOR": "10.0.0.1:1234", "HASHJAX_NUM_PROCESSES": "1",
     "HASHJAX_PROCESS_ID": "0"}])
def test_initialize_skips_single_process_launchers(calls, monkeypatch, env):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  assert distributed.initialize() is False
  assert calls == []


@pytest.mark.parametrize("env", [
    {"OMPI_COMM_WORLD_SIZE": "2"}, {"TPU_WORKER_HOSTNAMES": "t1v-0,t1v-1,t1v-2,t1v-3"}])
def test_initialize_auto_detects_cluster_launchers(calls, monkeypatch, env):
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  assert distributed.initialize() is True
  assert calls == [{}]   # jax reads the cluster environment itself


@pytest.mark.parametrize("env,match", [
    ({"HASHJAX_PROCESS_ID": "0"}, "HASHJAX_NUM_PROCESSES must be set"),
    ({"HASHJAX_NUM_PROCESSES": "two", "HASHJAX_PROCESS_ID": "0"}, "must be an integer"),
    ({"HASHJAX_NUM_PROCESSES": "2", "HASHJAX_PROCESS_ID": "2"},
     "process id 2 of 2 processes")])
def test_initialize_rejects_bad_explicit_settings(calls, monkeypatch, env, match):
  monkeypatch.setenv("HASHJAX_COORDINATOR", "10.0.0.1:1234")
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  with pytest.raises(ValueError, match=match):
    distributed.initialize()
  assert calls == []


@pytest.mark.parametrize("coord", ["10.0.0.1", "10.0.0.1:", ":1234", "host:0",
                                   "host:65536", "host:12ab"])
def test_initialize_rejects_a_bad_coordinator_address(calls, monkeypatch, coord):
  monkeypatch.setenv("HASHJAX_COORDINATOR", coord)
  monkeypatch.setenv("HASHJAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("HASHJAX_PROCESS_ID", "1")
  with pytest.raises(ValueError, match="must be host:port"):
    distributed.initialize()
  assert calls == []


def _listening_socket():
  s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gRPC's listener does
  s.bind(("127.0.0.1", 0))
  s.listen()
  return s


def test_process_zero_refuses_a_port_in_use(calls, monkeypatch):
  """Something listens on the coordinator port: process 0 says so before JAX starts
  (the coordinator service would only log it and leave every process waiting)."""
  with _listening_socket() as s:
    port = s.getsockname()[1]
    monkeypatch.setenv("HASHJAX_COORDINATOR", f"[::1]:{port}")
    monkeypatch.setenv("HASHJAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("HASHJAX_PROCESS_ID", "0")
    with pytest.raises(ValueError, match=f"port {port} is already in use on this host"):
      distributed.initialize()
    assert calls == []
    # Another process only connects to the port: no check, JAX is called.
    monkeypatch.setenv("HASHJAX_PROCESS_ID", "1")
    assert distributed.initialize() is True
  assert calls == [{"coordinator_address": f"[::1]:{port}", "num_processes": 2,
                    "process_id": 1}]


def test_process_zero_accepts_a_port_left_in_time_wait(calls, monkeypatch):
  """A relaunch on the port of a finished run (its connections in TIME_WAIT) works."""
  # (Without SO_REUSEADDR on the probe, this bind would fail for ~60 s.)
  with _listening_socket() as srv:
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()              # the server side closes first: TIME_WAIT on `port`
    cli.close()
  monkeypatch.setenv("HASHJAX_COORDINATOR", f"127.0.0.1:{port}")
  monkeypatch.setenv("HASHJAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("HASHJAX_PROCESS_ID", "0")
  assert distributed.initialize() is True
  assert len(calls) == 1


def test_host_shard_on_one_process_returns_everything():
  idx = np.random.default_rng(0).permutation(37)   # any length divides by 1
  np.testing.assert_array_equal(distributed.host_shard(idx), idx)


@pytest.mark.parametrize("count", [2, 3, 4, 6])
def test_host_shards_are_disjoint_and_cover_the_batch(monkeypatch, count):
  idx = np.random.default_rng(count).permutation(1000)[:24]
  parts = []
  for p in range(count):
    # As each host would see it: jax reports this host's index and the host count.
    monkeypatch.setattr(jax, "process_index", lambda p=p: p)
    monkeypatch.setattr(jax, "process_count", lambda: count)
    parts.append(distributed.host_shard(idx))
  per = 24 // count
  for p, part in enumerate(parts):   # reference: contiguous blocks by hand
    np.testing.assert_array_equal(part, [idx[i] for i in range(p * per, (p + 1) * per)])
  flat = np.concatenate(parts)
  np.testing.assert_array_equal(flat, idx)            # in process order
  assert len(set(flat.tolist())) == 24                # disjoint


def test_host_shard_explicit_arguments_match_block_split():
  idx = np.arange(12) * 10
  parts = [distributed.host_shard(idx, process_index=p, process_count=3)
           for p in range(3)]
  assert [p.tolist() for p in parts] == [[0, 10, 20, 30], [40, 50, 60, 70],
                                         [80, 90, 100, 110]]


@pytest.mark.parametrize("kw,arg,match", [
    (dict(process_index=0, process_count=5), np.arange(12),
     "do not split evenly over 5 hosts"),
    (dict(process_index=3, process_count=3), np.arange(12), "got 3 of 3"),
    (dict(process_index=0, process_count=1), np.zeros((2, 2)), r"1-D \[n\]")])
def test_host_shard_rejects_bad_inputs(kw, arg, match):
  with pytest.raises(ValueError, match=match):
    distributed.host_shard(arg, **kw)


@pytest.mark.parametrize("n, procs", [(10, 3), (7, 2), (4, 4), (90, 2)])
def test_host_rows_blocks_cover_every_row_once(n, procs):
  blocks = [distributed.host_rows(n, process_index=p, process_count=procs)
            for p in range(procs)]
  rows = np.concatenate([np.arange(n)[b] for b in blocks])
  np.testing.assert_array_equal(rows, np.arange(n))
  sizes = [b.stop - b.start for b in blocks]
  assert max(sizes) - min(sizes) <= 1
  assert distributed.host_rows(n) == slice(0, n)          # one process: everything
  with pytest.raises(ValueError, match="process_index"):
    distributed.host_rows(n, process_index=procs, process_count=procs)


def test_allgather_exact_and_exchange_on_one_process():
  x = np.asarray([1.0 + 2.0 ** -50, -3.0])              # float64 bits must survive
  got = distributed.allgather_exact(x)
  assert got.shape == (1, 2) and got.dtype == np.float64
  np.testing.assert_array_equal(got[0], x)
  assert distributed.exchange({"a": [1, 2], "b": None}) == [{"a": [1, 2], "b": None}]
