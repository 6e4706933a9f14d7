"""When each lease runs out. The caller supplies the clock.

Only the member that decides expiry (the embedded store, or a cluster's
leader) keeps these deadlines; what it decides is applied as a revoke.
"""

from __future__ import annotations

import heapq


EXPIRED_RETRY_SECONDS = 3.0  # etcd retries an expired lease's revoke after 3 s


class LeaseDeadlines:
    def __init__(self) -> None:
        self._deadline: dict[int, float] = {}
        self._ttl: dict[int, int] = {}
        self._heap: list[tuple[float, int]] = []

    def __contains__(self, lease_id: int) -> bool:
        return lease_id in self._deadline

    def start(self, lease_id: int, ttl: int, now: float) -> None:
        """Begin (or renew) the lease: it runs out ``ttl`` seconds from ``now``."""
        deadline = now + ttl
        self._ttl[lease_id] = ttl
        self._deadline[lease_id] = deadline
        heapq.heappush(self._heap, (deadline, lease_id))

    def renew(self, lease_id: int, now: float) -> int:
        ttl = self._ttl[lease_id]
        self.start(lease_id, ttl, now)
        return ttl

    def remove(self, lease_id: int) -> None:
        self._deadline.pop(lease_id, None)
        self._ttl.pop(lease_id, None)

    def remaining(self, lease_id: int, now: float) -> int:
        """Whole seconds left, truncated as etcd reports them (negative once
        expired but not yet revoked); -1 if unknown."""
        deadline = self._deadline.get(lease_id)
        if deadline is None:
            return -1
        return int(deadline - now)

    def extend_all(self, now: float) -> None:
        """Give every lease its full TTL again, as etcd's new leader does."""
        for lease_id, ttl in list(self._ttl.items()):
            self.start(lease_id, ttl, now)

    def expired(self, now: float) -> list[int]:
        """Leases whose deadline has passed, oldest first. They stay tracked
        until removed, so a revoke that fails is decided again later."""
        due: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, lease_id = heapq.heappop(heap)
            if self._deadline.get(lease_id) == deadline:
                due.append(lease_id)
        for lease_id in due:
            # re-arm so an unapplied revoke is retried on the next check
            heapq.heappush(heap, (now + EXPIRED_RETRY_SECONDS, lease_id))
            self._deadline[lease_id] = now + EXPIRED_RETRY_SECONDS
        return due

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and self._deadline.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
