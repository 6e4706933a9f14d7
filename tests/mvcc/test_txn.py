"""Txn: compares, branches, nesting, revisions, duplicate keys, limits, checks.

Reference: etcd 3.4 etcdserver/apply.go (Txn, compareToPath, applyCompare,
compareKV, applyTxn, checkRequests, checkRequestPut, checkRequestRange) and
etcdserver/api/v3rpc/key.go (checkTxnRequest, checkIntervals).
"""

from __future__ import annotations

import pytest

from raftkv.errors import (
    Compacted,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    KeyNotFound,
    LeaseNotFound,
    TooManyOps,
)
from raftkv.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)

from mvcc_helpers import EQ, GT, LT, NE, cmp, compact, get, get_one, grant, history, new_store, put, txn


def P(key: bytes, value: bytes = b"v", **kw) -> PutRequest:
    return PutRequest(key, value, **kw)


def D(key: bytes, range_end: bytes = b"", **kw) -> DeleteRangeRequest:
    return DeleteRangeRequest(key, range_end, **kw)


def R(key: bytes, range_end: bytes = b"", **kw) -> RangeRequest:
    return RangeRequest(key, range_end, **kw)


def T(compare=(), success=(), failure=()) -> TxnRequest:
    return TxnRequest(list(compare), list(success), list(failure))


def assert_nothing_applied(s, rev: int, live: int, *keys: bytes) -> None:
    """The store is as before a failed txn: same revision and live keys, and the
    keys the txn would have written are brand new when written afterwards."""
    assert s.revision == rev
    assert s.key_count == live
    for key in keys:
        assert get_one(s, key) is None
        put(s, key)
        kv = get_one(s, key)
        assert (kv.version, kv.create_revision) == (1, s.revision)


def holds(s, *compares) -> bool:
    """Whether the compares hold, seen through the txn's ``succeeded``."""
    return txn(s, compare=compares).succeeded


@pytest.fixture
def abc(store):
    """a = "2" (create 2, mod 5, version 2, lease 7); b = "5" (create 3, mod 3); c deleted."""
    grant(store, 7)
    put(store, b"a", b"1")  # 2
    put(store, b"b", b"5")  # 3
    put(store, b"c", b"x")  # 4
    put(store, b"a", b"2", lease=7)  # 5
    store.delete_range(D(b"c"))  # 6
    return store


# ---- compares ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "operand", "expected"),
    [
        (EQ, b"2", True), (EQ, b"1", False),
        (NE, b"1", True), (NE, b"2", False),
        (LT, b"3", True), (LT, b"2", False), (LT, b"10", False),
        (GT, b"1", True), (GT, b"2", False), (GT, b"", True),
    ],
)
def test_etcd_compares_values_as_bytes(abc, result, operand, expected):
    """etcd compareKV VALUE: bytes.Compare(kv.Value, operand)."""
    assert holds(abc, cmp(b"a", "value", result, operand)) is expected


@pytest.mark.parametrize(
    ("target", "actual"),
    [("version", 2), ("create", 2), ("mod", 5), ("lease", 7)],
)
def test_etcd_compares_integer_targets(abc, target, actual):
    """etcd compareKV CREATE/MOD/VERSION/LEASE: compareInt64(kv field, operand)."""
    for result, operand, expected in [
        (EQ, actual, True), (EQ, actual + 1, False),
        (NE, actual - 1, True), (NE, actual, False),
        (LT, actual + 1, True), (LT, actual, False),
        (GT, actual - 1, True), (GT, actual, False),
    ]:
        assert holds(abc, cmp(b"a", target, result, operand)) is expected, (target, result, operand)


@pytest.mark.parametrize("result", [EQ, NE, LT, GT])
@pytest.mark.parametrize("key", [b"missing", b"c"])  # never written / deleted
def test_etcd_value_compare_on_a_missing_key_always_fails(abc, key, result):
    """etcd applyCompare: "Always fail if comparing a value on a key/keys that doesn't exist"."""
    assert holds(abc, cmp(key, "value", result, b"")) is False
    assert holds(abc, cmp(key, "value", result, b"zzz")) is False


@pytest.mark.parametrize(
    ("target", "result", "operand", "expected"),
    [
        ("version", EQ, 0, True), ("version", GT, 0, False), ("version", LT, 1, True),
        ("create", EQ, 0, True), ("create", NE, 0, False),
        ("mod", EQ, 0, True), ("mod", GT, 0, False), ("mod", LT, 0, False),
        ("lease", EQ, 0, True), ("lease", NE, 0, False),
    ],
)
def test_etcd_other_targets_compare_a_missing_key_as_zero(abc, target, result, operand, expected):
    """etcd applyCompare: no kvs -> compareKV(c, mvccpb.KeyValue{}) (all zero)."""
    assert holds(abc, cmp(b"missing", target, result, operand)) is expected
    assert holds(abc, cmp(b"c", target, result, operand)) is expected


def test_etcd_range_compare_must_hold_for_every_key(store):
    """etcd applyCompare over a range: false as soon as one kv fails."""
    put(store, b"k1", b"x")
    put(store, b"k2", b"x")
    put(store, b"k3", b"y")
    assert holds(store, cmp(b"k1", "value", EQ, b"x", b"k3")) is True
    assert holds(store, cmp(b"k1", "value", EQ, b"x", b"k4")) is False
    assert holds(store, cmp(b"k", "create", GT, 1, b"l")) is True
    assert holds(store, cmp(b"k", "mod", LT, 4, b"l")) is False  # k3 has mod 4
    assert holds(store, cmp(b"k2", "version", EQ, 1, b"\x00")) is True


def test_etcd_range_compare_ignores_absent_keys_in_the_range(store):
    """Only the keys that exist are compared; a gap in the range does not count as 0."""
    put(store, b"k1")
    put(store, b"k3")
    assert holds(store, cmp(b"k0", "version", GT, 0, b"k9")) is True


def test_etcd_range_compare_over_no_keys(store):
    """An empty range: VALUE fails, other targets compare the zero kv."""
    put(store, b"a")
    assert holds(store, cmp(b"x", "value", NE, b"v", b"z")) is False
    assert holds(store, cmp(b"x", "create", EQ, 0, b"z")) is True
    assert holds(store, cmp(b"x", "version", GT, 0, b"z")) is False


def test_etcd_all_compares_must_hold(abc):
    """etcd applyCompares: false on the first compare that fails."""
    a_is_2 = cmp(b"a", "value", EQ, b"2")
    b_is_5 = cmp(b"b", "value", EQ, b"5")
    b_is_6 = cmp(b"b", "value", EQ, b"6")
    assert holds(abc, a_is_2, b_is_5) is True
    assert holds(abc, a_is_2, b_is_6) is False
    assert holds(abc, b_is_6, a_is_2) is False


def test_etcd_txn_without_compares_succeeds(store):
    r = txn(store, success=[P(b"a")], failure=[P(b"b")])
    assert r.succeeded is True
    assert get_one(store, b"a") is not None and get_one(store, b"b") is None


# ---- branches ---------------------------------------------------------------


def test_etcd_runs_success_ops_when_compares_hold(abc):
    r = txn(abc, [cmp(b"a", "version", EQ, 2)],
            success=[P(b"s", b"1"), R(b"a")], failure=[P(b"f", b"1")])
    assert r.succeeded is True
    assert [type(x) for x in r.responses] == [PutResponse, RangeResponse]
    assert r.responses[1].kvs[0].value == b"2"
    assert get_one(abc, b"s").value == b"1"
    assert get_one(abc, b"f") is None


def test_etcd_runs_failure_ops_when_a_compare_fails(abc):
    r = txn(abc, [cmp(b"a", "version", EQ, 99)],
            success=[P(b"s", b"1")], failure=[D(b"b"), P(b"f", b"1")])
    assert r.succeeded is False
    assert [type(x) for x in r.responses] == [DeleteRangeResponse, PutResponse]
    assert r.responses[0].deleted == 1
    assert get_one(abc, b"s") is None
    assert get_one(abc, b"f").value == b"1"
    assert get_one(abc, b"b") is None


# ---- nested txns ------------------------------------------------------------


def test_etcd_nested_txn_response(store):
    """etcd newTxnResp: a nested TxnResponse with Succeeded and its own responses;
    its header is left empty (revision 0)."""
    put(store, b"a", b"1")
    r = txn(store, success=[T([cmp(b"a", "value", EQ, b"1")], [R(b"a"), P(b"b")], [P(b"c")])])
    inner = r.responses[0]
    assert isinstance(inner, TxnResponse)
    assert inner.succeeded is True
    assert inner.revision == 0
    assert [type(x) for x in inner.responses] == [RangeResponse, PutResponse]
    assert r.revision == 3
    assert get_one(store, b"b") is not None and get_one(store, b"c") is None


def test_etcd_nested_compares_see_the_state_before_the_outer_writes(store):
    """etcd compareToPath evaluates every nested compare on the read view taken
    before the txn applies anything."""
    put(store, b"a", b"1")
    r = txn(store, success=[
        P(b"a", b"2"),
        T([cmp(b"a", "value", EQ, b"2")], [P(b"seen", b"new")], [P(b"seen", b"old")]),
    ])
    assert r.responses[1].succeeded is False
    assert get_one(store, b"seen").value == b"old"
    assert get_one(store, b"a").value == b"2"


def test_etcd_nested_compares_ignore_earlier_nested_writes(store):
    """Even a write by an earlier nested txn is invisible to a later nested compare."""
    r = txn(store, success=[
        T([], [P(b"x")]),
        T([cmp(b"x", "version", EQ, 0)], [P(b"y", b"absent")], [P(b"y", b"present")]),
    ])
    assert r.responses[1].succeeded is True
    assert get_one(store, b"y").value == b"absent"


def test_etcd_nested_txn_in_the_failure_branch(store):
    put(store, b"a", b"1")
    r = txn(store, [cmp(b"a", "value", EQ, b"no")],
            failure=[T([cmp(b"a", "value", EQ, b"1")], [P(b"b", b"then")], [P(b"b", b"else")])])
    assert r.succeeded is False
    assert r.responses[0].succeeded is True
    assert get_one(store, b"b").value == b"then"


def test_etcd_deeply_nested_txns_follow_their_own_paths(store):
    put(store, b"a", b"1")
    inner = T([cmp(b"a", "value", EQ, b"nope")], [P(b"z", b"then")], [P(b"z", b"else")])
    middle = T([cmp(b"a", "version", EQ, 1)], [inner, P(b"m")])
    r = txn(store, success=[middle, P(b"o")])
    assert r.responses[0].succeeded is True
    assert r.responses[0].responses[0].succeeded is False
    assert get_one(store, b"z").value == b"else"
    assert history(store, 3) == [(3, [(b"z", 1), (b"m", 1), (b"o", 1)])]


# ---- reads inside a txn -----------------------------------------------------


def test_etcd_txn_reads_see_earlier_writes_of_the_same_txn(store):
    """etcd storeTxnWrite.Range reads at beginRev+1 once the txn has changes."""
    put(store, b"a", b"1")
    r = txn(store, success=[R(b"a"), P(b"a", b"2"), R(b"a"), D(b"b", b"c"), R(b"a", b"\x00")])
    before, _, after, _, everything = r.responses
    assert before.kvs[0].value == b"1" and before.revision == 2
    assert after.kvs[0].value == b"2" and after.revision == 3
    assert [kv.key for kv in everything.kvs] == [b"a"]


def test_etcd_txn_reads_do_not_see_deleted_keys(store):
    put(store, b"a")
    put(store, b"b")
    r = txn(store, success=[D(b"a"), R(b"a", b"\x00")])
    assert [kv.key for kv in r.responses[1].kvs] == [b"b"]
    assert r.responses[1].count == 1


def test_etcd_nested_reads_see_the_outer_writes(store):
    """Reads (unlike compares) run in order inside the one write txn."""
    r = txn(store, success=[P(b"a", b"1"), T([], [R(b"a")])])
    assert r.responses[1].responses[0].kvs[0].value == b"1"


def test_etcd_txn_read_at_a_past_revision(store):
    put(store, b"a", b"1")
    put(store, b"a", b"2")
    r = txn(store, success=[R(b"a", revision=2), P(b"b")])
    assert r.responses[0].kvs[0].value == b"1"


# ---- the txn's revision -----------------------------------------------------


def test_etcd_write_txn_makes_one_revision_for_all_its_writes(store):
    """etcd Txn: rev = txn.Rev() + 1 when the txn has changes; every put reports it."""
    put(store, b"x")
    r = txn(store, success=[P(b"a"), P(b"b"), D(b"x")])
    assert r.revision == 3 == store.revision
    assert [x.revision for x in r.responses] == [3, 3, 3]
    assert history(store, 3) == [(3, [(b"a", 1), (b"b", 1), (b"x", 0)])]


def test_etcd_read_only_txn_keeps_the_revision(store):
    put(store, b"a")
    r = txn(store, [cmp(b"a", "version", EQ, 1)], success=[R(b"a")])
    assert r.revision == 2 == store.revision
    r = txn(store)
    assert r.revision == 2


def test_etcd_txn_whose_chosen_branch_writes_nothing_keeps_the_revision(store):
    """etcd: a write txn with no changes reports txn.Rev() (beginRev), no increment."""
    put(store, b"a")
    r = txn(store, [cmp(b"a", "version", EQ, 5)], success=[P(b"b")], failure=[R(b"a")])
    assert r.succeeded is False
    assert r.revision == 2 == store.revision
    r = txn(store, success=[D(b"missing")])
    assert r.revision == 2 == store.revision
    assert r.responses[0].revision == 2


def test_etcd_delete_response_revision_depends_on_earlier_changes(store):
    """etcd storeTxnWrite.DeleteRange: beginRev+1 if it deleted something or the
    txn already changed something, else beginRev."""
    r = txn(store, success=[D(b"missing"), P(b"a"), D(b"missing2")])
    assert [x.revision for x in r.responses] == [1, 2, 2]


# ---- duplicate keys ---------------------------------------------------------


def assert_duplicate(store, request: TxnRequest) -> None:
    rev = store.revision
    with pytest.raises(DuplicateKey) as e:
        store.txn(request)
    assert str(e.value) == "etcdserver: duplicate key given in txn request"
    assert e.value.grpc_code == "INVALID_ARGUMENT"
    assert store.revision == rev


def test_etcd_rejects_putting_a_key_twice(store):
    """etcd checkIntervals: a put key already in puts -> ErrGRPCDuplicateKey."""
    assert_duplicate(store, T(success=[P(b"a"), P(b"b"), P(b"a")]))
    assert_duplicate(store, T(failure=[P(b"a"), P(b"a")]))


@pytest.mark.parametrize(
    "ops",
    [
        [D(b"a"), P(b"a")],
        [P(b"a"), D(b"a")],
        [D(b"a", b"c"), P(b"b")],
        [P(b"b"), D(b"a", b"c")],
        [D(b"a", b"c"), P(b"a")],
    ],
    ids=["delete-then-put", "put-then-delete", "inside-range", "before-range", "range-start"],
)
def test_etcd_rejects_a_put_inside_a_deleted_range(store, ops):
    """etcd checkIntervals collects this level's deletes first, then rejects a put
    whose key intersects one, whatever the op order."""
    assert_duplicate(store, T(success=ops))


def test_etcd_allows_a_put_at_the_end_of_a_deleted_range(store):
    """The range end is exclusive, and a single-key delete covers only its key."""
    r = txn(store, success=[D(b"a", b"c"), P(b"c"), D(b"x"), P(b"xa")])
    assert r.revision == 2


def test_etcd_allows_deleting_overlapping_ranges(store):
    """etcd only checks puts against deletes; two deletes may overlap."""
    put(store, b"a")
    r = txn(store, success=[D(b"a"), D(b"a", b"z")])
    assert [x.deleted for x in r.responses] == [1, 0]


def test_etcd_allows_then_and_else_of_a_nested_txn_to_put_the_same_key(store):
    """etcd: "if key is from putsThen, overlap is OK since either then/else are
    mutually exclusive"."""
    r = txn(store, success=[T([cmp(b"a", "version", EQ, 0)], [P(b"a", b"then")], [P(b"a", b"else")])])
    assert get_one(store, b"a").value == b"then"
    assert r.revision == 2


def test_etcd_allows_success_and_failure_to_put_the_same_key(store):
    """Success and failure are checked separately (checkIntervals twice)."""
    txn(store, success=[P(b"a")], failure=[P(b"a")])
    assert get_one(store, b"a") is not None


@pytest.mark.parametrize(
    "ops",
    [
        [T([], [P(b"a")]), P(b"a")],
        [P(b"a"), T([], [P(b"a")])],
        [T([], [], [P(b"a")]), P(b"a")],
        [T([], [P(b"a")]), T([], [P(b"a")])],
        [T([], [P(b"a")]), T([], [], [P(b"a")])],
        [T([], [P(b"x")], [P(b"a")]), T([], [P(b"a")])],
        [D(b"a"), T([], [P(b"a")])],
        [D(b"a", b"b"), T([], [], [P(b"a")])],
        [T([], [D(b"a")]), P(b"a")],
        [T([], [], [D(b"a", b"c")]), P(b"b")],
        [T([], [D(b"a")]), T([], [P(b"a")])],
        [T([], [T([], [P(b"a")])]), P(b"a")],
    ],
    ids=[
        "nested-then-and-outer", "outer-and-nested-then", "nested-else-and-outer",
        "two-nested-thens", "nested-then-and-other-nested-else", "else-after-other-then",
        "outer-delete-nested-put", "outer-range-delete-nested-else-put",
        "nested-delete-outer-put", "nested-else-range-delete-outer-put",
        "nested-delete-later-nested-put", "doubly-nested-put-and-outer-put",
    ],
)
def test_etcd_rejects_duplicates_across_nesting_levels(store, ops):
    """etcd checkIntervals recurses: nested puts join this level's puts, nested
    deletes join its deletes, and an outer put may not meet either."""
    assert_duplicate(store, T(success=ops))


def test_etcd_allows_a_nested_delete_and_put_in_opposite_branches(store):
    """A nested txn's else-branch delete does not conflict with its own then-branch put."""
    put(store, b"a", b"1")
    txn(store, success=[T([cmp(b"a", "value", EQ, b"1")], [P(b"a", b"2")], [D(b"a")])])
    assert get_one(store, b"a").value == b"2"


def test_etcd_checks_duplicates_in_the_branch_that_will_not_run(store):
    """etcd checks both Success and Failure before evaluating any compare."""
    assert_duplicate(store, T([cmp(b"a", "version", EQ, 0)], [P(b"ok")], [P(b"x"), P(b"x")]))
    assert get_one(store, b"ok") is None


def test_etcd_allows_a_put_next_to_a_from_key_delete(store):
    """etcd checkIntervals builds the delete interval [key, "\\0") for a from-key
    delete, which is empty, so no put conflicts with it; the ops then run in
    order: the delete removes the old key and the put starts a new generation."""
    put(store, b"a")
    put(store, b"b", b"old")
    r = txn(store, success=[D(b"a", b"\x00"), P(b"b", b"new")])
    assert r.responses[0].deleted == 2
    kv = get_one(store, b"b")
    assert (kv.value, kv.version, kv.create_revision) == (b"new", 1, 4)
    assert get_one(store, b"a") is None


# ---- too many operations ----------------------------------------------------


def test_etcd_default_max_txn_ops_is_128(store):
    """etcd --max-txn-ops default 128: Success, Failure and Compare may each hold 128."""
    ok = [P(b"k%03d" % i) for i in range(128)]
    txn(store, [cmp(b"k%03d" % i, "version", EQ, 0) for i in range(128)], ok, list(ok))
    assert store.key_count == 128


@pytest.mark.parametrize("part", ["compare", "success", "failure"])
def test_etcd_rejects_more_than_max_txn_ops(store, part):
    """etcd checkTxnRequest: max(len(Compare), len(Success), len(Failure)) > maxTxnOps
    -> "etcdserver: too many operations in txn request"."""
    many = {
        "compare": [cmp(b"k%03d" % i, "version", EQ, 0) for i in range(129)],
        "success": [R(b"k%03d" % i) for i in range(129)],
        "failure": [R(b"k%03d" % i) for i in range(129)],
    }[part]
    request = T(**{part: many})
    with pytest.raises(TooManyOps) as e:
        store.txn(request)
    assert str(e.value) == "etcdserver: too many operations in txn request"
    assert e.value.grpc_code == "INVALID_ARGUMENT"


def test_etcd_max_txn_ops_is_configurable():
    """StoreLimits(max_txn_ops=...) is etcd's --max-txn-ops."""
    s = new_store(max_txn_ops=3)
    txn(s, success=[P(b"a"), P(b"b"), P(b"c")])
    with pytest.raises(TooManyOps):
        txn(s, success=[P(b"d"), P(b"e"), P(b"f"), P(b"g")])
    assert s.revision == 2
    big = new_store(max_txn_ops=200)
    txn(big, success=[P(b"k%03d" % i) for i in range(200)])
    assert big.key_count == 200


def test_etcd_nested_txn_gets_the_ops_left_by_its_parent():
    """etcd checkRequestOp(u, maxTxnOps-opc): a nested txn may use only what its
    parent's largest list left over."""
    s = new_store(max_txn_ops=4)
    txn(s, success=[P(b"x"), T([], [P(b"a"), P(b"b")])])  # 4 - 2 = 2 left: ok
    with pytest.raises(TooManyOps):
        txn(s, success=[P(b"y"), T([], [P(b"c"), P(b"d"), P(b"e")])])
    assert get_one(s, b"c") is None


def test_etcd_checks_op_count_before_duplicates_and_empty_keys():
    s = new_store(max_txn_ops=2)
    with pytest.raises(TooManyOps):
        txn(s, success=[P(b"a"), P(b"a"), P(b"")])


def test_etcd_rejects_empty_keys_inside_a_txn(store):
    """etcd checkTxnRequest: empty compare key or op key -> ErrGRPCEmptyKey."""
    for request in (
        T([cmp(b"", "version", EQ, 0)]),
        T(success=[R(b"")]),
        T(failure=[D(b"")]),
        T(success=[T([], [P(b"")])]),
    ):
        with pytest.raises(EmptyKey):
            store.txn(request)


# ---- checks that fail the whole txn -----------------------------------------


def test_etcd_unknown_lease_in_the_chosen_branch_applies_nothing(store):
    """etcd checkRequests(checkPut) runs over the chosen path before any op and
    fails the txn with lease.ErrLeaseNotFound."""
    put(store, b"a", b"1")
    with pytest.raises(LeaseNotFound, match="^etcdserver: requested lease not found$"):
        txn(store, success=[P(b"a", b"2"), P(b"c"), P(b"b", lease=404)])
    assert get_one(store, b"a").value == b"1"
    assert_nothing_applied(store, 2, 1, b"b", b"c")


def test_etcd_unknown_lease_in_a_nested_chosen_branch_applies_nothing(store):
    with pytest.raises(LeaseNotFound):
        txn(store, success=[P(b"x"), T([], [P(b"b", lease=404)])])
    assert_nothing_applied(store, 1, 0, b"x", b"b")


def test_etcd_unknown_lease_in_the_branch_not_taken_is_ignored(store):
    r = txn(store, [cmp(b"a", "version", EQ, 0)], success=[P(b"a")], failure=[P(b"a", lease=404)])
    assert r.succeeded is True and r.revision == 2
    r = txn(store, success=[T([cmp(b"a", "version", EQ, 0)], [P(b"z", lease=404)], [P(b"y")])])
    assert r.revision == 3


def test_etcd_ignore_value_on_a_missing_key_in_a_txn_applies_nothing(store):
    """etcd checkRequestPut: IgnoreValue/IgnoreLease without a previous kv -> ErrKeyNotFound."""
    with pytest.raises(KeyNotFound, match="^etcdserver: key not found$"):
        txn(store, success=[P(b"a"), P(b"b", b"", ignore_value=True)])
    assert_nothing_applied(store, 1, 0, b"a", b"b")


def test_etcd_txn_put_checks_the_previous_key_before_the_lease(store):
    """etcd checkRequestPut reads the previous kv before looking up the lease
    (the reverse of a plain Put)."""
    with pytest.raises(KeyNotFound):
        txn(store, success=[P(b"b", b"", ignore_value=True, lease=404)])


def test_etcd_ignore_value_in_a_txn_sees_the_state_before_the_txn(store):
    """checkRequestPut runs on the read view before the txn, and applyTxn's Put
    reuses the value read at that point."""
    put(store, b"a", b"kept")
    txn(store, success=[P(b"a", b"", ignore_value=True), P(b"b")])
    assert get_one(store, b"a").value == b"kept"
    assert get_one(store, b"a").version == 2


def test_etcd_future_revision_read_in_a_txn_applies_nothing(store):
    """etcd checkRequestRange: Revision > rv.Rev() -> ErrFutureRev, even when an
    earlier op of the txn would have made that revision."""
    put(store, b"a")
    with pytest.raises(FutureRevision):
        txn(store, success=[P(b"b"), R(b"b", revision=3)])
    assert_nothing_applied(store, 2, 1, b"b")


def test_etcd_compacted_revision_read_in_a_txn_applies_nothing(store):
    """etcd checkRequestRange: Revision < rv.FirstRev() -> ErrCompacted."""
    put(store, b"a")
    put(store, b"a")
    compact(store, 3)
    with pytest.raises(Compacted):
        txn(store, success=[P(b"b"), R(b"a", revision=2)])
    r = txn(store, success=[R(b"a", revision=3)])
    assert r.responses[0].kvs[0].mod_revision == 3
    assert_nothing_applied(store, 3, 1, b"b")


def test_etcd_txn_range_errors_only_count_in_the_chosen_branch(store):
    put(store, b"a")
    r = txn(store, [cmp(b"a", "version", EQ, 1)], success=[R(b"a")], failure=[R(b"a", revision=99)])
    assert r.succeeded is True


def test_etcd_txn_put_prev_kv_and_lease_attach(store):
    """Puts inside a txn behave as plain puts: prev_kv, lease attachment."""
    grant(store, 5)
    put(store, b"a", b"1")
    r = txn(store, success=[P(b"a", b"2", prev_kv=True, lease=5)])
    assert r.responses[0].prev_kv.value == b"1"
    assert store.lessor.get(5).keys == {b"a"}
    assert get(store, b"a").kvs[0].lease == 5
