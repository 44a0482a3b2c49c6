"""Where a sampler stands among the ranks: rank and world size, read when an epoch starts."""

from __future__ import annotations

import logging
import os
import warnings

from hardmine.distributed import rank_and_world

_log = logging.getLogger("hardmine")


class World:
    """This process's rank and the world size, as of the last `read` (a sampler may be built before
    `torch.distributed.init_process_group`, so it reads them at each epoch's start)."""

    def __init__(self) -> None:
        self.rank, self.size = self.now()
        self._warned = False

    @staticmethod
    def now() -> tuple[int, int]:
        """(rank, world size) as torch.distributed has them now, without recording them."""
        return rank_and_world()

    def read(self) -> tuple[int, int]:
        """Read rank and world size; log a change, warn once when WORLD_SIZE says several processes but
        torch.distributed has no process group."""
        rank, world = self.now()
        if (rank, world) != (self.rank, self.size):
            _log.info("HardExampleSampler: rank %d of world size %d (was rank %d of %d)", rank, world,
                      self.rank, self.size)
            self.rank, self.size = rank, world
        env_world = os.environ.get("WORLD_SIZE", "1")
        if world == 1 and env_world.isdigit() and int(env_world) > 1 and not self._warned:
            self._warned = True
            warnings.warn(f"WORLD_SIZE={env_world} in the environment but torch.distributed has no process group: "
                          "this process draws the batches of a single process (every rank the same ones); call "
                          "torch.distributed.init_process_group before iterating the sampler", stacklevel=5)
        return rank, world
