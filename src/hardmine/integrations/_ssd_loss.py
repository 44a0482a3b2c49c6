"""MinedSSD: torchvision's SSD whose classification loss keeps the anchors `mine_negatives_ssd` chooses.

torchvision's SSD already keeps 3 negatives per positive; this subclass makes the ratio a parameter and adds
`min_negatives`, so an image without objects still teaches background (torchvision's loss gives it none). With
`neg_pos_ratio=3, min_negatives=0` its losses equal torchvision's (up to the order of tied losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.ssd import SSD

from hardmine.inbatch.detection import mine_negatives_ssd
from hardmine.inbatch.losses import per_sample_cross_entropy


class MinedSSD(SSD):
    """An SSD built from an existing `ssd` (backbone, anchors, head, transform and matcher shared, not copied)
    whose loss mines `neg_pos_ratio` negatives per positive per image, at least `min_negatives`."""

    def __init__(self, ssd: SSD, neg_pos_ratio: float, min_negatives: int) -> None:
        size = ssd.transform.fixed_size or (ssd.transform.min_size[0], ssd.transform.max_size)
        super().__init__(ssd.backbone, ssd.anchor_generator, size, num_classes=0, head=ssd.head,
                         score_thresh=ssd.score_thresh, nms_thresh=ssd.nms_thresh,
                         detections_per_img=ssd.detections_per_img, topk_candidates=ssd.topk_candidates)
        self.transform, self.box_coder, self.proposal_matcher = ssd.transform, ssd.box_coder, ssd.proposal_matcher
        self.neg_to_pos_ratio = neg_pos_ratio
        self.min_negatives = min_negatives

    def compute_loss(self, targets: list[dict[str, torch.Tensor]], head_outputs: dict[str, torch.Tensor],
                     anchors: list[torch.Tensor], matched_idxs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """SSD's two losses, each divided by the number of matched anchors: smooth L1 on the matched anchors'
        box deltas, and cross-entropy on the matched anchors plus the mined negatives."""
        cls_logits, regression = head_outputs["cls_logits"], head_outputs["bbox_regression"]
        labels = torch.zeros(cls_logits.shape[:2], dtype=torch.int64, device=cls_logits.device)
        box_loss, matched_anchors = cls_logits.new_zeros(()), 0
        for i, (target, anchor, matched) in enumerate(zip(targets, anchors, matched_idxs)):
            foreground = torch.where(matched >= 0)[0]
            matched_anchors += len(foreground)
            labels[i, foreground] = target["labels"][matched[foreground]]
            wanted = self.box_coder.encode_single(target["boxes"][matched[foreground]], anchor[foreground])
            box_loss = box_loss + F.smooth_l1_loss(regression[i, foreground], wanted, reduction="sum")
        cls_loss = per_sample_cross_entropy(cls_logits.flatten(0, 1), labels.flatten()).view(labels.shape)
        keep = mine_negatives_ssd(cls_loss.detach(), labels, self.neg_to_pos_ratio, self.min_negatives)
        matched_anchors = max(1, matched_anchors)
        return {"bbox_regression": box_loss / matched_anchors, "classification": cls_loss[keep].sum() / matched_anchors}
