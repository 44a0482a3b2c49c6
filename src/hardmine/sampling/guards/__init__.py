"""Guards against the risks of hard example mining, each turned on by passing it to a policy's `guards=`."""

from hardmine.sampling.guards.base import GUARDS, ClassBalance, CoverageGuard, Guard, NoiseGuard, WeightCap

__all__ = ["GUARDS", "ClassBalance", "CoverageGuard", "Guard", "NoiseGuard", "WeightCap"]
