"""The key-value state machine: revisions, reads, writes, txns, compaction.

Pure and deterministic: the same requests applied in the same order give
the same state on every replica. No clock, no threads, no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from raftkv.errors import (
    Compacted,
    FutureRevision,
    KeyNotFound,
    LeaseNotFound,
    NoSpace,
    RequestTooLarge,
)
from raftkv.mvcc.alarms import AlarmTable
from raftkv.mvcc.auth import AUTH_REQUESTS, AuthResponse, AuthStore
from raftkv.mvcc.permissions import Authorized, authorize, check_still_authorized
from raftkv.mvcc.compare import compare_holds
from raftkv.mvcc.history import History
from raftkv.mvcc.index import KeyIndex
from raftkv.mvcc.key_history import KeyHistory
from raftkv.mvcc.lease import DEFAULT_MIN_LEASE_TTL, Lessor
from raftkv.mvcc.quota import LEASE_OVERHEAD, checked_by_quota, effective_quota, request_cost, version_cost
from raftkv.mvcc.requests import (
    AlarmRequest,
    AlarmResponse,
    AlarmType,
    CompactionRequest,
    CompactionResponse,
    Compare,
    DeleteRangeRequest,
    DeleteRangeResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
    request_size,
)
from raftkv.mvcc.types import KeyValue, tombstone
from raftkv.mvcc.validate import DEFAULT_MAX_TXN_OPS, check_request
from raftkv.mvcc.watch import WatchHub

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024  # etcd's --max-request-bytes default

_SORT_KEYS = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


@dataclass(frozen=True)
class StoreLimits:
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    min_lease_ttl: int = DEFAULT_MIN_LEASE_TTL
    quota_backend_bytes: int = 0  # etcd's flag: 0 is the default quota, negative none


class _Write:
    """The changes of one write request; they all share one new revision."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.begin = store.revision
        self.changes: list[KeyValue] = []
        self.prevs: list[KeyValue | None] = []

    @property
    def revision(self) -> int:
        return self.begin + 1

    @property
    def current(self) -> int:
        """The revision a read inside this write sees."""
        return self.begin + 1 if self.changes else self.begin

    def end(self) -> None:
        if self.changes:
            self.store.commit_write(self.revision, self.changes, self.prevs)


class KVStore:
    def __init__(self, limits: StoreLimits | None = None) -> None:
        self.limits = limits or StoreLimits()
        self.lessor = Lessor(self.limits.min_lease_ttl)
        self.watchers = WatchHub(self)
        self._index = KeyIndex()
        self._history = History()
        self._revision = 1  # an empty etcd is at revision 1
        self._compact_revision = -1
        self._live_keys = 0
        self.alarms = AlarmTable()
        self.auth = AuthStore()
        self._versions_size = 0  # the quota's cost of every version kept
        self._size = 0  # the high-water mark of size_in_use since the last defragmentation

    # ---- state ------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compact_revision(self) -> int:
        """The last compaction's revision; -1 before the first."""
        return self._compact_revision

    @property
    def key_count(self) -> int:
        return self._live_keys

    # ---- size and quota (see quota.py) ----------------------------------------

    @property
    def size_in_use(self) -> int:
        return self._versions_size + LEASE_OVERHEAD * len(self.lessor)

    @property
    def size(self) -> int:
        """etcd's dbSize: what the store has grown to since the last defragmentation."""
        return max(self._size, self.size_in_use)

    def defragment(self) -> None:
        self._size = self.size_in_use

    def _grew(self) -> None:
        self._size = max(self._size, self.size_in_use)

    def over_quota(self, request: object) -> bool:
        """etcd's check before proposing a write: would it take the store to
        its quota? (Then the member raises the NOSPACE alarm instead.)"""
        quota = effective_quota(self.limits.quota_backend_bytes)
        if quota is None or not checked_by_quota(request):
            return False
        cost = request_cost(request)
        return cost > 0 and self.size + cost >= quota  # etcd lets what adds nothing through

    def _refuse_if_no_space(self) -> None:
        # while a NOSPACE alarm is raised every member refuses what would grow the store
        if self.alarms.is_raised(AlarmType.NOSPACE):
            raise NoSpace()

    def snapshot(self) -> dict:
        """The replicated state as plain data (for a Raft snapshot). Watchers
        are local to a member and not part of it."""
        return {
            "revision": self._revision,
            "compact_revision": self._compact_revision,
            "keys": [(h.key, h.versions) for h in self._index.histories()],
            "history": self._history.entries(),
            "leases": [(lease.id, lease.ttl, sorted(lease.keys)) for lease in self.lessor.leases()],
            "alarms": self.alarms.snapshot(),
            "auth": [self.auth.snapshot()],  # a list, so that a snapshot reader can yield it in turn
        }

    def restore(self, state: dict) -> None:
        """Replace the state by a snapshot's; this member's watchers carry on
        from the revision they had reached."""
        reached = self._revision
        self._load(state)
        self.watchers.rewind(reached + 1)

    def take_state_of(self, other: KVStore) -> None:
        """Replace the state by ``other``'s (a store built apart, e.g. from a
        snapshot off the Raft thread; ``other`` is not to be used again). Only
        references move; this store's watchers carry on from the revision
        they had reached."""
        reached = self._revision
        self._index, self._history = other._index, other._history
        self._live_keys, self._versions_size = other._live_keys, other._versions_size
        self.lessor, self.alarms = other.lessor, other.alarms
        self.auth.restore(other.auth.snapshot())
        self._size = other._size
        self._revision, self._compact_revision = other._revision, other._compact_revision
        self.watchers.rewind(reached + 1)

    def _load(self, state: dict) -> None:
        histories = []
        live = size = 0
        for key, versions in state["keys"]:
            history = KeyHistory(key)
            history.versions = list(versions)
            histories.append(history)
            live += history.latest() is not None
            size += sum(map(version_cost, history.versions))
        self._index = KeyIndex.of(histories)
        if len(self._index) != len(histories):
            raise ValueError("a key appears twice in the state")
        self._live_keys = live
        self._versions_size = size
        self._history = History()
        for revision, changes in state["history"]:
            self._history.append(revision, changes)
        self.lessor = Lessor(self.limits.min_lease_ttl)
        for lease_id, ttl, keys in state["leases"]:
            self.lessor.grant(lease_id, ttl).keys.update(keys)
        self.alarms = AlarmTable()
        self.alarms.restore(state.get("alarms", ()))
        self.auth.restore(next(iter(state.get("auth", ())), None))
        self._size = self.size_in_use
        self._revision = state["revision"]
        self._compact_revision = state["compact_revision"]

    def history_since(self, revision: int, complete: bool = False) -> Iterator[tuple[int, list[KeyValue]]]:
        return self._history.since(revision, complete)

    def value_at(self, key: bytes, revision: int) -> KeyValue | None:
        history = self._index.get(key)
        return history.at(revision) if history is not None else None

    def index_range(self, key: bytes, range_end: bytes = b"", after: bytes | None = None) -> Iterator[KeyHistory]:
        """The histories of the keys in etcd's (key, range_end) range, in key
        order, starting after ``after`` when given."""
        return self._index.range(key, range_end, after)

    # ---- entry points -----------------------------------------------------

    def apply(self, request: object) -> Any:
        """Apply any request; the replicated log's single entry point."""
        if isinstance(request, Authorized):
            check_still_authorized(self.auth, request)
            request = request.request
        if isinstance(request, AUTH_REQUESTS):
            return self._apply_auth(request)
        handler = self._handlers.get(type(request))
        if handler is None:
            raise TypeError(f"not a store request: {type(request).__name__}")
        return handler(self, request)

    def range(self, request: RangeRequest) -> RangeResponse:
        self.admit(request)
        return self._range(request, None)

    def put(self, request: PutRequest) -> PutResponse:
        self.admit(request)
        self._refuse_if_no_space()
        if request.lease and request.lease not in self.lessor:
            raise LeaseNotFound()
        self._check_previous_exists(request)
        write = _Write(self)
        response = self._put(write, request)
        write.end()
        return response

    def delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse:
        self.admit(request)
        write = _Write(self)
        response = self._delete_range(write, request)
        write.end()
        return response

    def txn(self, request: TxnRequest) -> TxnResponse:
        self.admit(request)
        path: list[bool] = []
        self._txn_path(request, path)
        writes = not is_read_only(request)
        if writes:
            self._refuse_if_no_space()
            self._check_path(request, iter(path), self._check_txn_put)
        self._check_path(request, iter(path), self._check_txn_range)
        write = _Write(self) if writes else None
        response = self._txn(request, iter(path), write)
        if write is not None:
            write.end()
            response.revision = write.current
        else:
            response.revision = self._revision
        return response

    def compact(self, request: CompactionRequest) -> CompactionResponse:
        revision = request.revision
        if revision <= self._compact_revision:
            raise Compacted()
        if revision > self._revision:
            raise FutureRevision()
        self._compact_revision = revision
        emptied = []
        for history in self._index.histories():
            self._versions_size -= sum(map(version_cost, history.compact(revision)))
            if not history.versions:
                emptied.append(history.key)
        for key in emptied:
            self._index.remove(key)
        self._history.compact(revision)
        log.debug("compacted revision=%d keys_forgotten=%d", revision, len(emptied))
        return CompactionResponse(revision=self._revision)

    def lease_grant(self, request: LeaseGrantRequest) -> LeaseGrantResponse:
        self._refuse_if_no_space()
        lease = self.lessor.grant(request.id, request.ttl)
        self._grew()
        return LeaseGrantResponse(revision=self._revision, id=lease.id, ttl=lease.ttl)

    def lease_revoke(self, request: LeaseRevokeRequest) -> LeaseRevokeResponse:
        lease = self.lessor.get(request.id)
        write = _Write(self)
        for key in sorted(lease.keys):
            self._delete_keys(write, key, b"")
        self.lessor.remove(request.id)
        write.end()
        return LeaseRevokeResponse(revision=self._revision)

    def alarm(self, request: AlarmRequest) -> AlarmResponse:
        return self.alarms.apply(request)

    def _apply_auth(self, request: object) -> AuthResponse:
        response = self.auth.apply(request)
        response.revision = self._revision
        return response

    def authorize(self, user: str | None, request: object) -> int:
        """Raise etcd's error if ``user`` may not make ``request`` (auth.py);
        return the auth revision of the decision."""
        return authorize(self.auth, self.lessor, user, request)

    _handlers: dict[type, Callable[[KVStore, Any], Any]] = {
        RangeRequest: range,
        PutRequest: put,
        DeleteRangeRequest: delete_range,
        TxnRequest: txn,
        CompactionRequest: compact,
        LeaseGrantRequest: lease_grant,
        LeaseRevokeRequest: lease_revoke,
        AlarmRequest: alarm,
    }

    # ---- reads ------------------------------------------------------------

    def admit(self, request: object) -> None:
        """etcd's checks, in etcd's order: the request's own validity first,
        then its size — which only matters for what goes through the log."""
        check_request(request, self.limits.max_txn_ops)
        if goes_through_log(request) and request_size(request) > self.limits.max_request_bytes:
            raise RequestTooLarge()

    def _read_revision(self, request: RangeRequest, current: int) -> int:
        """The revision a read is at (its own, or ``current``), if it can be read."""
        revision = request.revision
        if revision > current:
            raise FutureRevision()
        if revision <= 0:
            revision = current
        if revision < self._compact_revision:
            raise Compacted()
        return revision

    def _range(self, request: RangeRequest, write: _Write | None) -> RangeResponse:
        current = write.current if write is not None else self._revision
        revision = self._read_revision(request, current)
        kvs = [
            kv
            for history in self._index.range(request.key, request.range_end)
            if (kv := history.at(revision)) is not None
        ]
        return _finish_range(request, kvs, current)

    def range_reader(self, request: RangeRequest, step_keys: int = 5000) -> RangeReader:
        """A range read in steps, for a caller that must not hold the store
        (and its writers) for the whole of a large read: each ``step`` reads
        at most ``step_keys`` keys and needs the store to itself; ``finish``
        (sorting, limits) does not touch the store. The read sees the store
        at the revision it began at, whatever is written between steps."""
        self.admit(request)
        current = self._revision
        return RangeReader(self, request, self._read_revision(request, current), current, step_keys)

    def _compared_kvs(self, compare: Compare) -> Iterator[KeyValue]:
        for history in self._index.range(compare.key, compare.range_end):
            kv = history.latest()
            if kv is not None:
                yield kv

    # ---- writes -----------------------------------------------------------

    def _check_previous_exists(self, request: PutRequest) -> None:
        if request.ignore_value or request.ignore_lease:
            if self.value_at(request.key, self._revision) is None:
                raise KeyNotFound()

    def _put(self, write: _Write, request: PutRequest) -> PutResponse:
        history = self._index.get_or_create(request.key)
        prev = history.latest()
        value = prev.value if request.ignore_value and prev else request.value
        lease = prev.lease if request.ignore_lease and prev else request.lease
        revision = write.revision
        if prev is None:
            kv = KeyValue(history.key, revision, revision, 1, value, lease)
            self._live_keys += 1
        else:
            kv = KeyValue(
                history.key, prev.create_revision, revision, prev.version + 1, value, lease
            )
            if prev.lease:
                self.lessor.detach(prev.lease, history.key)
        if lease:
            self.lessor.attach(lease, history.key)
        self._forget_replaced(history.record(kv))
        write.changes.append(kv)
        write.prevs.append(history.at(write.begin))  # watchers see the key as of the revision before
        return PutResponse(revision=revision, prev_kv=prev if request.prev_kv else None)

    def _delete_range(self, write: _Write, request: DeleteRangeRequest) -> DeleteRangeResponse:
        deleted = self._delete_keys(write, request.key, request.range_end)
        revision = write.revision if (deleted or write.changes) else write.begin
        return DeleteRangeResponse(
            revision=revision,
            deleted=len(deleted),
            prev_kvs=deleted if request.prev_kv else [],
        )

    def _delete_keys(self, write: _Write, key: bytes, range_end: bytes) -> list[KeyValue]:
        deleted = []
        revision = write.revision
        for history in self._index.range(key, range_end):
            prev = history.latest()
            if prev is None:
                continue
            gone = tombstone(history.key, revision)
            self._forget_replaced(history.record(gone))
            if prev.lease:
                self.lessor.detach(prev.lease, history.key)
            write.changes.append(gone)
            write.prevs.append(history.at(write.begin))
            deleted.append(prev)
        self._live_keys -= len(deleted)
        return deleted

    def _forget_replaced(self, replaced: KeyValue | None) -> None:
        if replaced is not None:
            self._versions_size -= version_cost(replaced)

    def commit_write(self, revision: int, changes: list[KeyValue], prevs: list[KeyValue | None]) -> None:
        self._versions_size += sum(map(version_cost, changes))
        self._grew()
        self._revision = revision
        self._history.append(revision, changes)
        self.watchers.notify(revision, changes, prevs)

    # ---- txn --------------------------------------------------------------

    def _txn_path(self, request: TxnRequest, path: list[bool]) -> None:
        """Decide every branch up front, against the state before any write
        (etcd evaluates nested compares this way too)."""
        succeeded = all(compare_holds(c, self._compared_kvs(c)) for c in request.compare)
        path.append(succeeded)
        for op in request.success if succeeded else request.failure:
            if isinstance(op, TxnRequest):
                self._txn_path(op, path)

    def _check_path(self, request: TxnRequest, path: Iterator[bool], check) -> None:
        for op in request.success if next(path) else request.failure:
            if isinstance(op, TxnRequest):
                self._check_path(op, path, check)
            else:
                check(op)

    def _check_txn_put(self, op: RequestOp) -> None:
        if isinstance(op, PutRequest):
            self._check_previous_exists(op)
            if op.lease and op.lease not in self.lessor:
                raise LeaseNotFound()

    def _check_txn_range(self, op: RequestOp) -> None:
        if isinstance(op, RangeRequest) and op.revision:
            if op.revision > self._revision:
                raise FutureRevision()
            if op.revision < self._compact_revision:
                raise Compacted()

    def _txn(self, request: TxnRequest, path: Iterator[bool], write: _Write | None) -> TxnResponse:
        succeeded = next(path)
        responses: list[ResponseOp] = []
        for op in request.success if succeeded else request.failure:
            if isinstance(op, RangeRequest):
                responses.append(self._range(op, write))
            elif isinstance(op, PutRequest):
                assert write is not None
                responses.append(self._put(write, op))
            elif isinstance(op, DeleteRangeRequest):
                assert write is not None
                responses.append(self._delete_range(write, op))
            else:
                # etcd leaves a nested txn's own header revision at zero
                responses.append(self._txn(op, path, write))
        return TxnResponse(revision=0, succeeded=succeeded, responses=responses)


def goes_through_log(request: object) -> bool:
    """Whether etcd would replicate the request (reads are served locally)."""
    if isinstance(request, RangeRequest):
        return False
    if isinstance(request, TxnRequest):
        return not is_read_only(request)
    return True


def is_read_only(request: TxnRequest) -> bool:
    """etcd's rule: a txn is read-only when every op of both branches is a
    range; one with a nested txn counts as a write, whatever it holds."""
    return all(isinstance(op, RangeRequest) for op in (*request.success, *request.failure))


def _finish_range(request: RangeRequest, kvs: list[KeyValue], current: int) -> RangeResponse:
    """Filters, sort and limit of a range read over the live versions it found, in key order."""
    count = len(kvs)
    if request.count_only:
        return RangeResponse(revision=current, count=count)

    if request.max_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision <= request.max_mod_revision]
    if request.min_mod_revision:
        kvs = [kv for kv in kvs if kv.mod_revision >= request.min_mod_revision]
    if request.max_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision <= request.max_create_revision]
    if request.min_create_revision:
        kvs = [kv for kv in kvs if kv.create_revision >= request.min_create_revision]

    order = request.sort_order
    filtered = (request.min_mod_revision or request.max_mod_revision
                or request.min_create_revision or request.max_create_revision)
    if order == SortOrder.NONE and not filtered and request.limit > 0:
        # etcd takes limit+1 keys in key order before its default sort
        kvs = kvs[: request.limit + 1]
    if order == SortOrder.NONE and request.sort_target != SortTarget.KEY:
        order = SortOrder.ASCEND  # keys come in key order already
    if order != SortOrder.NONE:
        kvs.sort(
            key=_SORT_KEYS[SortTarget(request.sort_target)],
            reverse=order == SortOrder.DESCEND,
        )

    more = False
    if request.limit > 0 and len(kvs) > request.limit:
        kvs = kvs[: request.limit]
        more = True
    if request.keys_only:
        kvs = [replace(kv, value=b"") for kv in kvs]
    return RangeResponse(revision=current, kvs=kvs, more=more, count=count)


class RangeReader:
    """A range read done in steps (see KVStore.range_reader)."""

    def __init__(self, store: KVStore, request: RangeRequest, revision: int, current: int,
                 step_keys: int) -> None:
        self._store = store
        self._request = request
        self._revision = revision
        self._current = current
        self._step_keys = step_keys
        self._kvs: list[KeyValue] = []
        self._after: bytes | None = None  # the last key read; the next step starts after it
        self.done = False

    def step(self) -> bool:
        """Read the next keys; True once every key has been read. Raises
        Compacted if a compaction passed the read's revision meanwhile."""
        store = self._store
        if self._revision < store.compact_revision:
            raise Compacted()
        request, revision = self._request, self._revision
        histories = store.index_range(request.key, request.range_end, self._after)
        read = 0
        for history in histories:
            kv = history.at(revision)
            if kv is not None:
                self._kvs.append(kv)
            self._after = history.key
            read += 1
            if read >= self._step_keys:
                return False
        self.done = True
        return True

    def finish(self) -> RangeResponse:
        assert self.done
        return _finish_range(self._request, self._kvs, self._current)

