"""Small torchvision detectors with random weights and one fixed batch, shared by the test_torchvision*.py files."""

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.ops import MultiScaleRoIAlign


class _OneMap(nn.Sequential):
    """Image [B, 3, H, W] -> features [B, 16, H/4, W/4]."""

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.out_channels = 16


def small_faster_rcnn():
    """A Faster R-CNN with a two-layer backbone, random weights (seed 0), 64-pixel images, up to 120 proposals and
    16 RoIs per image."""
    torch.manual_seed(0)
    return FasterRCNN(_OneMap(), None, min_size=64, max_size=64,
                      rpn_anchor_generator=AnchorGenerator(((8, 16, 32),), ((0.5, 1.0, 2.0),)),
                      box_roi_pool=MultiScaleRoIAlign(["0"], 5, 2), box_head=TwoMLPHead(16 * 5 * 5, 64),
                      box_predictor=FastRCNNPredictor(64, 4), rpn_pre_nms_top_n_train=300,
                      rpn_post_nms_top_n_train=120, box_batch_size_per_image=16)


class _TwoMaps(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, 4, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())

    def forward(self, x):
        first = self.a(x)
        return OrderedDict([("0", first), ("1", self.b(first))])


def small_ssd():
    """An SSD on 64-pixel images with a two-layer backbone (random weights, seed 0)."""
    torch.manual_seed(0)
    anchors = DefaultBoxGenerator([[2], [2]], scales=[0.15, 0.35, 0.7])
    head = SSDHead([8, 16], anchors.num_anchors_per_location(), 4)
    return SSD(_TwoMaps(), anchors, (64, 64), 4, head=head)


def batch(seed=0):
    """Two 64x64 images: three objects in the first, one in the second."""
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 6, 30, 28], [22, 30, 60, 58], [40, 2, 62, 20]]),
                "labels": torch.tensor([1, 2, 3])},
               {"boxes": torch.tensor([[10.0, 10, 50, 40]]), "labels": torch.tensor([2])}]
    return images, targets
