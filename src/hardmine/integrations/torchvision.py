"""Hard mining inside torchvision's detectors, switched on with one call on an existing model.

```python
from hardmine.integrations.torchvision import OHEM, hard_mining
model = hard_mining(fasterrcnn_mobilenet_v3_large_fpn(num_classes=11), OHEM(nms_iou=0.7))
```
- `OHEM` (Faster R-CNN, Mask R-CNN, Keypoint R-CNN): every proposal is scored by the box head without gradient,
  the hardest `batch_size_per_image` per image after NMS are trained on (Shrivastava et al. 2016).
- `PrimeSample` (the same models): torchvision's random sample, each RoI's loss weighted by PISA's importance
  ranking (Cao et al. 2020): positives by IoU, negatives by score.
- `RatioMiner` (SSD): the classification loss keeps `neg_pos_ratio` hard negatives per positive, at least
  `min_negatives` per image. RetinaNet's focal loss weights every anchor already: it stays the baseline.
For a detector of your own, the same choices are functions on per-RoI losses: `hardmine.inbatch.roi_selection`.
Install with the `detection` extra (`pip install hardmine[detection]`: torchvision and a torch it was built for).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.ssd import SSD

from hardmine._checks import check_finite, check_int, check_number
from hardmine.integrations._rcnn_heads import MinedRoIHeads
from hardmine.integrations._ssd_loss import MinedSSD

__all__ = ["OHEM", "MinedRoIHeads", "MinedSSD", "PrimeSample", "RatioMiner", "hard_mining", "mining_stats"]


@dataclass(frozen=True)
class OHEM:
    """Online hard example mining of RoIs.

    batch_size_per_image: RoIs trained on per image (None: the model's, 512 by default); with fewer proposals
        than this, every RoI surviving NMS is kept. positive_fraction: the cap on foreground among the hard RoIs
        (None: the model's, 0.25). nms_iou: RoIs overlapping a harder kept one by more than this IoU are skipped.
    random_negatives: of `batch_size_per_image`, this many are background drawn at random (from `seed`), so easy
        background keeps being seen.
    """

    batch_size_per_image: int | None = None
    positive_fraction: float | None = None
    nms_iou: float = 0.7
    random_negatives: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size_per_image is not None:
            check_int("batch_size_per_image", self.batch_size_per_image)
        if self.positive_fraction is not None:
            check_number("positive_fraction", self.positive_fraction, 0.0, 1.0)
        check_number("nms_iou", self.nms_iou, 0.0, 1.0)
        check_int("random_negatives", self.random_negatives, minimum=0)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class PrimeSample:
    """PISA's prime-sample weights: rank r of m gets ((1 - bias) (m - r) / m + bias) ** k, rescaled so the weighted
    loss sums to the unweighted one (positives and negatives each). k >= 0, bias in [0, 1]."""

    k: float = 2.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        check_finite("k", self.k, minimum=0)
        check_number("bias", self.bias, 0.0, 1.0)


@dataclass(frozen=True)
class RatioMiner:
    """SSD's hard negatives: `neg_pos_ratio` per positive anchor (None: the model's, 3), at least `min_negatives`."""

    neg_pos_ratio: float | None = None
    min_negatives: int = 0

    def __post_init__(self) -> None:
        if self.neg_pos_ratio is not None:
            check_finite("neg_pos_ratio", self.neg_pos_ratio, minimum=0)
        check_int("min_negatives", self.min_negatives, minimum=0)


_SUPPORTED = "FasterRCNN, MaskRCNN or KeypointRCNN (OHEM, PrimeSample) and SSD (RatioMiner)"


def hard_mining(model: nn.Module, strategy: OHEM | PrimeSample | RatioMiner) -> nn.Module:
    """Switch `model` to `strategy` in training; returns the model to train (inference is unchanged).

    R-CNN models are changed in place (their `roi_heads` becomes a `MinedRoIHeads` sharing the same submodules,
    so checkpoints keep torchvision's keys, plus `roi_heads._extra_state`) and returned. An SSD is returned as a
    new `MinedSSD` sharing the given model's modules: train the returned one. Switching again replaces the
    previous strategy. Raises TypeError for any other model or strategy, before anything changes.
    """
    if not isinstance(strategy, (OHEM, PrimeSample, RatioMiner)):
        raise TypeError(f"strategy must be OHEM, PrimeSample or RatioMiner, got {type(strategy).__name__}")
    if isinstance(strategy, RatioMiner):
        if not isinstance(model, SSD):
            raise TypeError(f"RatioMiner needs a torchvision SSD, got {type(model).__name__}; supported: {_SUPPORTED}")
        ratio = model.neg_to_pos_ratio if strategy.neg_pos_ratio is None else strategy.neg_pos_ratio
        return MinedSSD(model, float(ratio), strategy.min_negatives)
    if not isinstance(model, GeneralizedRCNN) or not isinstance(getattr(model, "roi_heads", None), RoIHeads):
        raise TypeError(f"{type(strategy).__name__} needs a torchvision two-stage detector with RoIHeads, got "
                        f"{type(model).__name__}; supported: {_SUPPORTED}")
    heads = model.roi_heads
    sampler = heads.fg_bg_sampler
    if isinstance(strategy, OHEM):
        size = sampler.batch_size_per_image if strategy.batch_size_per_image is None else strategy.batch_size_per_image
        fraction = sampler.positive_fraction if strategy.positive_fraction is None else strategy.positive_fraction
        if strategy.random_negatives > size:
            raise ValueError(f"random_negatives must be <= batch_size_per_image ({size}), got "
                             f"{strategy.random_negatives}")
        model.roi_heads = MinedRoIHeads(heads, "ohem", size, fraction, strategy.nms_iou, strategy.random_negatives,
                                        strategy.seed)
    else:
        model.roi_heads = MinedRoIHeads(heads, "pisa", sampler.batch_size_per_image, sampler.positive_fraction,
                                        k=strategy.k, bias=strategy.bias)
    model.roi_heads.train(heads.training)
    return model


def mining_stats(model: nn.Module) -> dict[str, float]:
    """The cost counters of a model switched by `hard_mining` to OHEM or PrimeSample (see MinedRoIHeads.stats)."""
    heads = getattr(model, "roi_heads", None)
    if not isinstance(heads, MinedRoIHeads):
        raise TypeError(f"model {type(model).__name__} was not switched to OHEM or PrimeSample by hard_mining")
    return heads.stats()
