"""Tests of hashjax.plotting: lines hold exactly the given data, PNGs are written."""

import matplotlib.image
import numpy as np
import pytest

from hashjax import plotting

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == _PNG_MAGIC
  img = matplotlib.image.imread(str(path))
  assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
  # Not a blank canvas: something was drawn.
  assert img[..., :3].std() > 0.01


def test_pr_curve_lines_match_input(tmp_path):
  bits = 8
  recall_a = np.linspace(0.0, 1.0, bits + 1)
  precision_a = 1.0 - 0.5 * recall_a
  recall_b = np.sqrt(np.linspace(0.0, 1.0, bits + 1))
  precision_b = np.full(bits + 1, 0.3)
  path = tmp_path / "sub" / "pr.png"
  fig = plotting.pr_curve({"a": (precision_a, recall_a), "b": (precision_b, recall_b)},
                          title="PR", path=path)
  (ax,) = fig.axes
  assert len(ax.lines) == 2
  # x = recall, y = precision, in the mapping's order.
  np.testing.assert_allclose(ax.lines[0].get_xydata(),
                             np.stack([recall_a, precision_a], 1))
  np.testing.assert_allclose(ax.lines[1].get_xydata(),
                             np.stack([recall_b, precision_b], 1))
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
  assert ax.get_title() == "PR"
  _assert_png(path)


def test_precision_at_top_r_lines_match_input(tmp_path):
  rs = np.array([10, 50, 100, 500])
  curves = {"RREH": (rs, [0.9, 0.8, 0.7, 0.5]), "CMFH": (rs, [0.6, 0.6, 0.5, 0.4]),
            "CVH": (list(rs), (0.5, 0.4, 0.3, 0.2))}
  fig = plotting.precision_at_topR_curve(curves, path=tmp_path / "p.png")
  ax = fig.axes[0]
  assert len(ax.lines) == 3
  for line, (r, p) in zip(ax.lines, curves.values()):
    np.testing.assert_allclose(line.get_xydata(), np.stack([r, p], 1).astype(float))
  _assert_png(tmp_path / "p.png")


def test_map_vs_lines_and_std_bands(tmp_path):
  x = [16, 32, 64, 128]
  means_a = np.array([0.2, 0.25, 0.3, 0.32])
  stds_a = np.array([0.01, 0.02, 0.0, 0.03])
  means_b = np.array([0.1, 0.15, 0.2, 0.22])
  fig = plotting.map_vs(x, {"a": (means_a, stds_a), "b": (means_b, None)}, "bits",
                        logx=True, path=tmp_path / "m.png")
  ax = fig.axes[0]
  # One line per label (bands are polygons, not lines).
  assert len(ax.lines) == 2
  np.testing.assert_allclose(ax.lines[0].get_xydata(), np.stack([x, means_a], 1))
  np.testing.assert_allclose(ax.lines[1].get_xydata(), np.stack([x, means_b], 1))
  # Exactly one band (label "b" has no stds), spanning means -+ stds.
  assert len(ax.collections) == 1
  verts = ax.collections[0].get_paths()[0].vertices
  np.testing.assert_allclose(verts[:, 1].min(), (means_a - stds_a).min())
  np.testing.assert_allclose(verts[:, 1].max(), (means_a + stds_a).max())
  np.testing.assert_allclose(ax.get_xticks(), x)
  assert ax.get_xlabel() == "bits" and ax.get_xscale() == "log"
  _assert_png(tmp_path / "m.png")


def test_training_curves_one_panel_per_name(tmp_path):
  curves = {"loss": (np.arange(1, 11), np.linspace(2.0, 1.0, 10)),
            "lr": ([1, 2, 3], [0.0, 1e-3, 5e-4]),
            "val mAP": ([5, 10], [0.3, 0.4]),
            "query mAP": ([5, 10], [0.31, 0.38])}
  fig = plotting.training_curves(curves, title="DCGH", ncols=3,
                                 path=tmp_path / "t.png")
  # 2 x 3 grid, the two unused cells removed.
  assert len(fig.axes) == 4
  for ax, (name, (steps, values)) in zip(fig.axes, curves.items()):
    assert len(ax.lines) == 1
    assert ax.get_title() == name
    np.testing.assert_allclose(ax.lines[0].get_xydata(),
                               np.stack([steps, values], 1).astype(float))
  _assert_png(tmp_path / "t.png")


def test_objective_curve_skips_unreached_iterations(tmp_path):
  objective = np.array([10.0, 7.5, 7.0, 6.9, -1.0, -1.0], np.float32)
  fig = plotting.objective_curve(objective, logy=True, path=tmp_path / "o.png")
  (line,) = fig.axes[0].lines
  # Hand-worked: iterations 1..4 were reached, 5 and 6 hold the -1 sentinel.
  np.testing.assert_allclose(line.get_xydata(),
                             [[1, 10.0], [2, 7.5], [3, 7.0], [4, 6.9]], rtol=1e-6)
  assert fig.axes[0].get_yscale() == "log"
  _assert_png(tmp_path / "o.png")


def test_no_path_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  plotting.pr_curve({"a": ([1.0, 0.5], [0.0, 1.0])})
  plotting.objective_curve([3.0, 2.0])
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: plotting.pr_curve({}), "non-empty mapping"),
        (lambda: plotting.pr_curve({"a": ([1.0, 0.5], [0.0])}), r"\(1,\)"),
        (lambda: plotting.pr_curve({"a": ([1.0], [0.0], [2.0])}), "length 3"),
        (lambda: plotting.precision_at_topR_curve({"a": ([[1.0]], [[0.0]])}), "1-D"),
        (lambda: plotting.map_vs([1, 2], {"a": ([0.1], None)}, "x"), "x_values"),
        (lambda: plotting.map_vs([1, 2], {"a": ([0.1, 0.2], [0.1])}, "x"), "stds"),
        (lambda: plotting.map_vs([1, 2], {"a": ([0.1, 0.2], [0.1, -0.1])}, "x"),
         ">= 0"),
        (lambda: plotting.training_curves({"loss": ([1, 2], [1.0])}), "steps"),
        (lambda: plotting.objective_curve([-1.0, -1.0]), "no reached iteration"),
    ],
)
def test_bad_inputs_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_map_matrix_holds_values_and_blanks_diagonal(tmp_path):
  mat = np.array([[np.nan, 0.5, 0.25],
                  [0.4, np.nan, 0.125],
                  [0.3, 0.2, np.nan]])
  fig = plotting.map_matrix(mat, ["a", "b", "c"], path=tmp_path / "h.png")
  ax = fig.axes[0]
  arr = ax.images[0].get_array()
  np.testing.assert_array_equal(np.ma.getmaskarray(arr), np.eye(3, dtype=bool))
  np.testing.assert_allclose(arr.compressed(), [0.5, 0.25, 0.4, 0.125, 0.3, 0.2])
  assert sorted(t.get_text() for t in ax.texts) == sorted(
      ["0.500", "0.250", "0.400", "0.125", "0.300", "0.200"])
  assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
  _assert_png(tmp_path / "h.png")
  with pytest.raises(ValueError, match="square"):
    plotting.map_matrix(np.zeros((2, 3)), ["a", "b"])
  with pytest.raises(ValueError, match="2 names"):
    plotting.map_matrix(np.zeros((3, 3)), ["a", "b"])
