"""A small, deliberately naive model of etcd 3.4's KV semantics: the oracle
the property tests compare KVStore against.

Nothing clever on purpose:

* ``self.current`` is a plain dict ``key -> KeyValue`` of the live keys;
* ``self.snapshots[rev]`` is a full copy of that dict after revision ``rev``
  (one entry for every revision ever made, compacted or not), so a read at
  any past revision is a dict lookup;
* ``self.events[rev]`` lists the watch events of revision ``rev`` in the
  order the changes were made, each with ``prev_kv`` = the key as of
  ``rev - 1`` (what etcd's watch server sends: it ranges at
  ``ModRevision - 1``; a create event carries none).

Compaction only moves ``compact_revision``; the model never forgets
anything, it just refuses reads that etcd would refuse.  Leases are not
modelled (every key has lease 0).

The rules are written from etcd 3.4's sources (etcdserver/apply.go,
etcdserver/api/v3rpc/key.go, mvcc/kvstore_txn.go), not from raftkv's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from raftkv.errors import Compacted, DuplicateKey, FutureRevision, KeyNotFound, ValueProvided
from raftkv.mvcc.requests import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from raftkv.mvcc.types import Event, EventType, KeyValue

FROM_KEY = b"\x00"  # etcd: range_end "\0" means "every key >= key"


def in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    """etcd's (key, range_end) selection."""
    if range_end == b"":
        return k == key
    if range_end == FROM_KEY:
        return k >= key
    return key <= k < range_end


def sort_value(kv: KeyValue, target: SortTarget):
    return {
        SortTarget.KEY: kv.key,
        SortTarget.VERSION: kv.version,
        SortTarget.CREATE: kv.create_revision,
        SortTarget.MOD: kv.mod_revision,
        SortTarget.VALUE: kv.value,
    }[SortTarget(target)]


def effective_sort_order(request: RangeRequest) -> SortOrder:
    """etcd sorts ASCEND by default when the target is not KEY."""
    if request.sort_order == SortOrder.NONE and request.sort_target != SortTarget.KEY:
        return SortOrder.ASCEND
    return SortOrder(request.sort_order)


# ---- etcd's duplicate-key rule for txns (v3rpc/key.go checkIntervals) --------


def _deleted(dels: list[tuple[bytes, bytes]], k: bytes) -> bool:
    """Does a delete interval contain ``k``?  An empty end is the single key;
    otherwise the half-open [start, end) compared as plain strings, so a
    from-key delete (end "\\0") is an empty interval and covers nothing."""
    for start, end in dels:
        if end == b"":
            if k == start:
                return True
        elif start <= k < end:
            return True
    return False


def check_intervals(ops: list) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    dels = [(op.key, op.range_end) for op in ops if isinstance(op, DeleteRangeRequest)]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = check_intervals(op.success)
        puts_else, dels_else = check_intervals(op.failure)
        for k in puts_then:
            if k in puts or _deleted(dels, k):
                raise DuplicateKey()
            puts.add(k)
        for k in puts_else:
            if k in puts and k not in puts_then:
                raise DuplicateKey()
            if _deleted(dels, k):
                raise DuplicateKey()
            puts.add(k)
        dels = dels + dels_then + dels_else
    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or _deleted(dels, op.key):
                raise DuplicateKey()
            puts.add(op.key)
    return puts, dels


# ---- compares (etcdserver/apply.go applyCompare / compareKV) -----------------


def compare_holds(c: Compare, state: dict[bytes, KeyValue]) -> bool:
    kvs = [kv for k, kv in sorted(state.items()) if in_range(k, c.key, c.range_end)]
    if not kvs:
        if c.target == CompareTarget.VALUE:
            return False  # a value compare on a missing key always fails
        kvs = [KeyValue(key=c.key, create_revision=0, mod_revision=0, version=0)]
    for kv in kvs:
        if c.target == CompareTarget.VALUE:
            actual, wanted = kv.value, c.operand if isinstance(c.operand, bytes) else b""
        else:
            actual = {
                CompareTarget.VERSION: kv.version,
                CompareTarget.CREATE: kv.create_revision,
                CompareTarget.MOD: kv.mod_revision,
                CompareTarget.LEASE: kv.lease,
            }[c.target]
            wanted = c.operand if isinstance(c.operand, int) else 0
        ok = {
            CompareResult.EQUAL: actual == wanted,
            CompareResult.NOT_EQUAL: actual != wanted,
            CompareResult.GREATER: actual > wanted,
            CompareResult.LESS: actual < wanted,
        }[c.result]
        if not ok:
            return False
    return True


# ---- the model ----------------------------------------------------------------


@dataclass
class ModelRangeResponse(RangeResponse):
    """A RangeResponse plus ``candidates``: every kv the response may hold
    (filtered and sorted, before ``limit``). etcd's sort is not stable, so
    when several kvs tie on the sort target a limit may keep any of them."""

    candidates: list[KeyValue] = field(default_factory=list)


@dataclass
class _Write:
    """One write in progress: a working copy and the changes so far."""

    begin: int
    state: dict[bytes, KeyValue]
    events: list[Event] = field(default_factory=list)

    @property
    def revision(self) -> int:
        return self.begin + 1

    @property
    def current(self) -> int:
        return self.begin + 1 if self.events else self.begin


class Model:
    def __init__(self) -> None:
        self.revision = 1  # an empty etcd is at revision 1
        self.compact_revision = -1
        self.current: dict[bytes, KeyValue] = {}
        self.snapshots: dict[int, dict[bytes, KeyValue]] = {1: {}}
        self.events: dict[int, list[Event]] = {}

    # -- reads -------------------------------------------------------------------

    def state_at(self, revision: int) -> dict[bytes, KeyValue]:
        return self.snapshots[revision]

    def readable_revisions(self) -> range:
        return range(max(self.compact_revision, 1), self.revision + 1)

    def range(self, request: RangeRequest, write: _Write | None = None) -> RangeResponse:
        current = write.current if write is not None else self.revision
        revision = request.revision
        if revision > current:
            raise FutureRevision()
        if revision <= 0:
            revision = current
        if revision < self.compact_revision:
            raise Compacted()
        if write is not None and revision == current:
            state = write.state
        else:
            state = self.snapshots[revision]

        kvs = [kv for k, kv in sorted(state.items()) if in_range(k, request.key, request.range_end)]
        count = len(kvs)
        if request.count_only:
            return ModelRangeResponse(revision=current, count=count)
        filters = (request.min_mod_revision, request.max_mod_revision,
                   request.min_create_revision, request.max_create_revision)
        if request.sort_order == SortOrder.NONE and not any(filters) and request.limit > 0:
            # etcd then reads only limit+1 keys, in key order; a default sort
            # by another target (below) sorts just those
            kvs = kvs[: request.limit + 1]
        if request.max_mod_revision != 0:
            kvs = [kv for kv in kvs if kv.mod_revision <= request.max_mod_revision]
        if request.min_mod_revision != 0:
            kvs = [kv for kv in kvs if kv.mod_revision >= request.min_mod_revision]
        if request.max_create_revision != 0:
            kvs = [kv for kv in kvs if kv.create_revision <= request.max_create_revision]
        if request.min_create_revision != 0:
            kvs = [kv for kv in kvs if kv.create_revision >= request.min_create_revision]
        # kvs are in key order here. etcd's sort is not stable; the model sorts
        # stably (ties stay in key order) and the test compares tie-tolerantly.
        order = effective_sort_order(request)
        if order != SortOrder.NONE:
            kvs = sorted(
                kvs,
                key=lambda kv: sort_value(kv, request.sort_target),
                reverse=order == SortOrder.DESCEND,
            )
        if request.keys_only:
            kvs = [replace(kv, value=b"") for kv in kvs]
        candidates = kvs
        more = False
        if request.limit > 0 and len(kvs) > request.limit:
            kvs = kvs[: request.limit]
            more = True
        return ModelRangeResponse(
            revision=current, kvs=kvs, more=more, count=count, candidates=candidates
        )

    # -- writes ------------------------------------------------------------------

    def _begin(self) -> _Write:
        return _Write(begin=self.revision, state=dict(self.current))

    def _end(self, write: _Write) -> None:
        if write.events:
            self.revision = write.revision
            self.current = write.state
            self.snapshots[self.revision] = dict(write.state)
            self.events[self.revision] = write.events

    def _put(self, write: _Write, request: PutRequest) -> PutResponse:
        rev = write.revision
        prev = write.state.get(request.key)
        value = prev.value if (request.ignore_value and prev is not None) else request.value
        if prev is None:
            kv = KeyValue(request.key, rev, rev, 1, value, 0)
        else:
            kv = KeyValue(request.key, prev.create_revision, rev, prev.version + 1, value, 0)
        write.state[request.key] = kv
        write.events.append(Event(EventType.PUT, kv, self.snapshots[rev - 1].get(request.key)))
        return PutResponse(revision=rev, prev_kv=prev if request.prev_kv else None)

    def _delete(self, write: _Write, request: DeleteRangeRequest) -> DeleteRangeResponse:
        rev = write.revision
        gone = [kv for k, kv in sorted(write.state.items())
                if in_range(k, request.key, request.range_end)]
        for kv in gone:
            del write.state[kv.key]
            tomb = KeyValue(key=kv.key, create_revision=0, mod_revision=rev, version=0)
            write.events.append(Event(EventType.DELETE, tomb, self.snapshots[rev - 1].get(kv.key)))
        return DeleteRangeResponse(
            revision=rev if write.events else write.begin,
            deleted=len(gone),
            prev_kvs=gone if request.prev_kv else [],
        )

    def put(self, request: PutRequest) -> PutResponse:
        _check_put(request)
        if (request.ignore_value or request.ignore_lease) and request.key not in self.current:
            raise KeyNotFound()
        write = self._begin()
        response = self._put(write, request)
        self._end(write)
        return response

    def delete_range(self, request: DeleteRangeRequest) -> DeleteRangeResponse:
        write = self._begin()
        response = self._delete(write, request)
        self._end(write)
        return response

    def txn(self, request: TxnRequest) -> TxnResponse:
        # 1. gRPC-level validation: each put's flags, then the duplicate-key rule
        _check_txn_puts(request)
        check_intervals(request.success)
        check_intervals(request.failure)
        # 2. every compare, nested ones included, is decided on the state before the txn
        begin_state = self.current
        # 3. the ops that will run, in order, with their branch decisions
        def taken(txn: TxnRequest) -> list:
            ok = all(compare_holds(c, begin_state) for c in txn.compare)
            return txn.success if ok else txn.failure

        def walk(txn: TxnRequest):
            for op in taken(txn):
                if isinstance(op, TxnRequest):
                    yield from walk(op)
                else:
                    yield op

        # 4. etcd's pre-checks: puts (only for a txn with any write op in any
        #    branch), then ranges at explicit revisions
        if _has_write_op(request):
            for op in walk(request):
                if isinstance(op, PutRequest) and (op.ignore_value or op.ignore_lease):
                    if op.key not in begin_state:
                        raise KeyNotFound()
        for op in walk(request):
            if isinstance(op, RangeRequest) and op.revision != 0:
                if op.revision > self.revision:
                    raise FutureRevision()
                if op.revision < self.compact_revision:
                    raise Compacted()
        # 5. apply
        write = self._begin()

        def run(txn: TxnRequest) -> TxnResponse:
            ok = all(compare_holds(c, begin_state) for c in txn.compare)
            responses = []
            for op in txn.success if ok else txn.failure:
                if isinstance(op, RangeRequest):
                    responses.append(self.range(op, write))
                elif isinstance(op, PutRequest):
                    responses.append(self._put(write, op))
                elif isinstance(op, DeleteRangeRequest):
                    responses.append(self._delete(write, op))
                else:
                    responses.append(run(op))
            # a nested txn's header revision stays 0 in etcd
            return TxnResponse(revision=0, succeeded=ok, responses=responses)

        response = run(request)
        response.revision = write.current
        self._end(write)
        return response

    def compact(self, revision: int) -> int:
        if revision <= self.compact_revision:
            raise Compacted()
        if revision > self.revision:
            raise FutureRevision()
        self.compact_revision = revision
        return self.revision

    # -- watch -------------------------------------------------------------------

    def watch_batches(
        self,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        *,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
    ) -> list[tuple[int, list[Event]]]:
        """What a watcher on (key, range_end) from ``start_revision`` should
        receive so far: one (revision, events) per revision with a matching event."""
        batches = []
        for rev in sorted(self.events):
            if rev < start_revision:
                continue
            events = [
                Event(e.type, e.kv, e.prev_kv if prev_kv else None)
                for e in self.events[rev]
                if in_range(e.kv.key, key, range_end)
                and not (no_put and e.type == EventType.PUT)
                and not (no_delete and e.type == EventType.DELETE)
            ]
            if events:
                batches.append((rev, events))
        return batches


def _has_write_op(txn: TxnRequest) -> bool:
    for op in (*txn.success, *txn.failure):
        if isinstance(op, (PutRequest, DeleteRangeRequest)):
            return True
        if isinstance(op, TxnRequest) and _has_write_op(op):
            return True
    return False


def _check_put(request: PutRequest) -> None:
    if request.ignore_value and request.value:
        raise ValueProvided()


def _check_txn_puts(txn: TxnRequest) -> None:
    for op in (*txn.success, *txn.failure):
        if isinstance(op, PutRequest):
            _check_put(op)
        elif isinstance(op, TxnRequest):
            _check_txn_puts(op)
