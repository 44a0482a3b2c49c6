"""The cartography map draws every kind of point it is given and leaves out unobserved samples."""

import numpy as np
from matplotlib.figure import Figure

from hardmine.diagnostics.cartography import plot_cartography


def test_map_draws_clean_flipped_and_suspects():
    rng = np.random.default_rng(0)
    confidence, variability = rng.random(500), rng.random(500) * 0.3
    confidence[:10] = np.nan
    flipped = np.zeros(500, dtype=bool)
    flipped[100:150] = True
    suspects = np.zeros(500, dtype=bool)
    suspects[120:200] = True
    ax = Figure().subplots()
    plot_cartography(ax, confidence, variability, flipped, suspects, max_points=300)
    sizes = [len(c.get_offsets()) for c in ax.collections]
    assert len(sizes) == 3 and sum(sizes[:2]) == 300
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clean label", "flipped label",
                                                                   "noise-guard suspect"]
