"""A switched torchvision detector trains, resumes exactly from a checkpoint, and PISA / the SSD miner do what they
say. Runs in the vision venv (`make test`); the main suite does not collect it (tests/conftest.py)."""

import torch

from hardmine.integrations.torchvision import OHEM, PrimeSample, RatioMiner, hard_mining, mining_stats
from tests.integrations.torchvision_models import batch, small_faster_rcnn, small_ssd


def step(model, opt, seed):
    torch.manual_seed(seed)  # torchvision's RPN sampler draws from the global generator
    losses = model(*batch(seed))
    loss = sum(losses.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return {k: v.detach() for k, v in losses.items()}


def test_a_few_ohem_steps_train_and_a_checkpoint_round_trips(tmp_path):
    model = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=16, random_negatives=4, seed=3))
    model.train()
    before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for s in range(3):
        losses = step(model, opt, s)
        assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(before, model.roi_heads.box_predictor.cls_score.weight)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    plain_keys = set(small_faster_rcnn().state_dict())
    assert set(state) == plain_keys | {"roi_heads._extra_state"}  # torchvision's keys, plus the miner's state

    resumed = hard_mining(small_faster_rcnn(), OHEM(batch_size_per_image=16, random_negatives=4, seed=99))
    resumed.load_state_dict(state)
    resumed.train()
    assert mining_stats(resumed) == mining_stats(model)
    opt_resumed = torch.optim.SGD(resumed.parameters(), lr=0.01)
    for s in range(3, 5):  # the same RoIs (random negatives included), the same losses
        a, b = step(model, opt, s), step(resumed, opt_resumed, s)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert mining_stats(resumed)["steps"] == 5


def test_a_torchvision_checkpoint_loads_into_a_switched_model_but_for_the_miner_state():
    plain = small_faster_rcnn()
    switched = hard_mining(small_faster_rcnn(), OHEM())
    missing, unexpected = switched.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["roi_heads._extra_state"] and unexpected == []


def predictor_gradient(model, seed=7):
    model.train()
    torch.manual_seed(seed)
    losses = model(*batch())
    sum(losses.values()).backward()
    return {k: v.detach() for k, v in losses.items()}, model.roi_heads.box_predictor.cls_score.weight.grad.clone()


def test_prime_sample_weights_change_the_gradient_not_the_sample():
    base_losses, base = predictor_gradient(small_faster_rcnn())
    flat_losses, flat = predictor_gradient(hard_mining(small_faster_rcnn(), PrimeSample(k=0.0)))
    pisa_losses, pisa = predictor_gradient(hard_mining(small_faster_rcnn(), PrimeSample(k=2.0)))
    assert torch.allclose(flat, base, atol=1e-7)  # all weights 1: torchvision's gradient
    assert not torch.allclose(pisa, base, atol=1e-5)  # weighted: another gradient
    for k in base_losses:  # the same random sample: the logged (unweighted) losses agree
        assert torch.allclose(pisa_losses[k], base_losses[k]) and torch.allclose(flat_losses[k], base_losses[k])


def test_the_ssd_ratio_miner_reproduces_torchvisions_loss_and_adds_min_negatives():
    plain = small_ssd()
    plain.train()
    mined = hard_mining(plain, RatioMiner())
    assert set(mined.state_dict()) == set(plain.state_dict())
    torch.manual_seed(0)
    want = plain(*batch())
    got = mined(*batch())
    assert want.keys() == got.keys()
    assert all(torch.allclose(want[k], got[k], rtol=1e-5) for k in want)

    images, targets = batch()
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}  # an empty image
    plain_empty = plain(images, targets)["classification"]
    floor = hard_mining(plain, RatioMiner(min_negatives=50))(images, targets)["classification"]
    assert torch.allclose(mined(images, targets)["classification"], plain_empty, rtol=1e-5)
    assert floor > plain_empty  # the empty image now teaches background


def test_a_few_ssd_steps_train():
    model = hard_mining(small_ssd(), RatioMiner(neg_pos_ratio=2.0, min_negatives=8))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    first = [step(model, opt, 0) for _ in range(4)]
    assert all(torch.isfinite(v) for losses in first for v in losses.values())
    assert first[-1]["classification"] < first[0]["classification"]


def test_mask_rcnn_trains_its_mask_head_on_the_ohem_positives():
    from torchvision.models.detection import MaskRCNN
    from torchvision.ops import MultiScaleRoIAlign

    base = small_faster_rcnn()
    model = hard_mining(MaskRCNN(base.backbone, num_classes=4, min_size=64, max_size=64, rpn_post_nms_top_n_train=120,
                                 rpn_anchor_generator=base.rpn.anchor_generator, box_batch_size_per_image=16,
                                 mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2)), OHEM())
    images, targets = batch()
    for t in targets:
        t["masks"] = torch.zeros(len(t["boxes"]), 64, 64, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(t["masks"], t["boxes"].int().tolist()):
            mask[y1:y2, x1:x2] = 1
    model.train()
    losses = model(images, targets)
    assert set(losses) >= {"loss_classifier", "loss_box_reg", "loss_mask"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad.abs().sum() > 0
    assert 0 < mining_stats(model)["trained_rois"] <= 32
