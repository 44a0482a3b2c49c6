"""Bad input to the torchvision integration: clear errors before anything changes, and torchvision's own rules for
empty and degenerate boxes. Runs in the vision venv (`make test`); the main suite does not collect it."""

import pytest
import torch
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads

from hardmine.integrations.torchvision import OHEM, MinedRoIHeads, PrimeSample, RatioMiner, hard_mining, mining_stats
from tests.integrations.torchvision_models import batch, small_faster_rcnn, small_ssd


def test_an_unsupported_model_is_named_with_the_supported_ones():
    with pytest.raises(TypeError, match=r"got Linear; supported: FasterRCNN, MaskRCNN.*SSD"):
        hard_mining(nn.Linear(2, 2), OHEM())
    with pytest.raises(TypeError, match=r"got SSD; supported"):
        hard_mining(small_ssd(), PrimeSample())
    with pytest.raises(TypeError, match=r"RatioMiner needs a torchvision SSD, got FasterRCNN"):
        hard_mining(small_faster_rcnn(), RatioMiner())
    with pytest.raises(TypeError, match="strategy must be"):
        hard_mining(small_faster_rcnn(), "ohem")


@pytest.mark.parametrize("make, match", [
    (lambda: OHEM(nms_iou=1.5), "nms_iou"), (lambda: OHEM(batch_size_per_image=0), "batch_size_per_image"),
    (lambda: OHEM(random_negatives=-1), "random_negatives"), (lambda: OHEM(positive_fraction=-0.1), "positive_frac"),
    (lambda: PrimeSample(bias=2.0), "bias"), (lambda: PrimeSample(k=float("nan")), "k must"),
    (lambda: RatioMiner(neg_pos_ratio=-1.0), "neg_pos_ratio"), (lambda: RatioMiner(min_negatives=1.5), "min_neg")])
def test_bad_options_are_named(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_too_many_random_negatives_leave_the_model_unchanged():
    model = small_faster_rcnn()
    with pytest.raises(ValueError, match=r"random_negatives must be <= batch_size_per_image \(16\), got 17"):
        hard_mining(model, OHEM(random_negatives=17))
    assert type(model.roi_heads) is RoIHeads


def test_an_image_without_boxes_trains_on_background_as_in_torchvision():
    model = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=16))
    model.train()
    images, targets = batch()
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert mining_stats(model)["images"] == 2 and mining_stats(model)["trained_rois"] > 16


def test_degenerate_boxes_are_refused_as_torchvision_refuses_them():
    model = hard_mining(small_faster_rcnn(), OHEM())
    model.train()
    images, targets = batch()
    targets[0]["boxes"][1] = torch.tensor([20.0, 30, 20, 58])  # zero width
    with pytest.raises(AssertionError, match="positive height and width"):  # torchvision's torch._assert
        model(images, targets)
    assert mining_stats(model)["steps"] == 0


def test_batch_size_per_image_above_the_proposals_keeps_them_all():
    model = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=10_000, nms_iou=1.0))
    model.train()
    model(*batch())
    stats = mining_stats(model)
    assert stats["trained_rois"] == stats["scored_rois"] > 2 * 16  # more than the default sampler would take


def test_bad_miner_state_is_refused_before_assigning():
    heads = hard_mining(small_faster_rcnn(), OHEM()).roi_heads
    assert isinstance(heads, MinedRoIHeads)
    state = heads.get_extra_state()
    bad = {**state, "counts": torch.tensor([1, 2, -3, 4])}
    with pytest.raises(ValueError, match="counts"):
        heads.set_extra_state(bad)
    with pytest.raises(ValueError, match="keys"):
        heads.set_extra_state({"counts": state["counts"]})
    assert heads.stats()["steps"] == 0


def test_targets_torchvision_refuses_leave_the_miner_unchanged():
    model = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=16, random_negatives=4))
    model.train()
    before = model.roi_heads.generator.get_state()
    images, targets = batch()
    targets[0]["labels"] = targets[0]["labels"].int()  # torchvision wants int64 labels
    with pytest.raises(TypeError, match="int64"):
        model(images, targets)
    assert torch.equal(model.roi_heads.generator.get_state(), before) and mining_stats(model)["steps"] == 0
