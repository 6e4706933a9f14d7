"""The one interface every raftkv connection offers.

``raftkv.open()`` implements it in-process; a cluster member and the remote
client implement the same few primitives (``execute`` and friends) and
inherit everything else from here.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from raftkv.client import ops
from raftkv.client.ops import Bytes
from raftkv.client.passwords import password_matches
from raftkv.errors import LeaseNotFound, NotLeader, NotSupported
from raftkv.mvcc.auth import AuthenticateRequest, AuthFailed
from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmMember,
    AlarmRequest,
    AlarmType,
    CompactionRequest,
    Compare,
    DeleteRangeResponse,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    PutResponse,
    RangeResponse,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnResponse,
)
from raftkv.mvcc.store import KVStore
from raftkv.mvcc.types import Event, KeyValue
from raftkv.mvcc.watch import WatchResponse
from raftkv.raft.stats import RaftStatsSnapshot

log = logging.getLogger(__name__)


@dataclass
class Status:
    version: str
    member_id: int
    leader: int
    raft_term: int
    raft_index: int
    revision: int
    compact_revision: int
    key_count: int
    lease_count: int
    watcher_count: int
    is_learner: bool = False
    raft_applied_index: int = 0
    db_size: int = 0  # etcd's dbSize: see mvcc/quota.py for what raftkv counts
    db_size_in_use: int = 0


@dataclass
class LeaseTTL:
    """A lease's time to live; ``ttl`` is -1 when the lease does not exist."""

    id: int
    ttl: int
    granted_ttl: int
    keys: list[bytes] = field(default_factory=list)


class Watch(abc.ABC):
    """A running watch. Iterating yields WatchResponse batches until it is
    cancelled; ``events()`` yields the events alone."""

    id: int

    @abc.abstractmethod
    def next_response(self, timeout: float | None = None) -> WatchResponse | None:
        """The next batch, or None if ``timeout`` passes first or the watch has ended."""

    @abc.abstractmethod
    def cancel(self) -> None: ...

    @property
    @abc.abstractmethod
    def canceled(self) -> bool: ...

    def __iter__(self) -> Iterator[WatchResponse]:
        while True:
            response = self.next_response()
            if response is None:
                return
            yield response
            if response.canceled:
                return

    def events(self) -> Iterator[Event]:
        for response in self:
            yield from response.events

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Lease:
    """A granted lease. Used as a context manager it is kept alive in the
    background and revoked on exit."""

    def __init__(self, kv: KVClient, lease_id: int, ttl: int) -> None:
        self._kv = kv
        self.id = lease_id
        self.ttl = ttl
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Lease(id={self.id}, ttl={self.ttl})"

    def revoke(self) -> None:
        self._kv.lease_revoke(self.id)

    def keep_alive(self) -> int:
        return self._kv.lease_keep_alive(self.id)

    def time_to_live(self, keys: bool = False) -> LeaseTTL:
        return self._kv.lease_time_to_live(self.id, keys=keys)

    def __enter__(self) -> Lease:
        self._keeper = threading.Thread(
            target=self._keep_alive_loop, name=f"raftkv-lease-{self.id:x}", daemon=True
        )
        self._keeper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join()
        try:
            self.revoke()
        except LeaseNotFound:
            pass

    def _keep_alive_loop(self) -> None:
        interval = max(self.ttl / 3.0, 0.1)  # etcd's clients renew at a third of the TTL
        while not self._stop.wait(interval):
            try:
                self.keep_alive()
            except LeaseNotFound:
                log.warning("lease expired while kept alive lease_id=%x", self.id)
                return
            except Exception:  # keep trying: the store may be briefly unavailable
                log.exception("lease keep-alive failed lease_id=%x", self.id)


class TxnBuilder:
    """``kv.txn().if_(...).then(...).else_(...).commit()``"""

    def __init__(self, kv: KVClient) -> None:
        self._kv = kv
        self._compare: list[Compare] = []
        self._success: list[RequestOp] = []
        self._failure: list[RequestOp] = []

    def if_(self, *compares: Compare) -> TxnBuilder:
        self._compare.extend(compares)
        return self

    def then(self, *requests: RequestOp) -> TxnBuilder:
        self._success.extend(requests)
        return self

    def else_(self, *requests: RequestOp) -> TxnBuilder:
        self._failure.extend(requests)
        return self

    def commit(self) -> TxnResponse:
        return self._kv.execute(ops.txn(self._compare, self._success, self._failure))


class KVClient(abc.ABC):
    """put/get/range/delete/txn/watch/lease/compact/status over any connection."""

    # ---- the primitives a connection provides ------------------------------

    @abc.abstractmethod
    def execute(self, request: Any) -> Any:
        """Run a request (range, put, delete, txn, compaction, lease grant or
        revoke, alarm) and return its response (the request's response type:
        a RangeRequest gives a RangeResponse, ...), raising typed errors."""

    def submit(self, request: Any, done: Callable[[Any, BaseException | None], None]) -> bool:
        """Start ``request`` without waiting for it, if this connection can:
        then True, and ``done(response, None)`` or ``done(None, error)`` is
        called once, from whichever thread finishes it. False: nothing was
        started; ``execute`` it (it may block)."""
        return False

    @abc.abstractmethod
    def lease_keep_alive(self, lease_id: int) -> int:
        """Renew a lease once; returns its TTL. Raises LeaseNotFound."""

    @abc.abstractmethod
    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL: ...

    @abc.abstractmethod
    def leases(self) -> list[int]: ...

    @abc.abstractmethod
    def open_watch(self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool,
                   no_put: bool, no_delete: bool, progress_notify: bool) -> Watch: ...

    @abc.abstractmethod
    def status(self) -> Status: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # ---- what a server in the same process asks of the store it serves ---------

    @property
    def closed(self) -> bool:
        return False

    def raft_term(self) -> int:
        """The Raft term of the member behind this connection (1 without Raft)."""
        return 1

    @contextlib.contextmanager
    def local_store(self) -> Iterator[KVStore | None]:
        """This process's own store, held under its lock for the ``with`` block;
        None when the store lives in another process."""
        yield None

    def read_barrier(self, timeout: float) -> None:
        """Return once a linearizable read would be answered; raise if not."""
        self.get(b"health")

    # ---- auth (etcd's users and roles; see mvcc/auth.py) -----------------------

    def authorize(self, user: str | None, request: object) -> int | None:
        """Raise etcd's error when ``user`` may not make ``request``, and
        return the auth revision the decision was made at; None when the store
        is in another process, which checks for itself."""
        return None

    def user_for_token(self, token: str) -> str | None:
        """The user an auth token names, or None when it names nobody."""
        return None

    def authenticate(self, name: str, password: str) -> str:
        """A token for ``name`` (etcd's Authenticate): the password checked
        against this process's store, the token recorded through a request."""
        with self.local_store() as store:
            if store is None:
                raise NotSupported("raftkv: this connection cannot authenticate users")
            password_hash = store.auth.password_hash_for(name)
            revision = store.auth.revision
        if not password_matches(password, password_hash):
            raise AuthFailed()
        return self.execute(AuthenticateRequest(name, self.issue_token(name, revision))).token

    def issue_token(self, user: str, auth_revision: int) -> str:
        """A new token for ``user``, from this process's store's token kind."""
        raise NotSupported("raftkv: this connection cannot authenticate users")

    def move_leader(self, target_id: int, timeout: float) -> None:
        """Make member ``target_id`` the leader (etcd's MoveLeader, asked of
        the leader); without Raft in this process nothing here leads."""
        raise NotLeader()

    def raft_stats(self) -> RaftStatsSnapshot | None:
        """What the Raft member behind this connection counted (leader
        changes, proposals, journal fsyncs); None without Raft in this process."""
        return None

    # ---- everything else ----------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, key: Bytes, value: Bytes = b"", *, lease: int | Lease = 0,
            prev_kv: bool = False, ignore_value: bool = False,
            ignore_lease: bool = False) -> PutResponse:
        lease_id = lease.id if isinstance(lease, Lease) else lease
        return self.execute(ops.put(key, value, lease=lease_id, prev_kv=prev_kv,
                                    ignore_value=ignore_value, ignore_lease=ignore_lease))

    def get(self, key: Bytes, *, revision: int = 0, serializable: bool = False) -> KeyValue | None:
        """The key's current (or past) version, or None."""
        kvs = self.execute(ops.get(key, revision=revision, serializable=serializable)).kvs
        return kvs[0] if kvs else None

    def range(
        self,
        key: Bytes,
        range_end: Bytes | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_target: SortTarget | str = SortTarget.KEY,
        sort_order: SortOrder | str = SortOrder.NONE,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> RangeResponse:
        return self.execute(ops.get(
            key, range_end, prefix=prefix, from_key=from_key, limit=limit, revision=revision,
            sort_target=sort_target, sort_order=sort_order, serializable=serializable,
            keys_only=keys_only, count_only=count_only,
            min_mod_revision=min_mod_revision, max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision, max_create_revision=max_create_revision,
        ))

    def delete(self, key: Bytes, range_end: Bytes | None = None, *, prefix: bool = False,
               from_key: bool = False, prev_kv: bool = False) -> DeleteRangeResponse:
        return self.execute(ops.delete(key, range_end, prefix=prefix, from_key=from_key,
                                       prev_kv=prev_kv))

    def txn(self) -> TxnBuilder:
        return TxnBuilder(self)

    def compact(self, revision: int, *, physical: bool = False) -> int:
        """Forget history below ``revision``; returns the current revision."""
        return self.execute(CompactionRequest(revision, physical)).revision

    def lease(self, ttl: int, *, lease_id: int = 0) -> Lease:
        """Grant a lease (``lease_id`` 0 lets the store choose the id)."""
        response = self.execute(LeaseGrantRequest(ttl=ttl, id=lease_id))
        return Lease(self, response.id, response.ttl)

    def lease_revoke(self, lease_id: int) -> None:
        self.execute(LeaseRevokeRequest(int(lease_id)))

    # ---- alarms and space -------------------------------------------------

    def alarms(self) -> list[AlarmMember]:
        """The alarms raised in the cluster (NOSPACE when a member reached its quota)."""
        return self.execute(AlarmRequest()).alarms

    def alarm_disarm(self, member_id: int = 0, alarm: AlarmType = AlarmType.NONE) -> list[AlarmMember]:
        """Clear one alarm, or with no arguments every alarm raised (as
        etcdctl alarm disarm does); returns the alarms cleared."""
        if member_id or alarm != AlarmType.NONE:
            return self.execute(AlarmRequest(AlarmAction.DEACTIVATE, member_id, alarm)).alarms
        cleared = []
        for raised in self.alarms():
            cleared += self.alarm_disarm(raised.member_id, raised.alarm)
        return cleared

    def defragment(self) -> None:
        """Bring this member's size (Status.db_size) down to what is in use."""
        with self.local_store() as store:
            if store is not None:
                store.defragment()

    def watch(
        self,
        key: Bytes,
        range_end: Bytes | None = None,
        *,
        prefix: bool = False,
        from_key: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        callback: Callable[[WatchResponse], None] | None = None,
    ) -> Watch:
        """Watch a key or range from now, or replay from ``start_revision``.

        With ``callback`` each batch is handed to it on a background thread;
        otherwise iterate the returned Watch.
        """
        k, end = ops.key_span(key, range_end, prefix=prefix, from_key=from_key)
        watch = self.open_watch(k, end, start_revision, prev_kv, no_put, no_delete, progress_notify)
        if callback is not None:
            threading.Thread(
                target=_run_callback, args=(watch, callback),
                name=f"raftkv-watch-{watch.id}", daemon=True,
            ).start()
        return watch


def _run_callback(watch: Watch, callback: Callable[[WatchResponse], None]) -> None:
    for response in watch:
        try:
            callback(response)
        except Exception:
            log.exception("watch callback failed watch_id=%d", watch.id)
