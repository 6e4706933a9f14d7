"""What one benchmark run is: a system, a cluster size, a workload, a fault.

Shared by the load, the faults and the harness; no I/O here."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

WORKLOADS = ("put", "get", "sget", "cas", "mix", "lease-churn", "watch-fanout", "objects")
FAULTS = ("none", "kill-leader", "kill-follower", "kill-random", "pause-leader", "restart-all",
          "member-replace", "slow-disk", "partition-leader", "partition-leader-oneway", "partition-follower")
PREFIX = "/bench/"
FANOUT_WATCHERS = 200


@dataclass
class Scenario:
    system: str = "raftkv"
    nodes: int = 3
    workload: str = "mix"
    clients: int = 64
    duration: float = 30.0
    fault: str = "none"
    keys: int = 32
    fault_at: float | None = None        # seconds into the run; default a third of it
    fault_delay: float = 3.0             # until the killed member restarts / the paused one resumes
    timeout: float = 2.0                 # per request
    watchers: int | None = None          # default: FANOUT_WATCHERS for watch-fanout, else 2
    value_size: int = 64
    seed: int = 1
    check_timeout: float = 120.0
    fsync_delay_ms: float = 10.0         # the slow-disk fault: added to every fsync/fdatasync

    def __post_init__(self) -> None:
        if self.watchers is None:
            self.watchers = FANOUT_WATCHERS if self.workload == "watch-fanout" else 2

    @property
    def name(self) -> str:
        return f"{self.system}-{self.nodes}n-{self.workload}-{self.fault}-c{self.clients}"


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def ms(x: float) -> float | None:
    return None if x != x else round(x * 1000, 3)


class Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)
