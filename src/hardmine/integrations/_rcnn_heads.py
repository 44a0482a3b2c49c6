"""MinedRoIHeads: torchvision's RoIHeads whose training sample is chosen by OHEM or weighted by PISA.

The subclass keeps every torchvision code path (assignment, box, mask and keypoint losses, inference) and changes
only what `subsample` returns during a training forward:
- OHEM: before torchvision's forward, every proposal (ground truth included) goes through the box head without
  gradient; `select_rois` picks the hardest per image after NMS; torchvision's forward then trains on those.
- PISA: torchvision's own sampler picks the RoIs; while the box predictor runs with gradient, a forward hook
  (registered for that one call) scales each RoI's gradient by its prime-sample weight, which is the gradient of
  the weighted loss (each RoI's loss depends only on its own outputs). The logged loss values stay unweighted.
The module's submodules are the model's own, so its state_dict keys are torchvision's, plus `_extra_state` (the
random-negative generator and the cost counters).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import box_iou

from hardmine.inbatch.losses import per_sample_cross_entropy
from hardmine.inbatch.roi_selection import prime_sample_weights, select_rois

_COUNTS = ("steps", "images", "scored_rois", "trained_rois")


@dataclass(frozen=True)
class _Plan:
    """What one training forward trains on: per image the kept candidate indices; with PISA what the weights
    need (labels, IoU with the matched box, a batch-unique ground-truth id, regression targets of the kept RoIs)."""

    candidates: list[int]
    picked: list[torch.Tensor]
    labels: torch.Tensor | None = None
    ious: torch.Tensor | None = None
    gt_index: torch.Tensor | None = None
    regression_targets: torch.Tensor | None = None


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies row i of the gradient by weights[i]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weights)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weights,) = ctx.saved_tensors
        return grad * weights.to(grad.dtype).reshape(-1, *([1] * (grad.dim() - 1))), None


def per_roi_losses(class_logits: torch.Tensor, box_regression: torch.Tensor, labels: torch.Tensor,
                   regression_targets: torch.Tensor) -> torch.Tensor:
    """Each RoI's Fast R-CNN loss [N]: cross-entropy + smooth L1 (beta 1/9, summed over the 4 deltas of its class,
    foreground only), the terms torchvision's fastrcnn_loss sums (and divides by N). Ignored labels (< 0) give the
    background's cross-entropy; callers never select them."""
    target = labels.clamp_min(0)
    loss = per_sample_cross_entropy(class_logits, target)
    deltas = box_regression.reshape(len(labels), -1, 4)[torch.arange(len(labels), device=labels.device), target]
    box = F.smooth_l1_loss(deltas, regression_targets, beta=1 / 9, reduction="none").sum(1)
    return loss + torch.where(labels > 0, box, torch.zeros_like(box))


class MinedRoIHeads(RoIHeads):
    """torchvision's RoIHeads with OHEM (`method="ohem"`) or PISA weights (`method="pisa"`) in training.

    Built from an existing `heads` (its submodules, matcher, sampler and box coder are shared, not copied).
    OHEM keeps `batch_size_per_image` RoIs per image (`random_negatives` of them random background) with at most
    int(positive_fraction x (batch_size_per_image - random_negatives)) foreground. PISA: `k`, `bias` of
    `prime_sample_weights`. `stats()` counts the extra no-grad RoI-head forward.
    """

    def __init__(self, heads: RoIHeads, method: str, batch_size_per_image: int, positive_fraction: float,
                 nms_iou: float = 0.7, random_negatives: int = 0, seed: int = 0, k: float = 2.0,
                 bias: float = 0.0) -> None:
        if method not in ("ohem", "pisa"):
            raise ValueError(f"method must be 'ohem' or 'pisa', got {method!r}")
        super().__init__(heads.box_roi_pool, heads.box_head, heads.box_predictor,
                         heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
                         heads.fg_bg_sampler.batch_size_per_image, heads.fg_bg_sampler.positive_fraction,
                         heads.box_coder.weights, heads.score_thresh, heads.nms_thresh, heads.detections_per_img,
                         heads.mask_roi_pool, heads.mask_head, heads.mask_predictor, heads.keypoint_roi_pool,
                         heads.keypoint_head, heads.keypoint_predictor)
        self.proposal_matcher, self.fg_bg_sampler = heads.proposal_matcher, heads.fg_bg_sampler
        self.box_coder, self.box_similarity = heads.box_coder, heads.box_similarity
        self.method, self.batch_size_per_image, self.positive_fraction = method, batch_size_per_image, positive_fraction
        self.nms_iou, self.random_negatives, self.k, self.bias = nms_iou, random_negatives, k, bias
        self.generator = torch.Generator().manual_seed(seed)
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.scoring_seconds = 0.0
        self._plan: _Plan | None = None

    def stats(self) -> dict[str, float]:
        """Cost so far: training steps, images, RoIs scored without gradient (OHEM's extra head forward), RoIs
        trained on, seconds spent scoring, and per image the scored and trained RoIs."""
        images = max(1, self.counts["images"])
        return {**self.counts, "scoring_seconds": self.scoring_seconds,
                "scored_rois_per_image": self.counts["scored_rois"] / images,
                "trained_rois_per_image": self.counts["trained_rois"] / images}

    def forward(self, features, proposals, image_shapes, targets=None):
        """torchvision's forward; in training the sample (OHEM) or its gradient weights (PISA) are this class's."""
        if not self.training or targets is None:  # torchvision raises on training without targets
            return super().forward(features, proposals, image_shapes, targets)
        generator, start = self.generator.get_state(), time.perf_counter()
        plan = self._ohem(features, proposals, image_shapes, targets) if self.method == "ohem" else \
            self._pisa(proposals, targets)
        scoring = time.perf_counter() - start
        self._plan = plan
        hook = self.box_predictor.register_forward_hook(self._weigh) if self.method == "pisa" else None
        try:
            result = super().forward(features, proposals, image_shapes, targets)
        except BaseException:
            self.generator.set_state(generator)  # torchvision refused the targets: nothing changed
            raise
        finally:
            self._plan = None
            if hook is not None:
                hook.remove()
        self.scoring_seconds += scoring
        self.counts["steps"] += 1
        self.counts["images"] += len(proposals)
        self.counts["scored_rois"] += sum(plan.candidates) if self.method == "ohem" else 0
        self.counts["trained_rois"] += sum(len(p) for p in plan.picked)
        return result

    def subsample(self, labels: list[torch.Tensor]) -> list[torch.Tensor]:
        """The planned RoIs of this training forward (torchvision's sampler outside one)."""
        if self._plan is None:
            return super().subsample(labels)
        if [len(x) for x in labels] != self._plan.candidates:
            raise RuntimeError("the RoI assignment changed between the mining pass and torchvision's forward")
        return self._plan.picked

    def _assign(self, proposals, targets):
        """torchvision's own steps: candidates (proposals + ground truth), labels, matched ids, regression targets."""
        self.check_targets(targets)
        dtype = proposals[0].dtype
        gt_boxes = [t["boxes"].to(dtype) for t in targets]
        candidates = self.add_gt_proposals(proposals, gt_boxes)
        matched, labels = self.assign_targets_to_proposals(candidates, gt_boxes, [t["labels"] for t in targets])
        matched_boxes = [(g if g.numel() else g.new_zeros((1, 4)))[m] for g, m in zip(gt_boxes, matched)]
        return candidates, gt_boxes, matched, labels, self.box_coder.encode(matched_boxes, candidates)

    @torch.no_grad()
    def _ohem(self, features, proposals, image_shapes, targets) -> _Plan:
        candidates, _, _, labels, regression = self._assign(proposals, targets)
        head = self.box_head(self.box_roi_pool(features, candidates, image_shapes))
        class_logits, box_regression = self.box_predictor(head)
        losses = per_roi_losses(class_logits, box_regression, torch.cat(labels), torch.cat(regression))
        losses = list(losses.split([len(c) for c in candidates]))
        picked = select_rois(losses, candidates, labels, self.batch_size_per_image, self.nms_iou,
                             self.positive_fraction, self.random_negatives, self.generator)
        return _Plan([len(c) for c in candidates], picked)

    @torch.no_grad()
    def _pisa(self, proposals, targets) -> _Plan:
        candidates, gt_boxes, matched, labels, regression = self._assign(proposals, targets)
        positive, negative = self.fg_bg_sampler(labels)
        picked = [torch.where(p | n)[0] for p, n in zip(positive, negative)]
        ious, gt_index, offset = [], [], 0
        for g, c, m, keep in zip(gt_boxes, candidates, matched, picked):
            iou = box_iou(g, c[keep]).max(0).values if g.numel() else c.new_zeros(len(keep))
            ious.append(iou)
            gt_index.append(m[keep] + offset)
            offset += max(1, len(g))
        return _Plan([len(c) for c in candidates], picked, torch.cat([x[k] for x, k in zip(labels, picked)]),
                     torch.cat(ious), torch.cat(gt_index), torch.cat([r[k] for r, k in zip(regression, picked)]))

    def _weigh(self, module, inputs, output):
        """Forward hook on the box predictor (PISA only): the outputs with each RoI's gradient scaled."""
        plan = self._plan
        class_logits, box_regression = output
        if plan is None:
            return output
        if len(class_logits) != len(plan.labels):
            raise RuntimeError(f"the box predictor saw {len(class_logits)} RoIs, the plan has {len(plan.labels)}")
        with torch.no_grad():
            scores = F.softmax(class_logits.detach().float(), -1)[:, 1:].max(1).values
            losses = per_roi_losses(class_logits.detach().float(), box_regression.detach().float(), plan.labels,
                                    plan.regression_targets)
            weights = prime_sample_weights(plan.labels, plan.ious, plan.gt_index, scores, losses, self.k, self.bias)
        return _ScaleGradient.apply(class_logits, weights), _ScaleGradient.apply(box_regression, weights)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        """The random-negative generator and the cost counters (tensors only: loads with weights_only=True)."""
        return {"generator": self.generator.get_state(),
                "counts": torch.tensor([self.counts[c] for c in _COUNTS], dtype=torch.int64),
                "scoring_seconds": torch.tensor(self.scoring_seconds, dtype=torch.float64)}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `get_extra_state` gave, after checking all of it."""
        if not isinstance(state, dict) or set(state) != {"generator", "counts", "scoring_seconds"}:
            raise ValueError(f"MinedRoIHeads state must have the keys generator, counts, scoring_seconds, got "
                             f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        counts, seconds, generator = state["counts"], state["scoring_seconds"], state["generator"]
        if counts.shape != (len(_COUNTS),) or counts.dtype != torch.int64 or bool((counts < 0).any()):
            raise ValueError(f"MinedRoIHeads state counts must be {len(_COUNTS)} int64 values >= 0, got {counts}")
        if seconds.numel() != 1 or not bool(torch.isfinite(seconds)) or float(seconds) < 0:
            raise ValueError(f"MinedRoIHeads state scoring_seconds must be a finite number >= 0, got {seconds}")
        if generator.dtype != torch.uint8 or generator.shape != self.generator.get_state().shape:
            raise ValueError(f"MinedRoIHeads state generator must be a CPU generator's uint8 state, got "
                             f"{generator.dtype} {tuple(generator.shape)}")
        self.generator.set_state(generator.clone())
        self.counts = dict(zip(_COUNTS, (int(c) for c in counts)))
        self.scoring_seconds = float(seconds)
