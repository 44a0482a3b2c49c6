"""The argument checks a user's extension (a policy, a guard, an in-batch loss, a miner) needs, public.

Each raises at the public boundary with an error that names the argument and the bad value, as hardmine's own
components do: `check_number("temperature", t, 0.0, np.inf, low_inclusive=False)`. They live in
`hardmine._checks` (one module, re-exported here, not copied).
"""

from hardmine._checks import (
    as_generator,
    check_choice,
    check_finite,
    check_indices,
    check_int,
    check_not_meta,
    check_number,
    check_values,
    to_numpy,
)

__all__ = ["as_generator", "check_choice", "check_finite", "check_indices", "check_int", "check_not_meta",
           "check_number", "check_values", "to_numpy"]
