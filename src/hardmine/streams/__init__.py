"""Hard example mining over streams: `HardStream` yields candidate batches with stream ids from any iterable of
samples; `HardReplay` mixes the hardest recent samples back in. See docs/streams.md."""

from hardmine.streams.replay import HardReplay
from hardmine.streams.stream import HardStream

__all__ = ["HardReplay", "HardStream"]
