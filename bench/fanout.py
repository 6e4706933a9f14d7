"""``watch-fanout``: the put workload under many watchers of the prefix.

The watchers are the harness's own (bench.watchers.start_watchers, which
multiplexes them over a few gRPC streams per member when there are many),
200 unless told otherwise (Scenario.watchers); every one of them is checked
against the final history, and the run reports their delivery latency (write
acknowledged -> event received) and how many events per second reached them
all together."""

from __future__ import annotations

import random

from bench.load import Load


class FanoutLoad(Load):
    def _choose(self, rng: random.Random) -> str:
        return "put"
