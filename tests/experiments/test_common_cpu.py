"""experiments/_common.cpu: the CPU line every benchmark report carries."""

import experiment_scripts

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vpopcntdq
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vpopcntdq
"""
AVX2 = "model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu sse2 avx avx2 fma\n"
OLD = "model name\t: QEMU Virtual CPU\nflags\t\t: fpu sse2\n"


def test_cpu_names_the_model_and_the_widest_popcount_level(tmp_path):
  mod = experiment_scripts.load("_common.py")
  got = {}
  for name, text in (("zen4", ZEN4), ("avx2", AVX2), ("old", OLD)):
    path = tmp_path / name
    path.write_text(text)
    got[name] = mod.cpu(str(path))
  assert got == {"zen4": "AMD EPYC 9R14, avx512_vpopcntdq",
                 "avx2": "Intel(R) Xeon(R) CPU @ 2.20GHz, avx2",
                 "old": "QEMU Virtual CPU, no avx2"}
  # No cpuinfo (macOS, Windows): the platform's own word, never an exception.
  assert isinstance(mod.cpu(str(tmp_path / "missing")), str)
  assert "cpu" in mod.environment()
