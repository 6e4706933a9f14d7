"""When each lease runs out. The caller supplies the clock.

Only the member that decides expiry (the embedded store, or a cluster's
leader) keeps these deadlines; what it decides is applied as a revoke.
"""

from __future__ import annotations

import heapq


EXPIRED_RETRY_SECONDS = 3.0  # etcd retries an expired lease's revoke after 3 s


class LeaseDeadlines:
    """Deadlines by lease id, and which leases were already offered for revoke.

    A lease offered for revoke stays expired: renewing it fails (etcd's
    Renew answers "lease not found" for a lease past its deadline), and it is
    offered again every EXPIRED_RETRY_SECONDS until it is removed.
    """

    def __init__(self) -> None:
        self._deadline: dict[int, float] = {}
        self._ttl: dict[int, int] = {}
        self._due: dict[int, float] = {}  # when to offer the lease for revoke next
        self._offered: set[int] = set()
        self._heap: list[tuple[float, int]] = []

    def __contains__(self, lease_id: int) -> bool:
        return lease_id in self._deadline

    def ids(self) -> list[int]:
        return list(self._deadline)

    def by_expiry(self, lease_ids: list[int]) -> list[int]:
        """``lease_ids`` soonest to expire first, as etcd lists leases (those
        without a deadline here last)."""
        never = float("inf")
        return sorted(lease_ids, key=lambda i: (self._deadline.get(i, never), i))

    def start(self, lease_id: int, ttl: int, now: float) -> None:
        """Begin the lease (or give it its full TTL again) from ``now``."""
        deadline = now + ttl
        self._ttl[lease_id] = ttl
        self._deadline[lease_id] = deadline
        self._offered.discard(lease_id)
        self._schedule(lease_id, deadline)

    def renew(self, lease_id: int, now: float) -> int | None:
        """Restart the lease's TTL; None if it has already run out."""
        if lease_id in self._offered or self._deadline[lease_id] <= now:
            return None
        ttl = self._ttl[lease_id]
        self.start(lease_id, ttl, now)
        return ttl

    def remove(self, lease_id: int) -> None:
        self._deadline.pop(lease_id, None)
        self._ttl.pop(lease_id, None)
        self._due.pop(lease_id, None)
        self._offered.discard(lease_id)

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
        """Leases due for revoke, oldest first. Each is offered again after
        EXPIRED_RETRY_SECONDS until removed, in case its revoke is lost."""
        due: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, lease_id = heapq.heappop(heap)
            if self._due.get(lease_id) == when:
                due.append(lease_id)
        for lease_id in due:
            self._offered.add(lease_id)
            self._schedule(lease_id, now + EXPIRED_RETRY_SECONDS)
        return due

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _schedule(self, lease_id: int, when: float) -> None:
        self._due[lease_id] = when
        heapq.heappush(self._heap, (when, lease_id))
        if len(self._heap) > 2 * len(self._due) + 64:
            # a renewal leaves its old deadline behind: drop them before they
            # outnumber the live ones (long TTLs renewed often would grow it forever)
            self._heap = [(due, i) for i, due in self._due.items()]
            heapq.heapify(self._heap)
