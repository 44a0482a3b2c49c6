"""Hard mining in torchvision's detectors on real images: COCO mAP of each strategy, several seeds, CPU-sized.

Faster R-CNN with torchvision's default RoI sampler vs OHEM vs PISA-style prime-sample weights, and SSD with every
anchor in the classification loss vs the ratio miner (3 negatives per positive). The data: Fashion-MNIST items on
128x128 canvases with clutter (`hardmine.datasets.detection_canvases`, seed 0), evaluated on the test canvases
(items from Fashion-MNIST's test images) with pycocotools. The detectors are small and trained from scratch
(weights=None): a 4-stage CNN backbone (stride 8; SSD adds a stride-16 map), the same number of steps, batch size
and learning rate for every arm. Each (arm, seed) is one process with one thread; `--jobs` run at once.

Printed: per arm mean and standard deviation over seeds of mAP@[.5:.95], mAP@.5 and AP of small objects; the
gain against the arm's baseline with a 95% t-interval over the paired seeds; training seconds; RoIs scored without
gradient (OHEM's extra head forward) and trained on, per image; the scoring pass's share of the training time.

Usage: python benchmarks/bench_detection.py [--seeds 3] [--steps 500] [--jobs 2] [--out build/bench_detection.json]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.ops import MultiScaleRoIAlign

from hardmine.atomic import write_json
from hardmine.datasets.detection_canvases import coco_map, make_detection_set
from hardmine.experiments.metrics import paired_interval
from hardmine.integrations.torchvision import OHEM, PrimeSample, RatioMiner, hard_mining, mining_stats

ARMS = {"frcnn-default": None, "frcnn-ohem": OHEM(), "frcnn-pisa": PrimeSample(),
        "ssd-all-anchors": RatioMiner(neg_pos_ratio=1e9), "ssd-ratio-3": RatioMiner(neg_pos_ratio=3.0)}
BASELINE = {"frcnn-ohem": "frcnn-default", "frcnn-pisa": "frcnn-default", "ssd-ratio-3": "ssd-all-anchors"}
CLASSES = 11  # background + 10 Fashion-MNIST classes
DATA: dict = {}


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Backbone(nn.Module):
    """Grey image [B, 1, H, W] -> {"0": [B, 64, H/8, W/8]} (+ "1": [B, 128, H/16, W/16] for SSD)."""

    def __init__(self, two_maps: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_block(1, 16, 2), *_block(16, 32, 2), *_block(32, 64, 2), *_block(64, 64, 1))
        self.down = nn.Sequential(*_block(64, 128, 2), *_block(128, 128, 1)) if two_maps else None
        self.out_channels = 64

    def forward(self, x: torch.Tensor) -> OrderedDict:
        first = self.stem(x)
        return OrderedDict([("0", first)] + ([("1", self.down(first))] if self.down is not None else []))


def faster_rcnn() -> FasterRCNN:
    anchors = AnchorGenerator(((12, 24, 48),), ((0.5, 1.0, 2.0),))
    return FasterRCNN(Backbone(False), None, min_size=128, max_size=128, image_mean=[0.5], image_std=[0.25],
                      rpn_anchor_generator=anchors, box_roi_pool=MultiScaleRoIAlign(["0"], 5, 2),
                      box_head=TwoMLPHead(64 * 5 * 5, 128), box_predictor=FastRCNNPredictor(128, CLASSES),
                      rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=150, rpn_pre_nms_top_n_test=150,
                      rpn_post_nms_top_n_test=100, box_batch_size_per_image=48, box_detections_per_img=50)


def ssd() -> SSD:
    anchors = DefaultBoxGenerator([[2], [2]], scales=[0.1, 0.25, 0.5])
    head = SSDHead([64, 128], anchors.num_anchors_per_location(), CLASSES)
    return SSD(Backbone(True), anchors, (128, 128), CLASSES, image_mean=[0.5], image_std=[0.25], head=head,
               detections_per_img=50, topk_candidates=200)


def run(job: tuple[str, int, int, int, float]) -> dict:
    """Train one arm with one seed; evaluate on the test canvases."""
    arm, seed, steps, batch, lr = job
    torch.set_num_threads(1)
    torch.manual_seed(seed)  # torchvision's own sampler and init draw from the global generator
    train, test = DATA["train"], DATA["test"]
    images = torch.from_numpy(train.images).float().div(255)[:, None]
    targets = train.targets()
    model = faster_rcnn() if arm.startswith("frcnn") else ssd()
    if ARMS[arm] is not None:
        model = hard_mining(model, ARMS[arm])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order = np.random.default_rng(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        idx = order.choice(len(images), size=batch, replace=False)
        losses = model(list(images[idx]), [targets[i] for i in idx])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        sched.step()
    train_seconds = time.perf_counter() - start
    model.eval()
    test_images = torch.from_numpy(test.images).float().div(255)[:, None]
    predictions = []
    with torch.no_grad():
        for i in range(0, len(test_images), 32):
            predictions += model(list(test_images[i:i + 32]))
    result = {"arm": arm, "seed": seed, "train_seconds": train_seconds, "final_loss": float(loss.detach()),
              **coco_map(test.coco, predictions)}
    if arm.startswith("frcnn") and ARMS[arm] is not None:
        stats = mining_stats(model)
        result |= {"scored_rois_per_image": stats["scored_rois_per_image"],
                   "trained_rois_per_image": stats["trained_rois_per_image"],
                   "scoring_share": stats["scoring_seconds"] / train_seconds}
    return result


def interval(gains: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 with one value): compare's `paired_interval`."""
    mean, _, high = paired_interval(gains, [0.0] * len(gains))
    return mean, (high - mean if len(gains) > 1 else 0.0)


def table(results: list[dict]) -> str:
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    lines = ["| arm | seeds | mAP@[.5:.95] | mAP@.5 | AP small | gain mAP vs baseline (95% CI) | train s | "
             "scored / trained RoIs per image | scoring share |", "|" + "---|" * 9]
    for arm in ARMS:
        runs = sorted(by_arm.get(arm, []), key=lambda r: r["seed"])
        if not runs:
            continue

        def cell(key: str) -> str:
            values = [100 * r[key] for r in runs]
            return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0:.1f}"

        gain = "baseline"
        if arm in BASELINE:
            base = {r["seed"]: r["map"] for r in by_arm.get(BASELINE[arm], [])}
            paired = [100 * (r["map"] - base[r["seed"]]) for r in runs if r["seed"] in base]
            if paired:
                mean, half = interval(paired)
                gain = f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"
        rois = (f"{statistics.fmean(r['scored_rois_per_image'] for r in runs):.0f} / "
                f"{statistics.fmean(r['trained_rois_per_image'] for r in runs):.0f}"
                if "scored_rois_per_image" in runs[0] else "-")
        share = (f"{100 * statistics.fmean(r['scoring_share'] for r in runs):.0f}%" if "scoring_share" in runs[0]
                 else "-")
        lines.append(f"| {arm} | {len(runs)} | {cell('map')} | {cell('map50')} | {cell('map_small')} | {gain} | "
                     f"{statistics.fmean(r['train_seconds'] for r in runs):.0f} | {rois} | {share} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", default="build/bench_detection.json")
    args = parser.parse_args()
    start = time.perf_counter()
    DATA.update(make_detection_set({"train": args.train, "val": 1, "test": args.test}, seed=0))
    print(f"data: {args.train} train / {args.test} test canvases in {time.perf_counter() - start:.0f} s", flush=True)
    jobs = [(arm, seed, args.steps, args.batch, args.lr) for seed in range(args.seeds) for arm in args.arms]
    results = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("fork").Pool(args.jobs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(run, jobs):
            results.append(result)
            print(f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:.0f} s] {result['arm']} seed "
                  f"{result['seed']}: mAP {100 * result['map']:.1f}, mAP@.5 {100 * result['map50']:.1f}, "
                  f"small {100 * result['map_small']:.1f}, train {result['train_seconds']:.0f} s", flush=True)
            write_json(args.out, {"args": vars(args), "results": results})
    print(table(results))
    print(f"total {time.perf_counter() - start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
