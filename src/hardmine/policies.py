"""`hardmine.policies`: the policy names, re-exported from `hardmine.sampling.policies` where they live."""

from hardmine.sampling.policies import *  # noqa: F403
from hardmine.sampling.policies import __all__  # noqa: F401
