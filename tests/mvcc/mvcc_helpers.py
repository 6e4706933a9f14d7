"""Small helpers shared by the tests/mvcc unit tests.

Each helper sends one request to a KVStore, exactly as etcd's KV service
would receive it, so the tests read like the etcd operations they check.
"""

from __future__ import annotations

from raftkv.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    CompactionRequest,
    DeleteRangeRequest,
    KVStore,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutRequest,
    RangeRequest,
    StoreLimits,
    TxnRequest,
)

EQ, GT, LT, NE = (
    CompareResult.EQUAL, CompareResult.GREATER, CompareResult.LESS, CompareResult.NOT_EQUAL,
)


def new_store(**limits) -> KVStore:
    return KVStore(StoreLimits(**limits)) if limits else KVStore()


def put(s: KVStore, key: bytes, value: bytes = b"v", lease: int = 0, **flags):
    return s.put(PutRequest(key, value, lease=lease, **flags))


def get(s: KVStore, key: bytes, range_end: bytes = b"", **options):
    return s.range(RangeRequest(key, range_end, **options))


def get_one(s: KVStore, key: bytes, revision: int = 0):
    """The key's KeyValue (at ``revision``), or None."""
    kvs = get(s, key, revision=revision).kvs
    assert len(kvs) <= 1
    return kvs[0] if kvs else None


def keys(response) -> list[bytes]:
    return [kv.key for kv in response.kvs]


def delete(s: KVStore, key: bytes, range_end: bytes = b"", prev_kv: bool = False):
    return s.delete_range(DeleteRangeRequest(key, range_end, prev_kv=prev_kv))


def txn(s: KVStore, compare=(), success=(), failure=()):
    return s.txn(TxnRequest(list(compare), list(success), list(failure)))


def cmp(key: bytes, target: str, result: CompareResult, operand, range_end: bytes = b""):
    """A Compare; ``target`` is one of value/version/create/mod/lease."""
    return Compare(key, CompareTarget[target.upper()], result, operand, range_end)


def compact(s: KVStore, revision: int):
    return s.compact(CompactionRequest(revision))


def grant(s: KVStore, lease_id: int, ttl: int = 60):
    return s.lease_grant(LeaseGrantRequest(ttl=ttl, id=lease_id))


def revoke(s: KVStore, lease_id: int):
    return s.lease_revoke(LeaseRevokeRequest(lease_id))


def history(s: KVStore, since: int = 1) -> list[tuple[int, list[tuple[bytes, int]]]]:
    """The store's change log as (revision, [(key, version), ...]); version 0 is a delete."""
    return [(rev, [(kv.key, kv.version) for kv in changes]) for rev, changes in s.history_since(since)]
