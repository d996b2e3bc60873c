"""Image-text data: COCO json layout (real fixture) and the DCGH .mat layout."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import scipy.io

from hashjax.data import ImageTextData, coco_mini_root, load_coco, load_standard_layout

COCO_MINI = coco_mini_root()


def _hand_count(split):
  """Labels and captions straight from the json files, by image file name."""
  with open(COCO_MINI / "annotations" / f"instances_{split}.json") as f:
    inst = json.load(f)
  with open(COCO_MINI / "annotations" / f"captions_{split}.json") as f:
    caps = json.load(f)
  cat_ids = sorted(c["id"] for c in inst["categories"])
  name_of = {im["id"]: im["file_name"] for im in inst["images"]}
  labels, captions = {}, {}
  for a in inst["annotations"]:
    row = labels.setdefault(name_of[a["image_id"]], np.zeros(80, np.uint8))
    row[cat_ids.index(a["category_id"])] = 1
  for a in caps["annotations"]:
    captions.setdefault(name_of[a["image_id"]], []).append(a["caption"].strip())
  return labels, captions, sorted(name_of, key=lambda i: i), name_of


@pytest.mark.parametrize("split, n", [("train2017", 16), ("val2017", 8)])
def test_coco_fixture_labels(split, n):
  data = load_coco(COCO_MINI, split)
  labels, captions, ids, name_of = _hand_count(split)
  assert data.num_items == n and data.num_classes == 80
  assert data.labels.dtype == np.uint8
  assert data.class_names[0] == "person" and data.class_names[-1] == "toothbrush"
  names = [pathlib.Path(p).name for p in data.image_paths]
  assert names == [name_of[i] for i in ids]  # sorted by image id
  for k, nm in enumerate(names):
    np.testing.assert_array_equal(data.labels[k], labels[nm])
    assert list(data.captions[k]) == captions[nm]
    assert pathlib.Path(data.image_paths[k]).is_file()
  assert data.labels.sum(1).min() >= 1
  assert all(len(c) >= 5 for c in data.captions)


def test_coco_fixture_hand_checked_item():
  data = load_coco(COCO_MINI, "train2017")
  k = [pathlib.Path(p).name for p in data.image_paths].index("000000030752.jpg")
  assert "A man and his dog cross country skiing." in data.captions[k]
  # Category id 1 (person) -> column 0, id 18 (dog) -> column 16, id 35 (skis) -> 30.
  assert data.labels[k, 0] == 1 and data.labels[k, 16] == 1 and data.labels[k, 30] == 1


def test_coco_concatenated_splits():
  both = load_coco(COCO_MINI, ("train2017", "val2017"))
  train, val = load_coco(COCO_MINI, "train2017"), load_coco(COCO_MINI, "val2017")
  assert both.num_items == 24
  assert both.image_paths == train.image_paths + val.image_paths
  np.testing.assert_array_equal(both.labels, np.concatenate([train.labels, val.labels]))


def _copy_fixture(tmp_path):
  root = tmp_path / "coco"
  shutil.copytree(COCO_MINI, root)
  return root


def _edit_json(path, fn):
  with open(path) as f:
    data = json.load(f)
  fn(data)
  with open(path, "w") as f:
    json.dump(data, f)


def test_coco_unlabeled_and_missing_images(tmp_path):
  root = _copy_fixture(tmp_path)
  src = next((root / "val2017").glob("*.jpg"))
  shutil.copyfile(src, root / "val2017" / "999999999999.jpg")
  extra = {"id": 999999999999, "file_name": "999999999999.jpg", "license": 1,
           "height": 1, "width": 1}
  missing = {**extra, "id": 5, "file_name": "000000000005.jpg"}
  def add_captions(d):
    d["images"] += [extra, missing]
    d["annotations"] += [{"image_id": 999999999999, "id": 1, "caption": " A cat. "},
                         {"image_id": 5, "id": 2, "caption": "Gone."}]
  def add_missing_label(d):
    d["images"] += [extra, missing]
    d["annotations"].append({"image_id": 5, "id": 3, "category_id": 90,
                             "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0})
  _edit_json(root / "annotations" / "captions_val2017.json", add_captions)
  _edit_json(root / "annotations" / "instances_val2017.json", add_missing_label)

  with pytest.raises(ValueError, match="1 of 9 image files are missing"):
    load_coco(root, "val2017")
  data = load_coco(root, "val2017", missing_images="drop")
  assert data.num_items == 8  # unlabelled item dropped, missing one dropped
  data = load_coco(root, "val2017", drop_unlabeled=False, missing_images="drop")
  assert data.num_items == 9
  assert data.image_paths[-1].endswith("999999999999.jpg")
  assert data.captions[-1] == ("A cat.",)
  assert data.labels[-1].sum() == 0
  data = load_coco(root, "val2017", missing_images="ignore")
  assert data.image_paths[0].endswith("000000000005.jpg")
  assert data.labels[0, 79] == 1  # category 90 (toothbrush) -> last column


def test_coco_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="COCO root folder not found"):
    load_coco(tmp_path / "none")
  with pytest.raises(FileNotFoundError, match="instances_test2017.json"):
    load_coco(COCO_MINI, "test2017")
  root = _copy_fixture(tmp_path)
  _edit_json(root / "annotations" / "instances_train2017.json",
             lambda d: d["annotations"].append(
                 {"image_id": 1, "id": 1, "category_id": 12}))
  with pytest.raises(ValueError, match="category_id 12, which is not in the categor"):
    load_coco(root, "train2017")
  with pytest.raises(ValueError, match="missing_images must be one of"):
    load_coco(COCO_MINI, "val2017", missing_images="skip")


# ----------------------------------------------------------------------------
# DCGH / DCHMT layout: fixtures written the way the reference make_*.py scripts do.
# ----------------------------------------------------------------------------


def _touch_images(folder, names):
  for nm in names:
    p = folder / nm
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\xff\xd8\xff")


def test_standard_layout_mirflickr(tmp_path):
  names = ["mirflickr/im1.jpg", "mirflickr/im10.jpg", "mirflickr/im100.jpg"]
  _touch_images(tmp_path, names)
  tags = ["sky clouds sunset", "dog", ""]
  labels = [np.eye(24)[0], np.eye(24)[3] + np.eye(24)[5], np.eye(24)[23]]
  scipy.io.savemat(tmp_path / "index.mat", {"index": names})
  scipy.io.savemat(tmp_path / "caption.mat", {"caption": [[t] for t in tags]})
  scipy.io.savemat(tmp_path / "label.mat", {"category": labels})
  data = load_standard_layout(tmp_path, dataset="mirflickr")
  assert data.name == "mirflickr" and data.num_items == 3
  assert data.image_paths == tuple(str(tmp_path / nm) for nm in names)
  assert data.captions == (("sky clouds sunset",), ("dog",), ("",))
  np.testing.assert_array_equal(data.labels, np.array(labels, np.uint8))
  assert data.labels.dtype == np.uint8


def test_standard_layout_absolute_paths_and_prefix(tmp_path):
  old = "/home/someone/archive/mirflickr"
  scipy.io.savemat(tmp_path / "index.mat",
                   {"index": [f"{old}/im1.jpg", f"{old}/im22.jpg"]})
  scipy.io.savemat(tmp_path / "caption.mat", {"caption": [["a"], ["b c"]]})
  scipy.io.savemat(tmp_path / "label.mat", {"category": np.eye(2)})
  with pytest.raises(ValueError, match="2 of 2 image files are missing"):
    load_standard_layout(tmp_path, dataset="mirflickr")
  data = load_standard_layout(tmp_path, dataset="mirflickr", missing_images="ignore")
  assert data.image_paths == (f"{old}/im1.jpg", f"{old}/im22.jpg")
  images = tmp_path / "imgs"
  _touch_images(images, ["im1.jpg", "im22.jpg"])
  data = load_standard_layout(tmp_path, dataset="mirflickr", image_root=images,
                              strip_prefix=old)
  assert data.image_paths == (str(images / "im1.jpg"), str(images / "im22.jpg"))


@pytest.mark.parametrize("ragged", [True, False])
def test_standard_layout_coco_cells(tmp_path, ragged):
  names = ["train2017/000000000009.jpg", "train2017/000000000025.jpg",
           "val2017/000000000139.jpg"]
  _touch_images(tmp_path, names)
  caps = [[f"item {i} caption {j}" for j in range(5 + (i == 1 and ragged))]
          for i in range(3)]
  cell = np.empty(3, object) if ragged else np.array(caps, dtype=object)
  if ragged:
    for i, c in enumerate(caps):
      cell[i] = c
  labels = np.zeros((3, 80), np.int64)
  labels[0, [0, 50]] = 1
  labels[1, 79] = 1
  labels[2, [2, 3, 4]] = 1
  scipy.io.savemat(tmp_path / "index.mat", {"index": names})
  scipy.io.savemat(tmp_path / "caption.mat", {"caption": cell})
  scipy.io.savemat(tmp_path / "label.mat", {"category": labels})
  data = load_standard_layout(tmp_path, dataset="coco")
  assert data.captions == tuple(tuple(c) for c in caps)
  assert len(data.captions[1]) == (6 if ragged else 5)
  np.testing.assert_array_equal(data.labels, labels)


def test_standard_layout_nuswide(tmp_path):
  names = [f"Flickr/actor/{i}.jpg" for i in range(4)]
  _touch_images(tmp_path, names)
  (tmp_path / "caption.txt").write_text("a b\nc\n123456\nd e f\n", encoding="utf-8")
  labels = np.zeros((4, 21), np.int8)
  labels[np.arange(4), [0, 5, 20, 5]] = 1
  scipy.io.savemat(tmp_path / "index.mat", {"index": names})
  scipy.io.savemat(tmp_path / "label.mat", {"category": labels})
  data = load_standard_layout(tmp_path, dataset="nuswide")
  assert data.captions == (("a b",), ("c",), ("123456",), ("d e f",))
  np.testing.assert_array_equal(data.labels, labels)
  sub = data.subset(np.array([3, 1]))
  assert sub.captions == (("d e f",), ("c",))
  assert sub.image_paths == (data.image_paths[3], data.image_paths[1])


def test_standard_layout_errors(tmp_path):
  names = ["a.jpg", "b.jpg", "c.jpg"]
  _touch_images(tmp_path, names)
  scipy.io.savemat(tmp_path / "index.mat", {"index": names})
  scipy.io.savemat(tmp_path / "caption.mat", {"caption": [["x"], ["y"], ["z"]]})
  scipy.io.savemat(tmp_path / "label.mat", {"labels": np.eye(3)})
  with pytest.raises(ValueError,
                     match=r"no key 'category'.*keys present: \['labels'\]"):
    load_standard_layout(tmp_path, dataset="mirflickr")
  scipy.io.savemat(tmp_path / "label.mat", {"category": np.eye(3)[:2]})
  with pytest.raises(ValueError, match=r"shape \(2, 3\), expected \[3, C\]"):
    load_standard_layout(tmp_path, dataset="mirflickr")
  scipy.io.savemat(tmp_path / "label.mat", {"category": 2 * np.eye(3)})
  with pytest.raises(ValueError, match="multi-hot labels must be 0 or 1"):
    load_standard_layout(tmp_path, dataset="mirflickr")
  scipy.io.savemat(tmp_path / "label.mat", {"category": np.eye(3)})
  scipy.io.savemat(tmp_path / "caption.mat", {"caption": [["x"], ["y"]]})
  with pytest.raises(ValueError, match=r"'caption' has shape \(2, 1\), expected 3"):
    load_standard_layout(tmp_path, dataset="mirflickr")
  (tmp_path / "caption.txt").write_text("x\ny\n")
  with pytest.raises(ValueError, match="has 2 lines but index.mat lists 3 images"):
    load_standard_layout(tmp_path, dataset="nuswide")
  with pytest.raises(ValueError, match="dataset must be one of"):
    load_standard_layout(tmp_path, dataset="flickr")
  with pytest.raises(FileNotFoundError, match="data folder not found"):
    load_standard_layout(tmp_path / "none", dataset="coco")
  (tmp_path / "index.mat").unlink()
  with pytest.raises(FileNotFoundError, match="index.mat"):
    load_standard_layout(tmp_path, dataset="coco")


def test_image_text_data_validation():
  ok = dict(image_paths=("a.jpg", "b.jpg"), captions=(("x",), ("y", "z")),
            labels=np.array([[1, 0], [1, 1]]))
  data = ImageTextData(**ok)
  assert data.num_items == 2 and data.num_classes == 2
  assert data.labels.dtype == np.uint8
  with pytest.raises(ValueError, match="2 image paths but 1 caption lists"):
    ImageTextData(**{**ok, "captions": (("x",),)})
  with pytest.raises(ValueError, match=r"captions\[1\] must hold one or more"):
    ImageTextData(**{**ok, "captions": (("x",), ())})
  with pytest.raises(ValueError, match=r"captions\[0\] must be a sequence"):
    ImageTextData(**{**ok, "captions": ("x", ("y",))})
  with pytest.raises(ValueError, match="multi-hot"):
    ImageTextData(**{**ok, "labels": np.array([[2, 0], [1, 1]])})
  with pytest.raises(ValueError, match="labels has 3 rows but 2 items"):
    ImageTextData(**{**ok, "labels": np.eye(3)})
  with pytest.raises(ValueError, match="at least one item"):
    ImageTextData(image_paths=(), captions=(), labels=np.zeros((0, 2)))
  with pytest.raises(ValueError, match="3 class names for 2 label columns"):
    ImageTextData(**ok, class_names=("a", "b", "c"))
  with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\)"):
    data.subset(np.array([2]))
  with pytest.raises(ValueError, match="non-empty 1-D integer"):
    data.subset(np.array([], np.int64))
