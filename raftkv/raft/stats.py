"""What a member counts about its own Raft work, for etcd's metrics.

Counters only grow; ``proposals_pending`` is a gauge. Every method is safe
from any thread.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

# etcd's buckets for etcd_disk_wal_fsync_duration_seconds: 1 ms doubling to 8.192 s
FSYNC_BUCKETS = tuple(0.001 * 2**i for i in range(14))


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: tuple[float, ...]   # upper bounds
    counts: tuple[int, ...]      # observations at or below each bound (cumulative), then +Inf
    total: float


@dataclass
class DurationHistogram:
    buckets: tuple[float, ...] = FSYNC_BUCKETS
    _counts: list[int] = field(default_factory=list)
    _total: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._counts = [0] * (len(self.buckets) + 1)

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._total += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts = list(self._counts)
            total = self._total
        cumulative, running = [], 0
        for count in counts:
            running += count
            cumulative.append(running)
        return HistogramSnapshot(self.buckets, tuple(cumulative), total)


@dataclass(frozen=True)
class RaftStatsSnapshot:
    leader_changes: int
    proposals_pending: int
    proposals_failed: int
    fsync: HistogramSnapshot


class RaftStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leader_changes = 0
        self._pending = 0
        self._failed = 0
        self._leader: str | None = None
        self.fsync = DurationHistogram()

    def saw_leader(self, leader: str | None) -> None:
        """Called as the member learns who leads; counts each new leader (as
        etcd does: a change to a known leader, not to none)."""
        with self._lock:
            if leader is not None and leader != self._leader:
                self._leader_changes += 1
            if leader is not None:
                self._leader = leader

    def proposal_started(self) -> None:
        with self._lock:
            self._pending += 1

    def proposal_ended(self, failed: bool) -> None:
        with self._lock:
            self._pending -= 1
            self._failed += failed

    def snapshot(self) -> RaftStatsSnapshot:
        with self._lock:
            return RaftStatsSnapshot(self._leader_changes, self._pending, self._failed, self.fsync.snapshot())
