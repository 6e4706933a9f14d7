"""What one benchmark run is: a system, a cluster size, a workload, a fault.

Shared by the load, the faults and the harness; no I/O here."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

WORKLOADS = ("put", "get", "sget", "cas", "mix", "lease-churn", "watch-fanout", "objects")
FAULTS = ("none", "kill-leader", "kill-follower", "kill-random", "pause-leader", "restart-all",
          "member-replace", "slow-disk", "partition-leader", "partition-leader-oneway", "partition-follower",
          "kill-main-only", "kill-main-only-all")
# faults that kill -9 only a member's main process, repeatedly, with frequent snapshots (bench.kill_main)
KILL_MAIN_FAULTS = ("kill-main-only", "kill-main-only-all")
KILL_MAIN_SNAPSHOT_COUNT = 500
# --nemesis: faults composed at random over the whole run (bench.nemesis) instead of one --fault
NEMESES = ("none", "random")
NEMESIS_SNAPSHOT_COUNT = 10_000   # snapshots every few seconds under load, for both systems
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
    snapshot_count: int | None = None    # --snapshot-count of every member (both systems); default:
                                         # KILL_MAIN_SNAPSHOT_COUNT for the kill-main faults, else the system's own
    fault_interval: float = 5.0          # repeated faults (kill-main-*): seconds from one injection to the next
    nemesis: str = "none"                # "random": a schedule of faults drawn from ``seed`` (bench.nemesis)

    def __post_init__(self) -> None:
        if self.watchers is None:
            self.watchers = FANOUT_WATCHERS if self.workload == "watch-fanout" else 2
        if self.nemesis not in NEMESES:
            raise ValueError(f"nemesis must be one of {NEMESES}")
        if self.nemesis != "none" and self.fault != "none":
            raise ValueError("a run has either a --fault or a --nemesis, not both")
        if self.snapshot_count is None and self.fault in KILL_MAIN_FAULTS:
            self.snapshot_count = KILL_MAIN_SNAPSHOT_COUNT
        if self.snapshot_count is None and self.nemesis != "none":
            self.snapshot_count = NEMESIS_SNAPSHOT_COUNT

    @property
    def member_args(self) -> list[str]:
        """Flags every member gets, the same for raftkv and etcd."""
        return ["--snapshot-count", str(self.snapshot_count)] if self.snapshot_count is not None else []

    @property
    def fault_label(self) -> str:
        """The fault as results and tables name it: the --fault, or the nemesis and its seed."""
        return f"{self.nemesis}-nemesis-s{self.seed}" if self.nemesis != "none" else self.fault

    @property
    def name(self) -> str:
        return f"{self.system}-{self.nodes}n-{self.workload}-{self.fault_label}-c{self.clients}"


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
