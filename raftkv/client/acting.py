"""A connection used on behalf of one user: every request is checked
against that user's permissions before it runs (when auth is on)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from raftkv.client.api import KVClient, LeaseTTL, Status, Watch
from raftkv.mvcc.auth import InvalidAuthToken, PermissionDenied
from raftkv.mvcc.permissions import Authorized
from raftkv.mvcc.requests import RangeRequest
from raftkv.mvcc.store import KVStore


class ActingAs(KVClient):
    """``token``: the auth token ``user`` was found by, if any."""

    def __init__(self, kv: KVClient, user: str | None, token: str | None = None) -> None:
        self.kv = kv
        self.user = user
        self.token = token

    def execute(self, request: Any) -> Any:
        checked_at = self._authorize(request)
        return self.kv.execute(request if checked_at is None else Authorized(request, checked_at))

    def _authorize(self, request: object) -> int | None:
        try:
            return self.kv.authorize(self.user, request)
        except PermissionDenied:
            # the user may have been deleted since its token was read: then
            # the token is what is wrong (its deletion ends its tokens)
            if self.token is not None and self.kv.user_for_token(self.token) != self.user:
                raise InvalidAuthToken() from None
            raise

    def lease_keep_alive(self, lease_id: int) -> int:
        return self.kv.lease_keep_alive(lease_id)

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        return self.kv.lease_time_to_live(lease_id, keys)

    def leases(self) -> list[int]:
        return self.kv.leases()

    def open_watch(self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool,
                   no_put: bool, no_delete: bool, progress_notify: bool) -> Watch:
        self._authorize(RangeRequest(key, range_end))
        return self.kv.open_watch(key, range_end, start_revision, prev_kv, no_put, no_delete, progress_notify)

    def status(self) -> Status:
        return self.kv.status()

    def close(self) -> None:
        """The connection is the caller's: acting for a user does not end it."""

    @property
    def closed(self) -> bool:
        return self.kv.closed

    def raft_term(self) -> int:
        return self.kv.raft_term()

    @contextlib.contextmanager
    def local_store(self) -> Iterator[KVStore | None]:
        with self.kv.local_store() as store:
            yield store

    def read_barrier(self, timeout: float) -> None:
        self.kv.read_barrier(timeout)

    def authorize(self, user: str | None, request: object) -> int | None:
        return self.kv.authorize(user, request)

    def user_for_token(self, token: str) -> str | None:
        return self.kv.user_for_token(token)

    def authenticate(self, name: str, password: str) -> str:
        return self.kv.authenticate(name, password)
