"""The policy interface: how the score memory becomes sampling priorities and importance weights."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from hardmine.memory import ScoreMemory


class Policy:
    """Turns a ScoreMemory into sampling priorities.

    Contract, relied on by HardExampleSampler for exact resumption:
    - `priorities(memory, indices)` is a pure function of the memory and the policy's state.
    - The state changes only in `start_epoch`, once per epoch, where O(N) work is allowed; per step, the sampler
      re-prioritises only the B samples it has just scored.
    - `state_dict()` holds everything `start_epoch` computed, so a resumed run rebuilds the same priorities.

    with_replacement: False means the sampler draws a seeded permutation per epoch (priorities unused).
    mix: the fraction of each batch drawn uniformly at random (a coverage floor), in [0, 1].
    """

    name: ClassVar[str] = ""
    with_replacement: ClassVar[bool] = True
    mix: float = 0.0

    def start_epoch(self, epoch: int, memory: ScoreMemory) -> None:
        """Recompute whatever the policy derives from the whole memory at the start of `epoch`."""

    def priorities(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Non-negative priorities (float64) of `indices` [B], or of all N samples when None."""
        raise NotImplementedError

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """Importance weights [B] of a batch whose samples were drawn with `probabilities` [B]; ones by default."""
        return np.ones_like(probabilities, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """The policy's parameters and derived state, as plain Python numbers."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; checked before anything changes."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.state_dict().items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
