"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`; see the README for the three touch points in a training loop.
"""

from hardmine.reduction import reduce

__all__ = ["reduce"]
__version__ = "0.1.0"
