"""coco_map (pycocotools) on the canvas set: perfect boxes score 1, shifted boxes less, nothing 0. Runs in the vision
venv with the other detection tests (pycocotools comes with the `detection` extra)."""

import torch

from hardmine.datasets.detection_canvases import coco_map, make_split
from hardmine.datasets.fashion_mnist import load_fashion_mnist


def test_coco_map_of_perfect_shifted_and_no_predictions():
    data = load_fashion_mnist()
    split = make_split(data.x_test[:200, 0], data.y_test[:200], count=20, seed=0)
    truth = split.targets()
    perfect = [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.ones(len(t["labels"]))} for t in truth]
    result = coco_map(split.coco, perfect)
    assert result["map"] == result["map50"] == 1.0
    assert result["map_small"] in (1.0, -1.0)  # -1: pycocotools' value when no object is small
    shifted = [{**p, "boxes": p["boxes"] + torch.tensor([3.0, 3.0, 3.0, 3.0])} for p in perfect]
    assert 0 < coco_map(split.coco, shifted)["map"] < 1.0
    none = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}] * 20
    assert coco_map(split.coco, none)["map"] == 0.0
