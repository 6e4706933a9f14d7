"""Which permissions a request needs, as etcd 3.4 checks them.

A range read needs READ on its range; a put WRITE on its key (and READ too
with prev_kv); a delete WRITE on its range (READ too with prev_kv); a txn
READ on every compared key or range and the permissions of every operation
in both branches, nested txns included; revoking a lease WRITE on every key
attached to it; auth management the root role.
"""

from __future__ import annotations

from collections.abc import Iterator

from raftkv.mvcc.auth import ADMIN_REQUESTS, AuthStore, PermissionType
from raftkv.mvcc.lease import Lessor
from raftkv.mvcc.requests import DeleteRangeRequest, LeaseRevokeRequest, PutRequest, RangeRequest, TxnRequest

READ, WRITE = PermissionType.READ, PermissionType.WRITE


def needed(request: object, lessor: Lessor) -> Iterator[tuple[bytes, bytes, PermissionType]]:
    if isinstance(request, RangeRequest):
        yield request.key, request.range_end, READ
    elif isinstance(request, PutRequest):
        yield request.key, b"", WRITE
        if request.prev_kv:
            yield request.key, b"", READ
    elif isinstance(request, DeleteRangeRequest):
        yield request.key, request.range_end, WRITE
        if request.prev_kv:
            yield request.key, request.range_end, READ
    elif isinstance(request, TxnRequest):
        for compare in request.compare:
            yield compare.key, compare.range_end, READ
        for op in (*request.success, *request.failure):
            yield from needed(op, lessor)
    elif isinstance(request, LeaseRevokeRequest) and request.id in lessor:
        for key in sorted(lessor.get(request.id).keys):
            yield key, b"", WRITE


def authorize(auth: AuthStore, lessor: Lessor, user: str | None, request: object) -> None:
    """Raise etcd's error when ``user`` may not make ``request``; nothing while auth is off."""
    if not auth.enabled:
        return
    if isinstance(request, ADMIN_REQUESTS):
        auth.check_admin(user)
        return
    for key, range_end, wanted in needed(request, lessor):
        auth.check(user, key, range_end, wanted)
