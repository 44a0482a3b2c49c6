"""The Fashion-MNIST canvas detection set: seeded, boxes on the pasted items, COCO fields, files written and read."""

import json

import numpy as np
import pytest

from hardmine.datasets.detection_canvases import main, make_detection_set, make_split
from hardmine.datasets.fashion_mnist import load_fashion_mnist


@pytest.fixture(scope="module")
def items():
    data = load_fashion_mnist()
    return data.x_train[:300, 0], data.y_train[:300]


def test_a_split_is_seeded_and_its_boxes_cover_bright_pixels(items):
    split = make_split(*items, count=30, seed=4)
    assert split.images.shape == (30, 128, 128) and split.images.dtype == np.uint8
    assert np.array_equal(split.images, make_split(*items, count=30, seed=4).images)
    assert not np.array_equal(split.images, make_split(*items, count=30, seed=5).images)
    per_image = np.bincount([a["image_id"] for a in split.coco["annotations"]], minlength=30)
    assert per_image.min() >= 1 and per_image.max() <= 6
    for a in split.coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128 and w >= 2 and h >= 2
        assert a["area"] == w * h and 1 <= a["category_id"] <= 10 and a["iscrowd"] == 0
        inside = split.images[a["image_id"], y:y + h, x:x + w]
        assert inside.max() > 0.3 * 255  # the item is there (noise stays below 0.15)
        for edge in (inside[0], inside[-1], inside[:, 0], inside[:, -1]):
            assert edge.max() > 0.05 * 255 * 0.5  # the box is tight: every edge touches the item
    targets = split.targets()
    assert len(targets) == 30 and sum(len(t["boxes"]) for t in targets) == len(split.coco["annotations"])
    first = split.coco["annotations"][0]
    x, y, w, h = first["bbox"]
    assert targets[first["image_id"]]["boxes"][0].tolist() == [x, y, x + w, y + h]


def test_bad_arguments_are_named(items):
    with pytest.raises(ValueError, match="count must be >= 1"):
        make_split(*items, count=0, seed=0)
    with pytest.raises(ValueError, match="items must be"):
        make_split(items[0][:, :10], items[1], count=2, seed=0)
    with pytest.raises(ValueError, match="sizes must name exactly"):
        make_detection_set({"train": 2}, seed=0)


def test_the_script_writes_the_splits(tmp_path, capsys):
    main([str(tmp_path), "--train", "6", "--val", "3", "--test", "4", "--seed", "1"])
    expected = make_detection_set({"train": 6, "val": 3, "test": 4}, seed=1)
    for name, split in expected.items():
        assert np.array_equal(np.load(tmp_path / f"{name}.npy", allow_pickle=False), split.images)
        assert json.loads((tmp_path / f"{name}.json").read_text()) == split.coco
    assert "test.json" in capsys.readouterr().out
