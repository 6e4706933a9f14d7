"""The backend quota: how big the store counts itself, and what a write adds.

raftkv has no database file, so its "backend size" is a model of one: every
version the store keeps (its history since the last compaction, tombstones
included) costs its key and value plus etcd's per-write overhead, and every
lease etcd's per-lease overhead. With etcd's own costs, a quota admits about
as many writes here as on etcd. ``in use`` falls when compaction drops
versions; the *size*, like a database file, keeps its high-water mark until
a defragmentation brings it down to what is in use.
"""

from __future__ import annotations

from raftkv.mvcc.requests import LeaseGrantRequest, PutRequest, RequestOp, TxnRequest
from raftkv.mvcc.types import KeyValue

DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024**3  # etcd's default (--quota-backend-bytes 0)
KV_OVERHEAD = 256  # etcd's estimate of what one write adds besides key and value
LEASE_OVERHEAD = 64


def version_cost(kv: KeyValue) -> int:
    return KV_OVERHEAD + len(kv.key) + len(kv.value)


def _put_cost(request: PutRequest) -> int:
    return KV_OVERHEAD + len(request.key) + len(request.value)


def _branch_cost(ops: list[RequestOp]) -> int:
    # as etcd counts a txn: the puts directly in a branch (a nested txn's count nothing)
    return sum(_put_cost(op) for op in ops if isinstance(op, PutRequest))


def request_cost(request: object) -> int:
    """What etcd expects a request to add: its check before proposing one is
    ``size + cost < quota``."""
    if isinstance(request, PutRequest):
        return _put_cost(request)
    if isinstance(request, TxnRequest):
        return max(_branch_cost(request.success), _branch_cost(request.failure))
    if isinstance(request, LeaseGrantRequest):
        return LEASE_OVERHEAD
    return 0


def checked_by_quota(request: object) -> bool:
    """The requests etcd checks against the quota before proposing them."""
    return isinstance(request, (PutRequest, TxnRequest, LeaseGrantRequest))


def effective_quota(configured: int) -> int | None:
    """The quota in bytes for a --quota-backend-bytes value; None when
    disabled (a negative value, as in etcd)."""
    if configured < 0:
        return None
    return configured or DEFAULT_QUOTA_BACKEND_BYTES
