"""validate.check_request: etcd's stateless gRPC-level request checks.

Reference: etcd 3.4 etcdserver/api/v3rpc/key.go (checkRangeRequest,
checkPutRequest, checkDeleteRequest, checkTxnRequest, checkRequestOp,
checkIntervals; kvServer.Txn runs checkTxnRequest, then checkIntervals on
Success, then on Failure).
"""

from __future__ import annotations

import pytest

from raftkv.errors import (
    DuplicateKey,
    EmptyKey,
    KeyNotFound,
    LeaseProvided,
    TooManyOps,
    ValueProvided,
)
from raftkv.mvcc import (
    CompactionRequest,
    DeleteRangeRequest,
    LeaseGrantRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from raftkv.mvcc.validate import DEFAULT_MAX_TXN_OPS, check_request

from mvcc_helpers import EQ, cmp


def P(key: bytes, value: bytes = b"v", **kw) -> PutRequest:
    return PutRequest(key, value, **kw)


def D(key: bytes, range_end: bytes = b"") -> DeleteRangeRequest:
    return DeleteRangeRequest(key, range_end)


def R(key: bytes, range_end: bytes = b"") -> RangeRequest:
    return RangeRequest(key, range_end)


def T(compare=(), success=(), failure=()) -> TxnRequest:
    return TxnRequest(list(compare), list(success), list(failure))


def rejects(request, error, **kw) -> None:
    with pytest.raises(error):
        check_request(request, **kw)


def test_etcd_default_max_txn_ops_is_128():
    """etcd embed/config.go DefaultMaxTxnOps = uint(128)."""
    assert DEFAULT_MAX_TXN_OPS == 128


# ---- single requests --------------------------------------------------------


def test_etcd_valid_requests_pass():
    for request in (R(b"a"), R(b"a", b"\x00"), D(b"a", b"b"), P(b"a"), P(b"a", b"", ignore_value=True),
                    P(b"a", b"x", ignore_lease=True), P(b"a", b"", lease=0, ignore_lease=True),
                    P(b"a", b"", lease=3, ignore_value=True), T()):
        check_request(request)


@pytest.mark.parametrize("request_", [R(b""), R(b"", b"\x00"), D(b""), D(b"", b"z"), P(b"")])
def test_etcd_rejects_an_empty_key(request_):
    """etcd check{Range,Put,Delete}Request: len(Key) == 0 -> ErrGRPCEmptyKey."""
    with pytest.raises(EmptyKey, match="^etcdserver: key is not provided$"):
        check_request(request_)


def test_etcd_rejects_ignore_value_with_a_value():
    """etcd checkPutRequest: IgnoreValue && len(Value) != 0 -> ErrGRPCValueProvided."""
    with pytest.raises(ValueProvided, match="^etcdserver: value is provided$"):
        check_request(P(b"a", b"x", ignore_value=True))


def test_etcd_rejects_ignore_lease_with_a_lease():
    """etcd checkPutRequest: IgnoreLease && Lease != 0 -> ErrGRPCLeaseProvided."""
    with pytest.raises(LeaseProvided, match="^etcdserver: lease is provided$"):
        check_request(P(b"a", b"", lease=5, ignore_lease=True))


def test_etcd_put_checks_run_in_order():
    """etcd checkPutRequest: empty key, then value, then lease."""
    rejects(P(b"", b"x", ignore_value=True, lease=1, ignore_lease=True), EmptyKey)
    rejects(P(b"a", b"x", ignore_value=True, lease=1, ignore_lease=True), ValueProvided)


def test_requests_without_gRPC_checks_pass():
    """etcd's KV service makes no such checks on Compact or LeaseGrant."""
    check_request(CompactionRequest(0))
    check_request(LeaseGrantRequest(ttl=0, id=0))


# ---- txn: size and contents -------------------------------------------------


def test_etcd_op_count_is_the_largest_of_compare_success_failure():
    """etcd checkTxnRequest: opc = max(len(Compare), len(Success), len(Failure))."""
    three = dict(
        compare=[cmp(b"k%d" % i, "version", EQ, 0) for i in range(3)],
        success=[R(b"k%d" % i) for i in range(3)],
        failure=[R(b"k%d" % i) for i in range(3)],
    )
    check_request(T(**three), max_txn_ops=3)  # 9 in total, 3 at most in one list
    for part in three:
        four = dict(three)
        four[part] = four[part] + [four[part][0]]
        with pytest.raises(TooManyOps, match="^etcdserver: too many operations in txn request$"):
            check_request(T(**four), max_txn_ops=3)


def test_etcd_default_limit_applies_when_none_is_given():
    check_request(T(success=[R(b"a")] * 128))
    rejects(T(success=[R(b"a")] * 129), TooManyOps)


def test_etcd_nested_txn_limit_is_what_the_parent_left():
    """etcd checkRequestOp(u, maxTxnOps-opc)."""
    check_request(T(success=[R(b"a"), T(success=[R(b"b")] * 3)]), max_txn_ops=5)
    rejects(T(success=[R(b"a"), T(success=[R(b"b")] * 4)]), TooManyOps, max_txn_ops=5)
    # the parent's largest list counts, even when it is the other branch
    rejects(T(success=[T(success=[R(b"b")] * 2)], failure=[R(b"c")] * 3), TooManyOps, max_txn_ops=4)
    # and the limit shrinks at every level
    deep = T(success=[R(b"a"), T(success=[R(b"b"), T(success=[R(b"c")] * 2)])])
    check_request(deep, max_txn_ops=6)  # 6 - 2 = 4, 4 - 2 = 2 left for the innermost 2
    rejects(deep, TooManyOps, max_txn_ops=5)  # 5 - 2 = 3, 3 - 2 = 1 < 2


def test_etcd_rejects_an_empty_compare_key():
    rejects(T([cmp(b"", "version", EQ, 0)]), EmptyKey)
    rejects(T(success=[T([cmp(b"", "value", EQ, b"")])]), EmptyKey)


@pytest.mark.parametrize(
    "request_",
    [
        T(success=[R(b"")]),
        T(failure=[D(b"")]),
        T(success=[P(b"")]),
        T(failure=[T(success=[R(b"a")], failure=[P(b"")])]),
    ],
)
def test_etcd_rejects_an_empty_key_in_any_op(request_):
    rejects(request_, EmptyKey)


def test_etcd_checks_put_flags_inside_a_txn():
    rejects(T(success=[P(b"a", b"x", ignore_value=True)]), ValueProvided)
    rejects(T(failure=[T(success=[P(b"a", lease=1, ignore_lease=True)])]), LeaseProvided)


@pytest.mark.parametrize("op", [None, object(), CompactionRequest(1)])
def test_etcd_rejects_an_empty_op(op):
    """etcd checkRequestOp: "empty op / nil entry" -> ErrGRPCKeyNotFound."""
    with pytest.raises(KeyNotFound, match="^etcdserver: key not found$"):
        check_request(T(success=[op]))
    rejects(T(success=[T(failure=[op])]), KeyNotFound)


def test_etcd_txn_check_order():
    """etcd checkTxnRequest: op count, then compare keys, then Success ops, then
    Failure ops; only after that checkIntervals (duplicates)."""
    rejects(T([cmp(b"", "version", EQ, 0)], success=[R(b"a")] * 3), TooManyOps, max_txn_ops=2)
    rejects(T([cmp(b"", "version", EQ, 0)], success=[P(b"a", b"x", ignore_value=True)]), EmptyKey)
    rejects(T(success=[P(b"a", b"x", ignore_value=True)], failure=[R(b"")]), ValueProvided)
    rejects(T(success=[P(b"a"), P(b"a")], failure=[R(b"")]), EmptyKey)
    rejects(T(success=[P(b"a"), P(b"a")], failure=[None]), KeyNotFound)


# ---- txn: duplicate keys (checkIntervals) -----------------------------------


def dup(request) -> None:
    with pytest.raises(DuplicateKey, match="^etcdserver: duplicate key given in txn request$"):
        check_request(request)


def test_etcd_duplicate_puts():
    dup(T(success=[P(b"a"), P(b"a")]))
    dup(T(failure=[P(b"b"), P(b"a"), P(b"b")]))
    check_request(T(success=[P(b"a"), P(b"b")], failure=[P(b"a"), P(b"b")]))


def test_etcd_put_against_deletes_at_the_same_level():
    dup(T(success=[P(b"a"), D(b"a")]))
    dup(T(success=[D(b"a", b"c"), P(b"b")]))
    dup(T(success=[D(b"a", b"c"), P(b"a")]))
    check_request(T(success=[D(b"a", b"c"), P(b"c")]))
    check_request(T(success=[D(b"a"), P(b"ab")]))
    check_request(T(success=[D(b"a"), D(b"a", b"z")]))


def test_etcd_from_key_delete_interval_is_empty():
    """etcd builds NewStringAffineInterval(key, "\\0") for a from-key delete; as
    "\\0" sorts before every other key the interval holds nothing, so no put
    intersects it."""
    check_request(T(success=[D(b"a", b"\x00"), P(b"a"), P(b"b")]))


def test_etcd_deletes_in_the_other_branch_do_not_count():
    check_request(T(success=[P(b"a")], failure=[D(b"a")]))


def test_etcd_nested_then_and_else_may_put_the_same_key():
    check_request(T(success=[T(success=[P(b"a")], failure=[P(b"a")])]))
    check_request(T(success=[T(success=[P(b"a"), P(b"b")], failure=[P(b"b"), P(b"a")])]))


def test_etcd_nested_else_put_may_not_repeat_an_earlier_sibling_put():
    dup(T(success=[T(success=[P(b"a")]), T(success=[P(b"x")], failure=[P(b"a")])]))


def test_etcd_nested_puts_and_deletes_propagate_upwards():
    dup(T(success=[T(success=[P(b"a")]), P(b"a")]))
    dup(T(success=[T(failure=[D(b"a", b"b")]), P(b"a")]))
    dup(T(success=[T(success=[T(success=[P(b"a")])]), P(b"a")]))
    dup(T(success=[T(success=[T(failure=[D(b"a")])]), P(b"a")]))
    dup(T(success=[D(b"a"), T(success=[T(success=[P(b"a")])])]))


def test_etcd_nested_txn_with_its_own_duplicates():
    dup(T(success=[T(success=[P(b"a"), P(b"a")])]))
    dup(T(failure=[T(failure=[D(b"a", b"c"), P(b"b")])]))
