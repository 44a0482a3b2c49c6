"""In-batch mining against the code repositories usually write, timed in the same process (medians of repeats).

1. Per-pixel OHEM on segmentation logits [B, 19, H, W] (default 16x19x512x1024, about 640 MB of float32):
   hardmine's OHEMLoss (threshold on the loss, no softmax pass, no sort unless min_kept binds) against the
   OhemCrossEntropy of segmentation code bases (flatten, softmax, sort all valid pixels) and its loop-over-images
   variant (min_kept split evenly over images). Forward only, under no_grad.
2. SSD hard negative mining on 32 images x 8732 anchors: `mine_negatives_ssd` against a loop over images and
   torchvision's vectorised two-sort trick.

Usage: python benchmarks/bench_inbatch.py [--seg-shape 16 19 512 1024] [--repeats 3] [--threads 1] [--small]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hardmine.inbatch.detection import mine_negatives_ssd
from hardmine.inbatch.losses import OHEMLoss

IGNORE, THRESH, MIN_KEPT = 255, 0.7, 100_000


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def segmentation_batch(shape: tuple[int, int, int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a half-trained model: about 85% of the pixels confidently right, a band of ignored pixels."""
    b, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (b, h, w), generator=gen)
    logits = torch.randn(shape, generator=gen)
    easy = torch.rand(b, h, w, generator=gen) < 0.85
    logits.scatter_add_(1, target[:, None], (easy * 6.0)[:, None])
    target[:, : h // 16] = IGNORE
    return logits, target


def ohem_ce_batch(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """OhemCrossEntropy as segmentation code bases write it: softmax, sort every valid pixel, threshold."""
    pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none").reshape(-1)
    valid = target.reshape(-1) != IGNORE
    prob = F.softmax(logits, 1).gather(1, target.clamp_max(logits.shape[1] - 1)[:, None]).reshape(-1)[valid]
    prob, order = prob.sort()
    threshold = max(prob[min(MIN_KEPT, prob.numel() - 1)].item(), THRESH)
    return pixel[valid][order][prob < threshold].mean()


def ohem_ce_loop(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The same, one image at a time (min_kept split evenly over the images)."""
    kept = []
    min_kept = MIN_KEPT // logits.shape[0]
    for x, t in zip(logits, target):
        pixel = F.cross_entropy(x[None], t[None], ignore_index=IGNORE, reduction="none").reshape(-1)
        valid = t.reshape(-1) != IGNORE
        prob = F.softmax(x[None], 1).gather(1, t.clamp_max(x.shape[0] - 1)[None, None]).reshape(-1)[valid]
        prob, order = prob.sort()
        threshold = max(prob[min(min_kept, prob.numel() - 1)].item(), THRESH)
        kept.append(pixel[valid][order][prob < threshold])
    return torch.cat(kept).mean()


def bench_segmentation(shape: tuple[int, int, int, int], repeats: int) -> None:
    logits, target = segmentation_batch(shape)
    ohem = OHEMLoss(nn.CrossEntropyLoss(reduction="none", ignore_index=IGNORE), threshold=-math.log(THRESH),
                    min_kept=MIN_KEPT, ignore_index=IGNORE)
    with torch.no_grad():
        ours, batch, loop = ohem(logits, target), ohem_ce_batch(logits, target), ohem_ce_loop(logits, target)
        print(f"segmentation OHEM on {list(shape)}: loss hardmine {ours.item():.6f}, OhemCrossEntropy "
              f"{batch.item():.6f}, loop over images {loop.item():.6f} (per-image min_kept)")
        t_ours = median_seconds(lambda: ohem(logits, target), repeats)
        t_batch = median_seconds(lambda: ohem_ce_batch(logits, target), repeats)
        t_loop = median_seconds(lambda: ohem_ce_loop(logits, target), repeats)
    print(f"  hardmine OHEMLoss           {t_ours * 1e3:9.1f} ms")
    print(f"  OhemCrossEntropy (batched)  {t_batch * 1e3:9.1f} ms   ratio {t_batch / t_ours:5.2f}x")
    print(f"  loop over images            {t_loop * 1e3:9.1f} ms   ratio {t_loop / t_ours:5.2f}x")


def ssd_loop(cls_loss: torch.Tensor, labels: torch.Tensor, ratio: int) -> torch.Tensor:
    """SSD mining the way many repositories write it: one image at a time."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    for i in range(labels.shape[0]):
        positive = labels[i] > 0
        negative_loss = cls_loss[i].clone()
        negative_loss[positive] = -math.inf
        num_neg = min(ratio * int(positive.sum()), int((~positive).sum()))
        _, order = negative_loss.sort(descending=True)
        mask[i] = positive
        mask[i, order[:num_neg]] = True
    return mask


def ssd_two_sorts(cls_loss: torch.Tensor, labels: torch.Tensor, ratio: int) -> torch.Tensor:
    """torchvision's SSD head: vectorised, with a second sort to turn the order into ranks."""
    positive = labels > 0
    num_neg = ratio * positive.sum(1, keepdim=True)
    negative_loss = cls_loss.clone()
    negative_loss[positive] = -math.inf
    _, idx = negative_loss.sort(1, descending=True)
    return positive | (idx.sort(1)[1] < num_neg)


def bench_ssd(repeats: int, images: int = 32, anchors: int = 8732) -> None:
    gen = torch.Generator().manual_seed(0)
    cls_loss = torch.rand(images, anchors, generator=gen)
    positive = torch.rand(images, anchors, generator=gen) < 0.01
    labels = torch.randint(1, 21, (images, anchors), generator=gen) * positive
    ours = mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=3)
    same = torch.equal(ours, ssd_loop(cls_loss, labels, 3)) and torch.equal(ours, ssd_two_sorts(cls_loss, labels, 3))
    t_ours = median_seconds(lambda: mine_negatives_ssd(cls_loss, labels, neg_pos_ratio=3), repeats)
    t_loop = median_seconds(lambda: ssd_loop(cls_loss, labels, 3), repeats)
    t_tv = median_seconds(lambda: ssd_two_sorts(cls_loss, labels, 3), repeats)
    print(f"SSD mining on {images} images x {anchors} anchors (identical masks: {same}):")
    print(f"  hardmine mine_negatives_ssd {t_ours * 1e3:9.2f} ms")
    print(f"  loop over images            {t_loop * 1e3:9.2f} ms   ratio {t_loop / t_ours:5.2f}x")
    print(f"  torchvision two sorts       {t_tv * 1e3:9.2f} ms   ratio {t_tv / t_ours:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seg-shape", type=int, nargs=4, default=[16, 19, 512, 1024], metavar=("B", "C", "H", "W"))
    parser.add_argument("--small", action="store_true", help="segmentation on 4x19x256x512 instead")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (4, 19, 256, 512) if args.small else tuple(args.seg_shape)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} repeats; "
          "ratio = baseline time / hardmine time")
    bench_ssd(max(args.repeats, 5))
    bench_segmentation(shape, args.repeats)


if __name__ == "__main__":
    main()
