"""A small detection set from real images: Fashion-MNIST items pasted on grey canvases with clutter, COCO-format.

Each canvas (square, `canvas` pixels, default 128) holds 1-6 items at random scales (14 to 56 pixels) and positions,
over noise and unlabelled clutter (crops of other items). An item's box is the extent of its own non-zero pixels
after scaling; items may overlap (at most `max_overlap` IoU with an earlier box), so a box can be partly hidden.
Train and validation canvases take items from Fashion-MNIST's training images, test canvases from its test images:
no item is seen in two splits. Everything is drawn from one seed: the same seed gives the same set.

Run `python -m hardmine.datasets.detection_canvases OUT_DIR` to write `{split}.npy` (uint8 [n, canvas, canvas]) and
`{split}.json` (COCO: images, annotations with bbox [x, y, w, h] in pixels and area = w x h, categories 1-10).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hardmine._checks import check_int, check_number
from hardmine.datasets.fashion_mnist import CLASSES, load_fashion_mnist

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DetectionSplit:
    """One split: `images` uint8 [n, canvas, canvas] (grey), `coco` the COCO-format dict of its boxes."""

    images: np.ndarray
    coco: dict

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Every image's target as torchvision detectors take it: boxes float [k, 4] (x1, y1, x2, y2 in pixels,
        right and bottom edges exclusive) and labels int64 [k] in 1..10 (0 is background)."""
        per_image: list[list[dict]] = [[] for _ in range(len(self.images))]
        for a in self.coco["annotations"]:
            per_image[a["image_id"]].append(a)
        return [{"boxes": torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                                       dtype=torch.float32).reshape(-1, 4),
                 "labels": torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)} for anns in per_image]


def _scaled(item: np.ndarray, size: int) -> np.ndarray:
    """A 28x28 float item resized to size x size (bilinear, antialiased), values in [0, 1]."""
    x = torch.from_numpy(item)[None, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def _iou(a: list[int], b: list[int]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _canvas(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, canvas: int, max_items: int,
            max_overlap: float) -> tuple[np.ndarray, list[tuple[list[int], int]]]:
    """One canvas [canvas, canvas] float in [0, 1] and its (box x1, y1, x2, y2 exclusive, category) list."""
    image = rng.uniform(0.0, 0.15, size=(canvas, canvas)).astype(np.float32)
    for _ in range(int(rng.integers(1, 4))):  # clutter: a corner crop of another item, never labelled
        piece = _scaled(items[rng.integers(len(items))], int(rng.integers(14, 40)))
        h = int(rng.integers(4, max(5, piece.shape[0] // 3)))
        piece = piece[:h, :h] * 0.8
        y, x = (int(v) for v in rng.integers(0, canvas - h, size=2))
        image[y:y + h, x:x + h] = np.maximum(image[y:y + h, x:x + h], piece)
    placed: list[tuple[list[int], int]] = []
    for _ in range(int(rng.integers(1, max_items + 1))):
        for _attempt in range(10):
            k = int(rng.integers(len(items)))
            size = int(rng.integers(14, 57))
            item = _scaled(items[k], size)
            ys, xs = np.nonzero(item > 0.05)
            if len(ys) == 0:
                break
            y, x = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
            box = [x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1]
            if box[2] - box[0] < 2 or box[3] - box[1] < 2 or any(_iou(box, b) > max_overlap for b, _ in placed):
                continue
            image[y:y + size, x:x + size] = np.maximum(image[y:y + size, x:x + size], item)
            placed.append((box, int(labels[k]) + 1))
            break
    return image, placed


def make_split(items: np.ndarray, labels: np.ndarray, count: int, seed: int | np.random.SeedSequence, canvas: int = 128,
               max_items: int = 6, max_overlap: float = 0.3) -> DetectionSplit:
    """`count` canvases from `items` float [N, 28, 28] in [0, 1] with class `labels` int [N] (0-9), drawn from `seed`.

    Categories in the COCO dict are label + 1 (1..10; 0 is the detectors' background).
    """
    count = check_int("count", count, minimum=1)
    canvas = check_int("canvas", canvas, minimum=64)
    max_items = check_int("max_items", max_items, minimum=1)
    max_overlap = check_number("max_overlap", max_overlap, 0.0, 1.0)
    if items.ndim != 3 or items.shape[1:] != (28, 28) or len(items) != len(labels) or len(items) == 0:
        raise ValueError(f"items must be [N, 28, 28] with N = len(labels) > 0, got {items.shape} and {labels.shape}")
    rng = np.random.default_rng(seed)
    images = np.empty((count, canvas, canvas), dtype=np.uint8)
    coco: dict = {"images": [], "annotations": [],
                  "categories": [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]}
    for i in range(count):
        image, placed = _canvas(rng, items, labels, canvas, max_items, max_overlap)
        images[i] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        coco["images"].append({"id": i, "file_name": f"{i:06d}", "width": canvas, "height": canvas})
        for box, category in placed:
            w, h = box[2] - box[0], box[3] - box[1]
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i, "category_id": category,
                                        "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
    return DetectionSplit(images, coco)


def make_detection_set(sizes: dict[str, int] | None = None, seed: int = 0, canvas: int = 128,
                       data_dir: str | Path | None = None) -> dict[str, DetectionSplit]:
    """The train / val / test splits (default 2,000 / 300 / 500 canvases) from Fashion-MNIST, fixed by `seed`.

    Train and val draw items from Fashion-MNIST's training images, test from its test images.
    """
    sizes = {"train": 2000, "val": 300, "test": 500} if sizes is None else dict(sizes)
    if set(sizes) != set(SPLITS):
        raise ValueError(f"sizes must name exactly the splits {SPLITS}, got {sorted(sizes)}")
    data = load_fashion_mnist(data_dir)
    pools = {"train": (data.x_train, data.y_train), "val": (data.x_train, data.y_train),
             "test": (data.x_test, data.y_test)}
    seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {name: make_split(pools[name][0][:, 0], pools[name][1], sizes[name], s,
                             canvas=canvas) for name, s in zip(SPLITS, seeds)}


def coco_map(coco: dict, predictions: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """COCO box AP of `predictions` (one dict per image of `coco`, in order: boxes float [k, 4] x1, y1, x2, y2,
    scores [k], labels [k]) with pycocotools: {"map": AP@[.5:.95], "map50": AP@.5, "map_small": AP of objects of
    area < 32^2 pixels}. A value is -1 when the split has no object of that kind, as pycocotools reports it."""
    import contextlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(predictions) != len(coco["images"]):
        raise ValueError(f"predictions must hold one dict per image ({len(coco['images'])}), got {len(predictions)}")
    results = []
    for info, pred in zip(coco["images"], predictions):
        for (x1, y1, x2, y2), score, label in zip(pred["boxes"].tolist(), pred["scores"].tolist(),
                                                  pred["labels"].tolist()):
            results.append({"image_id": info["id"], "category_id": int(label), "score": float(score),
                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {**coco, "annotations": [dict(a) for a in coco["annotations"]]}
        truth.createIndex()
        if not results:
            return {"map": 0.0, "map50": 0.0, "map_small": 0.0}
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": float(evaluation.stats[0]), "map50": float(evaluation.stats[1]),
            "map_small": float(evaluation.stats[3])}


def write_detection_set(splits: dict[str, DetectionSplit], out_dir: str | Path) -> list[Path]:
    """Write each split as `{name}.npy` (images) and `{name}.json` (COCO), atomically; returns the paths."""
    from hardmine.atomic import write_bytes, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, split in splits.items():
        buffer = io.BytesIO()
        np.save(buffer, split.images, allow_pickle=False)
        write_bytes(out / f"{name}.npy", buffer.getvalue())
        write_json(out / f"{name}.json", split.coco)
        written += [out / f"{name}.npy", out / f"{name}.json"]
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: build the set and write it to a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--canvas", type=int, default=128)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST's idx files (default: Debian's place)")
    args = parser.parse_args(argv)
    splits = make_detection_set({"train": args.train, "val": args.val, "test": args.test}, args.seed, args.canvas,
                                args.data_dir)
    for path in write_detection_set(splits, args.out_dir):
        print(path)


if __name__ == "__main__":
    main()
