"""etcd's checks on a request before it is applied.

These are the checks etcd's gRPC layer makes (empty keys, conflicting flags,
txn size and overlapping writes). They need no state, so every entry point
runs them before a request reaches the log or the store.
"""

from __future__ import annotations

from raftkv.errors import (
    DuplicateKey,
    EmptyKey,
    KeyNotFound,
    LeaseProvided,
    TooManyOps,
    ValueProvided,
)
from raftkv.mvcc.requests import (
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    TxnRequest,
)

DEFAULT_MAX_TXN_OPS = 128


def check_request(request: object, max_txn_ops: int = DEFAULT_MAX_TXN_OPS) -> None:
    if isinstance(request, (RangeRequest, DeleteRangeRequest)):
        if not request.key:
            raise EmptyKey()
    elif isinstance(request, PutRequest):
        _check_put(request)
    elif isinstance(request, TxnRequest):
        _check_txn(request, max_txn_ops)
        _check_intervals(request.success)
        _check_intervals(request.failure)


def _check_put(request: PutRequest) -> None:
    if not request.key:
        raise EmptyKey()
    if request.ignore_value and request.value:
        raise ValueProvided()
    if request.ignore_lease and request.lease:
        raise LeaseProvided()


def _check_txn(request: TxnRequest, max_txn_ops: int) -> None:
    ops = max(len(request.compare), len(request.success), len(request.failure))
    if ops > max_txn_ops:
        raise TooManyOps()
    for compare in request.compare:
        if not compare.key:
            raise EmptyKey()
    for op in (*request.success, *request.failure):
        _check_op(op, max_txn_ops - ops)


def _check_op(op: RequestOp, max_txn_ops: int) -> None:
    if isinstance(op, (RangeRequest, DeleteRangeRequest)):
        if not op.key:
            raise EmptyKey()
    elif isinstance(op, PutRequest):
        _check_put(op)
    elif isinstance(op, TxnRequest):
        _check_txn(op, max_txn_ops)
    else:
        # etcd answers an empty request op this way
        raise KeyNotFound()


class _Deletes:
    """Key intervals deleted somewhere in a txn; an empty end means unbounded."""

    def __init__(self) -> None:
        self.intervals: list[tuple[bytes, bytes | None]] = []

    def add(self, key: bytes, range_end: bytes) -> None:
        self.intervals.append((key, range_end if range_end else None))

    def covers(self, key: bytes) -> bool:
        for start, end in self.intervals:
            if end is None:
                if key == start:
                    return True
            elif start <= key < end:
                return True
        return False


def _check_intervals(ops: list[RequestOp]) -> tuple[set[bytes], _Deletes]:
    """Reject a txn branch that writes one key twice (etcd's rule).

    Puts may not repeat a key nor fall inside a delete at the same or an
    enclosing level; the then- and else-branches of a nested txn may put the
    same key, as only one of them runs.
    """
    deletes = _Deletes()
    for op in ops:
        if isinstance(op, DeleteRangeRequest):
            deletes.add(op.key, op.range_end)

    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, deletes_then = _check_intervals(op.success)
        puts_else, deletes_else = _check_intervals(op.failure)
        for key in puts_then:
            if key in puts or deletes.covers(key):
                raise DuplicateKey()
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or deletes.covers(key):
                raise DuplicateKey()
            puts.add(key)
        deletes.intervals.extend(deletes_then.intervals)
        deletes.intervals.extend(deletes_else.intervals)

    for op in ops:
        if isinstance(op, PutRequest):
            if op.key in puts or deletes.covers(op.key):
                raise DuplicateKey()
            puts.add(op.key)
    return puts, deletes
