"""The sampler's saved state (its schema and its check, everything validated before anything is assigned) and the
configuration its ranks agree on."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_int
from hardmine.sampling.plans import PLANS, Shape
from hardmine.state import Array, Choice, Int, Parsed, check_fields, check_state, compare_config

STATE_VERSION = 2  # 2: the consumed position, the epoch's start and the drawn-but-unconsumed batches
SEED_LIMIT = 2**64  # numpy's Philox key and SeedSequence entropy take seeds below it
EPOCH_LIMIT = 2**63  # an epoch is a 64-bit Philox counter word, and int64 in saved states

EPOCH_STATE = {"mode": Choice(*PLANS),
               "subset": Array("int64", low=0, below="N", optional=True),
               "subset_weights": Array("float64", low=0.0, optional=True),
               "forced": Array("int64", low=0, below="N"),
               "num_batches": Int(1),
               "base": Array("int64", low=0, below="N", optional=True), "base_rng": Array("uint8", optional=True)}
"""The schema of an epoch's state: what its start decided (`mode` names its plan); `base` and `base_rng` only
with a base sampler (its draws and its generator's state after them)."""


def check_epoch(name: str, epoch: Any) -> int:
    """An epoch: an int in [0, 2**63)."""
    epoch = check_int(name, epoch, minimum=0)
    if epoch >= EPOCH_LIMIT:
        raise ValueError(f"{name} must be below 2**63, got {epoch}")
    return epoch


def check_seed(name: str, seed: Any) -> int:
    """A seed: an int in [0, 2**64)."""
    seed = check_int(name, seed, minimum=0)
    if seed >= SEED_LIMIT:
        raise ValueError(f"{name} must be below 2**64, got {seed}")
    return seed


def configuration(sampler: Any) -> dict[str, Any]:
    """What every rank must have alike at an epoch's first draw (`agree_on_config` compares digests)."""
    policy = sampler.policy.state_dict()
    return {"num_samples": sampler.memory.num_samples, "batch_size": sampler.batch_size,
            "num_batches": sampler.fixed_batches, "drop_last": sampler.drop_last, "chunk": sampler.chunk,
            "seed": sampler.seed, "epoch": sampler.epoch, "policy": policy["name"], "policy config": policy["config"],
            "guards": [(guard["name"], guard["config"]) for guard in policy["guards"]],
            "state_version": (STATE_VERSION, policy["state_version"]),
            "consumed batches": sampler.ledger.consumed, "memory updates": sampler.memory.updates}


def parse_state(sampler: Any, state: Any, use_saved_config: bool) -> Parsed:
    """`state` checked whole for `sampler`, its policy's state included (the sampler's `_parse_state`): the
    values seed, epoch, epoch_state, started and drawn (the ledger's checked records), and the policy's Parsed as
    the child "policy"; nothing changes."""
    keys = ("seed", "epoch", "position", "started", "drawn", "batch_size", "fixed_batches", "world_size",
            "epoch_state", "policy")
    check_state(state, "HardExampleSampler", STATE_VERSION, keys)
    for key in ("batch_size", "fixed_batches", "world_size"):
        if state[key] is not None and (isinstance(state[key], bool) or not isinstance(state[key], int)):
            raise TypeError(f"state[{key!r}] must be an int, got {state[key]!r}")
        if state.get(key) != getattr(sampler, key):
            raise ValueError(f"state[{key!r}] is {state.get(key)!r} but this sampler has {getattr(sampler, key)!r}")
    seed = check_seed("state['seed']", state["seed"])
    compare_config("HardExampleSampler", {"seed": seed}, {"seed": sampler.seed}, use_saved_config)
    epoch = check_epoch("state['epoch']", state["epoch"])
    position = check_int("state['position']", state["position"], minimum=0)
    n = sampler.memory.num_samples
    if "num_samples" in state and (isinstance(state["num_samples"], bool) or state["num_samples"] != n):
        raise ValueError(f"state['num_samples'] is {state['num_samples']!r} but this sampler's memory holds {n} "
                         "samples: the state belongs to another data set")
    saved = state["epoch_state"]  # a plain one holds no base keys (hardmine.sampling.base_source)
    saved = {"base": None, "base_rng": None, **saved} if isinstance(saved, dict) else saved
    epoch_state = check_fields(saved, EPOCH_STATE, "state['epoch_state']", {"N": n})
    subset, weights = epoch_state["subset"], epoch_state["subset_weights"]
    if (subset is None) != (weights is None) or (subset is not None and subset.shape != weights.shape):
        shapes = [None if a is None else a.shape for a in (subset, weights)]
        raise ValueError(f"state['epoch_state'] must hold a subset and its weights of the same length, got "
                         f"{shapes[0]} and {shapes[1]}")
    if position > epoch_state["num_batches"]:
        raise ValueError(f"state['position'] is {position}, past the {epoch_state['num_batches']} batches")
    if not isinstance(state["started"], bool):
        raise TypeError(f"state['started'] must be a bool, got {state['started']!r}")
    sampler.source.check_state(epoch_state, state["started"])
    ledger = sampler.ledger._parse_state(state["drawn"], n)
    drawn, num_batches = ledger.values, epoch_state["num_batches"]
    if drawn["consumed"] > num_batches:
        raise ValueError(f"state['drawn']['consumed'] is {drawn['consumed']}, past the epoch's {num_batches} batches")
    if drawn["records"] and max(drawn["records"]) >= num_batches:
        raise ValueError(f"state['drawn']['positions'] {sorted(drawn['records'])} must be below the epoch's "
                         f"{num_batches} batches")
    if any(i.size and i.max() >= n for i, _ in drawn["records"].values()):
        raise ValueError(f"state['drawn'] holds a batch with indices outside [0, {n})")
    plan = PLANS[epoch_state["mode"]]
    shape = Shape(sampler.batch_size, sampler.world_size, sampler.fixed_batches, sampler.drop_last)
    for k, (indices, _) in drawn["records"].items():
        size = plan.drawn_size(k, epoch_state, shape, sampler.policy, n, use_saved_config)
        if size is not None and indices.size != size:
            raise ValueError(f"state['drawn'] holds batch {k} of {indices.size} indices, but a batch there "
                             f"holds {size} (batch_size {sampler.batch_size} x world size {sampler.world_size})")
    if not plan.undecided_weights and any(np.isnan(w).any() for _, w in drawn["records"].values()):
        raise ValueError("state['drawn'] holds NaN weights, which only candidate batches have (before update() "
                         f"decides them), but the epoch's mode is {epoch_state['mode']!r}")
    if drawn["consumed"] != position:
        raise ValueError(f"state['position'] is {position} but state['drawn'] counts {drawn['consumed']}")
    policy = sampler.policy._parse_state(state["policy"], n, use_saved_config)
    return Parsed(None, {"seed": seed, "epoch": epoch, "epoch_state": epoch_state, "started": state["started"],
                         "drawn": ledger}, {"policy": policy})
