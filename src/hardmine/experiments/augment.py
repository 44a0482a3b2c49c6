"""Image augmentation as tensor ops on a batch: random shifted crops (zero padding) and horizontal flips."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFT = 2  # pixels: each image is padded by SHIFT and cropped back to its size at a random offset


def augment_images(x: torch.Tensor, generator: torch.Generator, shift: int = SHIFT) -> torch.Tensor:
    """A new batch [B, C, H, W] from images x [B, C, H, W]: each image moved by up to `shift` pixels in each
    direction (the border filled with 0) and mirrored left-right with probability 1/2, drawn from `generator`."""
    if x.ndim != 4:
        raise ValueError(f"augmentation needs image batches [B, C, H, W], got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # [B, 1, H, 1]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # [B, 1, 1, W]
    batch = torch.arange(b)[:, None, None, None]
    channels = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, channels, rows, cols]
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
