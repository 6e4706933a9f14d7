"""Which permissions a request needs, as etcd 3.4 checks them.

A range read needs READ on its range; a put WRITE on its key (and READ too
with prev_kv); a delete WRITE on its range (READ too with prev_kv); a txn
READ on every compared key or range and the permissions of every operation
in both branches, nested txns included; revoking a lease WRITE on every key
attached to it; auth management the root role.

A request checked here goes to the log as ``Authorized``, with the auth
revision it was checked at: it is applied only while the users and roles are
still those (etcd checks again at apply), so a write racing with the revocation
of the permission it needs, or checked by a member whose copy lagged, fails with
``AuthOldRevision`` and its client asks again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from raftkv.mvcc.auth import ADMIN_REQUESTS, AuthOldRevision, AuthStore, PermissionType
from raftkv.mvcc.lease import Lessor
from raftkv.mvcc.requests import DeleteRangeRequest, LeaseRevokeRequest, PutRequest, RangeRequest, TxnRequest

READ, WRITE = PermissionType.READ, PermissionType.WRITE


@dataclass(frozen=True)
class Authorized:
    """A request whose permissions were checked at ``auth_revision``."""

    request: object
    auth_revision: int


def unwrapped(request: object) -> object:
    """The request itself, whether or not it comes as ``Authorized``."""
    return request.request if isinstance(request, Authorized) else request


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


def authorize(auth: AuthStore, lessor: Lessor, user: str | None, request: object) -> int:
    """Raise etcd's error when ``user`` may not make ``request`` (nothing
    while auth is off); return the auth revision the decision was made at."""
    if not auth.enabled:
        return auth.revision
    if isinstance(request, ADMIN_REQUESTS):
        auth.check_admin(user)
        return auth.revision
    for key, range_end, wanted in needed(request, lessor):
        auth.check(user, key, range_end, wanted)
    return auth.revision


def check_still_authorized(auth: AuthStore, request: Authorized) -> None:
    """At apply: refuse a request on keys checked before the users and roles
    last changed. (Auth management, which needs the root role, is not checked
    again: its own changes move the revision, and etcd checks it by user.)"""
    if auth.enabled and request.auth_revision < auth.revision and not isinstance(request.request, ADMIN_REQUESTS):
        raise AuthOldRevision()
