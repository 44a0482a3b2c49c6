"""Dataset Cartography maps (Swayamdipta et al. 2020): each training sample at (variability, confidence).

confidence: the mean probability the model gave the sample's label over training; variability: its standard
deviation. Easy-to-learn samples sit top left, ambiguous ones to the right, hard-to-learn ones bottom left,
where mislabeled samples gather.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes


def plot_cartography(ax: Axes, confidence: np.ndarray, variability: np.ndarray, flipped: np.ndarray | None = None,
                     suspects: np.ndarray | None = None, max_points: int = 8000, seed: int = 0,
                     title: str = "") -> None:
    """Scatter `confidence` [N] against `variability` [N] on `ax`.

    flipped: boolean [N], samples whose label was corrupted (drawn in red); suspects: boolean [N], samples a
    noise guard flagged (drawn with a black ring). Samples never observed (NaN) are left out; at most
    `max_points` samples are drawn, chosen at random (seeded) so that the picture stays readable.
    """
    observed = np.flatnonzero(np.isfinite(confidence) & np.isfinite(variability))
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.permutation(observed)[:max_points])
    flip = np.zeros(confidence.size, dtype=bool) if flipped is None else flipped
    clean, noisy = shown[~flip[shown]], shown[flip[shown]]
    ax.scatter(variability[clean], confidence[clean], s=3, c="#4c72b0", alpha=0.35, linewidths=0,
               label="labels as given" if flipped is None else "clean label")
    if noisy.size:
        ax.scatter(variability[noisy], confidence[noisy], s=3, c="#c44e52", alpha=0.5, linewidths=0,
                   label="flipped label")
    if suspects is not None:
        ringed = shown[suspects[shown]]
        if ringed.size:
            ax.scatter(variability[ringed], confidence[ringed], s=10, facecolors="none", edgecolors="black",
                       linewidths=0.4, alpha=0.6, label="noise-guard suspect")
    ax.set_xlabel("variability (std of true-class probability)")
    ax.set_ylabel("confidence (mean true-class probability)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
