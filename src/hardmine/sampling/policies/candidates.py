"""The candidate-batch policy kind: draw `candidates x B` samples, score them, back-propagate the B chosen.

Online batch selection (Loshchilov & Hutter 2015) and RHO-LOSS (Mindermann et al. 2022) share this mechanism;
they differ only in the selection score (`score`): the loss, or the loss minus a reference model's loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_choice, check_int, check_number
from hardmine.sampling.plans import CandidateBatches, EpochPlan, ShuffledPass
from hardmine.sampling.policies.base import BatchPolicy
from hardmine.state import Int

RULES = ("top", "stochastic")
_SELECTION_STREAM = 3  # the Philox counter word of the stochastic rule's draws, apart from the sampler's streams


class CandidatePolicy(BatchPolicy):
    """Each step the sampler yields a uniformly drawn candidate batch of `candidates * B` indices (distinct within
    the batch, drawn afresh each step); the loop scores all of them in one no-grad forward and passes the losses
    to `sampler.update`, after which `sampler.weights(idx)` is 1 on the B selected candidates and 0 elsewhere.
    Forward those B again with gradient and back-propagate only them:

        idx = next(batches)                              # [candidates * B]
        with torch.no_grad():
            loss = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
        sampler.update(idx, loss)
        keep = sampler.weights(idx) > 0                  # exactly B True
        F.cross_entropy(model(x[idx[keep]]), y[idx[keep]]).backward()

    (With a loss over all candidates, `hm.reduce(loss, weights, normalize="weighted")` is the same mean over the
    kept, but back-propagates the whole candidate batch's graph: no compute saved.)

    candidates: the candidate batch's size over B (>= 1; 1 keeps every sample).
    rule: "top" keeps the B largest scores (ties: the smaller data set index first); "stochastic" draws B without
        replacement with probability softmax(score / temperature) (the Gumbel-top-k trick), so that selection is
        not greedy; a single draw picks sample i with probability exp(s_i / T) / sum_j exp(s_j / T).
    temperature: > 0, of the stochastic rule (large: nearly uniform; small: nearly "top").
    epoch_fraction: an epoch is round(epoch_fraction * N / B) steps (1: as many back-propagated samples as a
        uniform epoch, each step forwarding `candidates` times as many); lower it to match a compute budget.
    seed: the stochastic rule's draws, a function of (seed, number of selections made).
    Subclasses write `score(losses, indices)`. Under torch.distributed the candidates of all ranks are gathered
    and the B x world size best of them are selected, so ranks may back-propagate different numbers of samples.
    """

    state_fields = {"selections": Int(0), "selected": Int(0), "scored": Int(0)}
    valid_weights = True  # 0 or 1

    def __init__(self, candidates: int = 5, rule: str = "top", temperature: float = 1.0,
                 epoch_fraction: float = 1.0, seed: int = 0, **base: Any) -> None:
        super().__init__(**base)
        self.candidates = check_int("candidates", candidates)
        check_choice("rule", rule, RULES)
        self.rule = rule
        self.temperature = check_number("temperature", temperature, 0.0, low_inclusive=False)
        self.epoch_fraction = check_number("epoch_fraction", epoch_fraction, 0.0, low_inclusive=False)
        self.seed = check_int("seed", seed, minimum=0)
        self._state.update(selections=0, selected=0, scored=0)

    def epoch_plan(self, epoch: int) -> type[EpochPlan]:
        """Candidate batches (`CandidateBatches`) after the warm-up."""
        return ShuffledPass if self.in_warmup(epoch) else CandidateBatches

    def epoch_samples(self, num_samples: int) -> int:
        """Back-propagated samples per epoch (the sampler divides by the global batch size): epoch_fraction * N."""
        return max(1, round(self.epoch_fraction * num_samples))

    def score(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Hook: the selection score [C] (float64, higher = selected first) of candidates `indices` [C] whose
        guarded losses are `losses` [C]. The default is the loss itself."""
        return losses

    def select(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Weights [C] of a candidate batch: 1 on the ceil(C / candidates) selected, 0 elsewhere."""
        size = losses.size
        keep = -(-size // self.candidates)
        scores = np.asarray(self.score(losses, indices), dtype=np.float64)
        if self.rule == "stochastic":
            rng = np.random.Generator(np.random.Philox(key=self.seed,
                                                       counter=[0, _SELECTION_STREAM, self._state["selections"], 0]))
            scores = scores / self.temperature + rng.gumbel(size=size)
        order = np.lexsort((indices, -scores))  # by score descending, then by index ascending
        weights = np.zeros(size, dtype=np.float64)
        weights[order[:keep]] = 1.0
        self._state["selections"] += 1
        self._state["selected"] += keep
        self._state["scored"] += size
        return weights

    def stats(self) -> dict[str, float]:
        """keep_ratio: selected over scored candidates since the start (about 1 / candidates)."""
        return {"keep_ratio": self._state["selected"] / max(self._state["scored"], 1)}
