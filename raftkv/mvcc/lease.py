"""Leases as replicated state: ids, granted TTLs and attached keys.

Time is not part of this state. When a lease expires is decided outside the
state machine (see ``expiry.py``) and applied as an ordinary revoke, so every
replica applies the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkv.errors import LeaseExists, LeaseNotFound, LeaseTTLTooLarge

MAX_LEASE_TTL = 9_000_000_000  # seconds, etcd's limit
DEFAULT_MIN_LEASE_TTL = 2  # etcd's default: 1.5 election timeouts, rounded up


@dataclass
class Lease:
    id: int
    ttl: int
    keys: set[bytes] = field(default_factory=set)


class Lessor:
    def __init__(self, min_ttl: int = DEFAULT_MIN_LEASE_TTL) -> None:
        self.min_ttl = min_ttl
        self._leases: dict[int, Lease] = {}

    def __len__(self) -> int:
        return len(self._leases)

    def __contains__(self, lease_id: int) -> bool:
        return lease_id in self._leases

    def grant(self, lease_id: int, ttl: int) -> Lease:
        if lease_id == 0:
            raise LeaseNotFound()  # etcd: 0 means "no lease"; servers pick an id before this
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        if lease_id in self._leases:
            raise LeaseExists()
        lease = Lease(lease_id, max(ttl, self.min_ttl))
        self._leases[lease_id] = lease
        return lease

    def get(self, lease_id: int) -> Lease:
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        return lease

    def remove(self, lease_id: int) -> Lease:
        lease = self.get(lease_id)
        del self._leases[lease_id]
        return lease

    def attach(self, lease_id: int, key: bytes) -> None:
        self._leases[lease_id].keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    def leases(self) -> list[Lease]:
        return list(self._leases.values())
